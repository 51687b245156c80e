"""A partial index of the card copies claimed and not yet posted, which recovery looks for every cycle.

Recovery (bot.core.announcer.Announcer.recover_copies) finds the copies whose process died between the claim and
Slack's answer; the index holds only those few rows, so the lookup stays flat however many copies were posted.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ix_card_copies_unposted (workspace, claimed_at) WHERE ts IS NULL."""
    op.create_index(
        "ix_card_copies_unposted",
        "card_copies",
        ["workspace", "claimed_at"],
        postgresql_where=sa.text("ts IS NULL"),
        sqlite_where=sa.text("ts IS NULL"),
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_card_copies_unposted", table_name="card_copies")
