"""One process per SQLite file: a second `lexi-bot run` on the same file would break exactly-once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from bot.errors import StoreBusyError


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def lock_sqlite(url: str) -> IO[str] | None:
    """Hold an exclusive lock beside the SQLite file for this process's life; raise if another holds it."""
    path = sqlite_path(url)
    if path is None:
        return None
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreBusyError(
            f"another lexi-bot process is already running on {path.name}. SQLite supports one process; "
            "stop the other one, or use PostgreSQL (DATABASE_URL=postgresql://…) to run several."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
