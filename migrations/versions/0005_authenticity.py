"""Authenticity: a shared replay cache for signed requests, and the signed time of each task's content.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create seen_requests; add tasks.content_signed_at."""
    op.create_table(
        "seen_requests",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_seen_requests")),
    )
    op.create_index("ix_seen_requests_expires_at", "seen_requests", ["expires_at"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("content_signed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Drop tasks.content_signed_at and seen_requests."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("content_signed_at")
    op.drop_index("ix_seen_requests_expires_at", table_name="seen_requests")
    op.drop_table("seen_requests")
