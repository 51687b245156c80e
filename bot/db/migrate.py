"""Bring a database to the latest schema with Alembic, configured from code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

#: An arbitrary constant: the PostgreSQL advisory lock that serialises racing releases.
_MIGRATION_LOCK = 0x1E41B07


def migrations_dir() -> Path:
    """The Alembic scripts: shipped inside the wheel as bot/migrations, or the repository's migrations/."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the migrations folder is missing from this installation")


def _config() -> Config:
    """An Alembic config pointing at our scripts."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head() -> str:
    """The newest revision id."""
    head_revision = ScriptDirectory.from_config(_config()).get_current_head()
    if head_revision is None:
        raise RuntimeError("the migrations have no head revision")
    return head_revision


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to `revision`; on PostgreSQL under an advisory lock so two racing releases migrate once."""
    config = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        _begin_sqlite(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade to `revision` (for tests and emergencies)."""
    config = _config()
    with engine.begin() as conn:
        _begin_sqlite(conn)
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _begin_sqlite(conn: Connection) -> None:
    """On SQLite, open the transaction now, so that the DDL of every revision is in it too.

    Python's sqlite3 begins a transaction only before an INSERT, UPDATE or DELETE, and runs DDL outside any:
    a revision that fails after an earlier one dropped a table (0009's downgrade refusing, after 0010's dropped
    the registry) would leave that change committed and the recorded revision unchanged. SQLite's DDL is
    transactional once a transaction is open; COMMIT and ROLLBACK of the connection end it as usual.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")
