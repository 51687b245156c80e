"""A CHECK constraint on tasks.state: a record is only ever in one of the task states (bot.lexi.models.TaskState).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The states as of this revision (written out: a later state needs a migration of its own).
STATES = ("announcing", "pending", "deciding", "approved", "dismissed", "completed", "failed", "gone", "expired")


def upgrade() -> None:
    """Add ck_tasks_state (SQLite rebuilds the table to add it, in batch mode)."""
    with op.batch_alter_table("tasks") as batch:
        batch.create_check_constraint(
            op.f("ck_tasks_state"), "state IN (" + ", ".join(f"'{state}'" for state in STATES) + ")"
        )


def downgrade() -> None:
    """Drop ck_tasks_state."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(op.f("ck_tasks_state"), type_="check")
