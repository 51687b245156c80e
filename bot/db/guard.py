"""Before a command opens the database: a DATABASE_URL that can work, and one process per SQLite file.

A second `lexi-bot run` on the same SQLite file would break exactly-once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError, StoreBusyError


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


def require_usable_database_url(url: str) -> None:
    """Refuse a DATABASE_URL that cannot work, saying why: unparseable, an SQLite folder missing, a folder as file.

    SQLite alone would only say "unable to open database file"; SQLAlchemy would print the URL, password and all.
    """
    try:
        make_url(url).port  # noqa: B018 - parsing the port is what fails for "host:abc"
        path = sqlite_path(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL is not a database URL: use sqlite:///path/to/lexi-bot.db or "
            "postgresql://user:password@host:5432/database (a port is a number)"
        ) from None
    if path is not None and path.is_dir():
        raise ConfigError(
            f"DATABASE_URL points SQLite at the folder {path}: name a file in it, e.g. {path / 'lexi-bot.db'}"
        )
    if path is not None and not path.parent.is_dir():
        raise ConfigError(
            f"the folder {path.parent} does not exist, so the SQLite database {path.name} cannot be created there: "
            f"create the folder (mkdir -p {path.parent}) or fix DATABASE_URL"
        )


def sqlite_missing(url: str) -> Path | None:
    """The SQLite file behind `url` when it does not exist yet (None when it does, or for other databases)."""
    path = sqlite_path(url)
    return path if path is not None and not path.exists() else None


def lock_sqlite(url: str) -> IO[str] | None:
    """Hold an exclusive lock beside the SQLite file for this process's life; raise if another holds it."""
    require_usable_database_url(url)
    path = sqlite_path(url)
    if path is None:
        return None
    try:
        handle = Path(f"{path}.lock").open("a+")  # noqa: SIM115 - held open for the life of the process
    except OSError as exc:
        raise ConfigError(
            f"cannot create the lock file {path}.lock ({exc.strerror}): the folder must be writable by the bot"
        ) from None
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
