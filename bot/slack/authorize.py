"""Authorizing each request in multi-workspace mode: Bolt's installation-store authorizer, made fit for replicas.

Bolt finds a request's installation, refreshes its bot token when token rotation says it is due, and asks Slack's
auth.test about the token. Two things are added here: a refresh runs once per workspace at a time, across threads
and replicas (Slack's refresh tokens are single-use), and auth.test's answers are kept per token, bounded, so a
request does not wait on a round trip to Slack before its ack.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


class SerialRefreshAuthorize(InstallationStoreAuthorize):
    """Bolt's authorizer, refreshing a workspace's bot token once at a time, across threads and replicas.

    Slack's refresh tokens are single-use: two requests of one workspace refreshing at once (two threads, or two
    replicas) would spend the same refresh token twice, and the loser's request would be dropped. Here a refresh
    runs under a lock per workspace (on PostgreSQL also a transaction-scoped advisory lock, so across replicas);
    whoever waited re-reads the installation and uses the token the other one got.
    """

    #: Seconds a request waits for another's refresh of the same workspace before trying on its own.
    LOCK_TIMEOUT = 10.0

    def __init__(self, *, engine: Engine, **options: Any) -> None:
        super().__init__(**options)
        self._engine = engine

    def _rotate_and_save_tokens_if_necessary(self, installation: Installation | None) -> Installation | None:
        """Refresh an expiring bot token under the workspace's lock, unless another refresh just did."""
        if installation is None or not self._expiring(installation):
            return super()._rotate_and_save_tokens_if_necessary(installation)
        key = f"{installation.enterprise_id}:{installation.team_id}:{installation.is_enterprise_install}"
        with refresh_lock(self._engine, key, self.LOCK_TIMEOUT):
            current = self.installation_store.find_installation(
                enterprise_id=installation.enterprise_id,
                team_id=installation.team_id,
                is_enterprise_install=installation.is_enterprise_install,
            )
            if current is not None and current.bot_token != installation.bot_token and not self._expiring(current):
                return current  # refreshed meanwhile, by another thread or replica
            return super()._rotate_and_save_tokens_if_necessary(current or installation)

    def bot_token(self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool) -> str | None:
        """A workspace's bot token for work no request carries (a poll), refreshed first when it is expiring.

        The refresh is the one requests run (once at a time per workspace, across replicas); a failed refresh
        raises slack_sdk's SlackTokenRotationError. None when the workspace has no bot installed.
        """
        installation = self.installation_store.find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        if installation is None:
            return None
        refreshed = self._rotate_and_save_tokens_if_necessary(installation)
        return (refreshed or installation).bot_token

    def _expiring(self, installation: Installation) -> bool:
        """Whether the bot token is due for a refresh (Bolt's own rule: within the rotation window)."""
        expires_at = installation.bot_token_expires_at
        window = self.token_rotation_expiration_minutes * 60
        return (
            installation.bot_refresh_token is not None and expires_at is not None and expires_at <= time.time() + window
        )


#: In-process locks per (database, workspace) for token refreshes, shared by every app of this process.
_REFRESH_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_REFRESH_LOCKS_GUARD = threading.Lock()


def advisory_key(key: str) -> int:
    """The PostgreSQL advisory lock number of a workspace's token refreshes."""
    return int.from_bytes(hashlib.sha256(f"lexi-refresh:{key}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def refresh_lock(engine: Engine, key: str, timeout: float) -> Iterator[None]:
    """Hold a workspace's refresh lock: in this process, and on PostgreSQL across replicas (bounded waits)."""
    with _REFRESH_LOCKS_GUARD:
        lock = _REFRESH_LOCKS.setdefault((str(engine.url), key), threading.Lock())
    held = lock.acquire(timeout=timeout)
    if not held:
        log.warning("a token refresh waited %.0f s for another one of the same workspace; trying anyway", timeout)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        number = advisory_key(key)
        # A transaction-scoped advisory lock, held on a connection of its own until it is closed (rolled back).
        with engine.connect() as conn:
            try:
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout * 1000)}ms'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})
            except DBAPIError as exc:
                log.warning(
                    "a token refresh could not take its workspace's lock (%s); trying anyway", type(exc).__name__
                )
                conn.rollback()
            yield
    finally:
        if held:
            lock.release()


class AuthorizeResults(dict[str, AuthorizeResult]):
    """Bolt's authorize results by bot token (what auth.test said of it), bounded and safe across threads.

    Bolt asks `token in cache` and then reads `cache[token]`; an entry looked at in the last GRACE seconds is
    never dropped, so that read cannot miss. Past `limit` entries, the ones unused for longer are dropped, oldest
    first (rotated tokens leave one behind every 12 hours per workspace). A result is only looked up for a token
    the installation store still holds, so an uninstalled workspace's entry is never used.
    """

    GRACE = 60.0

    def __init__(self, limit: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._limit = limit
        self._clock = clock
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def __contains__(self, token: object) -> bool:
        """Whether a result is kept for `token` (which then counts as used now)."""
        with self._lock:
            found = super().__contains__(token)
            if found and isinstance(token, str):
                self._used[token] = self._clock()
            return found

    def __setitem__(self, token: str, result: AuthorizeResult) -> None:
        """Keep a result, dropping long-unused ones while there are more than the limit."""
        with self._lock:
            now = self._clock()
            super().__setitem__(token, result)
            self._used[token] = now
            if len(self) > self._limit:
                for old, used in sorted(self._used.items(), key=lambda item: item[1]):
                    if len(self) <= self._limit or used > now - self.GRACE:
                        break
                    super().__delitem__(old)
                    del self._used[old]
