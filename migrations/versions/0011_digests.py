"""The daily digests sent: one row per workspace, target and day, claimed before the digest is sent.

The key (workspace, target, day) makes the claim atomic: of two replicas (or a restarted process) that find the
digest due, one inserts the row and sends it; the other finds it there and sends nothing. `day` is the digest's
date in the policy's time zone (YYYY-MM-DD); `target` is where it went (channel | approvers); `sent` is how many
messages it made, written once they are out (NULL: claimed, and the process stopped before it finished).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the digests table."""
    op.create_table(
        "digests",
        sa.Column("workspace", sa.String(64), nullable=False, server_default=""),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("workspace", "target", "day", name=op.f("pk_digests")),
    )


def downgrade() -> None:
    """Drop the digests table (the record of which days' digests went out)."""
    op.drop_table("digests")
