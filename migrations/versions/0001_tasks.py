"""Record each announced task, its Slack message and our state of it.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tasks table."""
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("action", sa.String(16), nullable=True),
        sa.Column("surface", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rendered_version", sa.Integer(), nullable=False),
        sa.Column("needs_render", sa.Boolean(), nullable=False),
        sa.Column("replied_state", sa.String(20), nullable=True),
        sa.Column("announced_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_state", "tasks", ["state", "replied_state"])
    op.create_index(
        "ix_tasks_needs_render",
        "tasks",
        ["needs_render"],
        postgresql_where=sa.text("needs_render"),
        sqlite_where=sa.text("needs_render = 1"),
    )
    unreplied = "replied_state IS NULL AND state IN ('completed', 'failed')"
    op.create_index(
        "ix_tasks_unreplied",
        "tasks",
        ["task_id"],
        postgresql_where=sa.text(unreplied),
        sqlite_where=sa.text(unreplied),
    )


def downgrade() -> None:
    """Drop the tasks table."""
    op.drop_index("ix_tasks_unreplied", table_name="tasks")
    op.drop_index("ix_tasks_needs_render", table_name="tasks")
    op.drop_index("ix_tasks_state", table_name="tasks")
    op.drop_table("tasks")
