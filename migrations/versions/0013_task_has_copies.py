"""A flag on each task saying whether its card has copies, so that a card update reads card_copies only then.

tasks.has_copies is set (in the same transaction) when a copy is claimed (Store.claim_copy); tasks whose cards were
copied before this revision are marked from card_copies.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add tasks.has_copies (false), then mark the tasks that have copies already."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("has_copies", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE tasks SET has_copies = true WHERE EXISTS (SELECT 1 FROM card_copies c "
        "WHERE c.workspace = tasks.workspace AND c.task_id = tasks.task_id)"
    )


def downgrade() -> None:
    """Drop the flag."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("has_copies")
