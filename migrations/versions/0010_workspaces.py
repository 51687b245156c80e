"""The workspace registry: one row per installed Slack workspace, with its LeadLex connection and configuration.

A row's id is the Slack team id, or the Enterprise Grid org id of an org-wide install (the `workspace` every row of
the scoped store carries, migration 0009). Secrets (the LeadLex key, the webhook signing secret) are stored as
Fernet tokens (bot.db.vault): never in clear. `state` is held by a CHECK to installed | connected | uninstalled.
`webhook_path` is the unguessable token of the workspace's delivery URL, unique. The scheduler asks for the
connected workspaces whose next poll is due: a partial index on next_poll_at over the connected rows answers it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: The states as of this revision (written out: a later state needs a migration of its own).
STATES = ("installed", "connected", "uninstalled")
#: The rows the scheduler polls (the partial index's predicate, as of this revision).
CONNECTED = "state = 'connected'"


def upgrade() -> None:
    """Create the workspaces table and its index of connected workspaces by next poll."""
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=True),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("installer", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lexi_api_url", sa.String(500), nullable=True),
        sa.Column("lexi_key", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("policy_yaml", sa.Text(), nullable=True),
        sa.Column("webhook_id", sa.String(255), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=True),
        sa.Column("webhook_path", sa.String(64), nullable=False),
        sa.Column("next_poll_at", UTCDateTime(), nullable=True),
        sa.Column("last_poll_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("budget_remaining", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("webhook_path", name=op.f("uq_workspaces_webhook_path")),
        sa.CheckConstraint(
            "state IN (" + ", ".join(f"'{state}'" for state in STATES) + ")", name=op.f("ck_workspaces_state")
        ),
    )
    op.create_index(
        "ix_workspaces_due",
        "workspaces",
        ["next_poll_at"],
        postgresql_where=sa.text(CONNECTED),
        sqlite_where=sa.text(CONNECTED),
    )


def downgrade() -> None:
    """Drop the workspaces table (its rows with it: the registry of installs and their encrypted keys)."""
    op.drop_index("ix_workspaces_due", table_name="workspaces")
    op.drop_table("workspaces")
