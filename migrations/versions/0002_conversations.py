"""Remember each person's Lexi conversation per channel; index decisions by time for the App Home.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the conversations table and the index of decision times."""
    op.create_table(
        "conversations",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "channel", name=op.f("pk_conversations")),
    )
    op.create_index("ix_tasks_decided_at", "tasks", ["decided_at"])


def downgrade() -> None:
    """Drop the index of decision times and the conversations table."""
    op.drop_index("ix_tasks_decided_at", table_name="tasks")
    op.drop_table("conversations")
