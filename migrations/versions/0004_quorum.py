"""Approvals collected towards a quorum, on the task record.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add tasks.approvals: {"needed": N, "by": [user ids]}."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("approvals", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop tasks.approvals."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("approvals")
