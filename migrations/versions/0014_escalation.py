"""When a task nobody decided in time was escalated (`escalate_to` after `escalate_after`).

tasks.escalated_at: NULL until the one process whose conditional UPDATE (pending, not yet escalated) matched took
the escalation; from then on the escalation's people may decide the task too.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add tasks.escalated_at (NULL: not escalated)."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("escalated_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Drop tasks.escalated_at (the audit trail still says who each task was escalated to)."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("escalated_at")
