"""Only one replica polls at a time: a PostgreSQL session advisory lock held on a connection of its own.

When the polling replica dies, PostgreSQL ends its session and frees the lock, so another replica takes over at
its next attempt (each tries once per poll interval). SQLite allows one process per file (bot.db.guard), so that
process always leads. Clicks and webhooks are served by every replica: decisions are exactly-once in the
database whichever replica receives them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

#: An arbitrary constant naming the poller's lock (the migration lock uses another).
POLLER_LOCK = 0x1E41B08


class Leadership:
    """Whether this process is the one that polls."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Any = None
        #: None until the first attempt on PostgreSQL (neither poller nor standby yet).
        self.is_leader: bool | None = True if engine.dialect.name != "postgresql" else None

    def hold(self) -> bool:
        """Take or keep the poller lock; True while this process holds it."""
        if self._engine.dialect.name != "postgresql":
            return True
        if self._connection is not None and self._still_held():
            return True
        self._drop()
        try:
            connection = self._engine.connect()
            acquired = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": POLLER_LOCK}).scalar()
            connection.commit()
        except Exception as exc:  # noqa: BLE001 - the database may be briefly away; try again next time
            log.warning("could not ask for the poller lock: %s", type(exc).__name__)
            return self._set(leader=False)
        if acquired:
            self._connection = connection
            return self._set(leader=True)
        connection.close()
        return self._set(leader=False)

    def release(self) -> None:
        """Give the lock up (on shutdown), so another replica can poll at once."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing the session frees the lock anyway
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": POLLER_LOCK})
                self._connection.commit()
        self._drop()
        self.is_leader = True if self._engine.dialect.name != "postgresql" else None

    def _still_held(self) -> bool:
        """Whether our session still holds the lock (a dropped connection loses it)."""
        try:
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objid = :key"
                ),
                {"key": POLLER_LOCK},
            ).scalar()
            self._connection.commit()
            return bool(held)
        except Exception:  # noqa: BLE001 - a broken connection means the lock is gone
            return False

    def _drop(self) -> None:
        """Forget our lock connection."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # it may already be broken
                self._connection.close()
            self._connection = None

    def _set(self, *, leader: bool) -> bool:
        """Record and log a change of leadership."""
        if leader != self.is_leader:
            log.info("this replica %s the poller", "now runs" if leader else "no longer runs")
        self.is_leader = leader
        return leader
