"""Every card of a task beside the one on its record: approvers' DMs (`notify`) and the thread Lexi answered in.

card_copies: one row per (workspace, task_id, channel), the claim to post a copy taken before posting (`ts` NULL
until Slack answered: a retry or a restart never posts it twice), with the version the copy shows
(`rendered_version`), so that every decision updates every copy. `kind` is held by a CHECK to dm | thread.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: The kinds as of this revision (written out: a later kind needs a migration of its own).
KINDS = ("dm", "thread")


def upgrade() -> None:
    """Create the card_copies table, keyed by workspace first as every table of workspace data."""
    op.create_table(
        "card_copies",
        sa.Column("workspace", sa.String(64), server_default="", nullable=False),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("thread_ts", sa.String(32), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("rendered_version", sa.Integer(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "task_id", "channel", name=op.f("pk_card_copies")),
        sa.CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind}'" for kind in KINDS) + ")", name=op.f("ck_card_copies_kind")
        ),
    )


def downgrade() -> None:
    """Drop the card_copies table (the copies stay in Slack; they are no longer kept in sync)."""
    op.drop_table("card_copies")
