"""Alembic environment: configured from code (bot.db.migrate), never from an alembic.ini or fileConfig."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from bot.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    """Run the migrations on one connection, in one transaction."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - bot.db.migrate always passes a connection
    raise RuntimeError("run migrations with `lexi-bot migrate`, which passes a connection")
_run(connection)
