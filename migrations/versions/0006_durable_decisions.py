"""Durable decisions: a journal of accepted decisions carried out under leases, linked from the task they hold.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import OPEN_DECISIONS, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create decisions; add tasks.decision_id and tasks.resumed_at."""
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("surface", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(
        "ix_decisions_open",
        "decisions",
        ["lease_until"],
        postgresql_where=sa.text(OPEN_DECISIONS),
        sqlite_where=sa.text(OPEN_DECISIONS),
    )
    op.create_index("ix_decisions_done_at", "decisions", ["done_at"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("decision_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resumed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Drop tasks.resumed_at, tasks.decision_id and decisions."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("resumed_at")
        batch.drop_column("decision_id")
    op.drop_index("ix_decisions_done_at", table_name="decisions")
    op.drop_index("ix_decisions_open", table_name="decisions")
    op.drop_table("decisions")
