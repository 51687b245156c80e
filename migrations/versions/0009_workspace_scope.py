"""Every stored row belongs to one workspace: a `workspace` column on every table of workspace data, leading each key.

tasks, conversations, audit_events and decisions gain `workspace` (String(64), NOT NULL, server default '': the
single-workspace mode's workspace, so existing rows and that mode need nothing). A task's key becomes
(workspace, task_id), as two Slack workspaces may see the same LeadLex task id; a conversation's becomes
(workspace, user_id, channel). Every index leads with `workspace`, since every query of the store filters by it;
the partial indexes keep their predicates (the poll cycle's statements stay index-backed). The needs_render index
now holds (workspace, updated_at), the order Store.unrendered reads in; the done_at index of decisions becomes
partial (done_at IS NOT NULL), so that SQLite never prefers it to ix_decisions_open for the sweep of open ones.

seen_requests stays global: its keys are hashes or signatures of the signed requests themselves (unique without a
workspace), a replay must be refused whichever workspace it claims or is routed to, and they hold no workspace's
data (they expire within minutes).

SQLite changes keys by rebuilding the table (batch mode); the indexes are dropped before and created after it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: The predicates of the partial indexes as of this revision (written out: a later change needs its own migration).
UNREPLIED = "replied_state IS NULL AND state IN ('completed', 'failed')"
OPEN_DECISIONS = "stage <> 'done'"
DONE_DECISIONS = "done_at IS NOT NULL"
NEEDS_RENDER = {"postgresql_where": sa.text("needs_render"), "sqlite_where": sa.text("needs_render = 1")}

#: The tables of workspace data.
SCOPED = ("tasks", "conversations", "audit_events", "decisions")


def _workspace() -> sa.Column[str]:
    """The new column: existing rows belong to the single-workspace mode's workspace ''."""
    return sa.Column("workspace", sa.String(64), nullable=False, server_default="")


def _indexes(*, scoped: bool) -> list[tuple[str, str, list[str], dict[str, object]]]:
    """Every index on a scoped table: (name, table, columns, options), led by `workspace` when `scoped`."""
    lead = ["workspace"] if scoped else []
    partial_unreplied = {"postgresql_where": sa.text(UNREPLIED), "sqlite_where": sa.text(UNREPLIED)}
    partial_open = {"postgresql_where": sa.text(OPEN_DECISIONS), "sqlite_where": sa.text(OPEN_DECISIONS)}
    partial_done = {"postgresql_where": sa.text(DONE_DECISIONS), "sqlite_where": sa.text(DONE_DECISIONS)}
    return [
        ("ix_tasks_state", "tasks", [*lead, "state", "replied_state"], {}),
        ("ix_tasks_needs_render", "tasks", [*lead, "updated_at"] if scoped else ["needs_render"], NEEDS_RENDER),
        ("ix_tasks_unreplied", "tasks", [*lead, "task_id"], partial_unreplied),
        ("ix_tasks_decided_at", "tasks", [*lead, "decided_at"], {}),
        ("ix_audit_events_at", "audit_events", [*lead, "at"], {}),
        ("ix_audit_events_task_id", "audit_events", [*lead, "task_id"], {}),
        ("ix_decisions_open", "decisions", [*lead, "lease_until"], partial_open),
        ("ix_decisions_done_at", "decisions", [*lead, "done_at"], partial_done if scoped else {}),
    ]


def _create_indexes(*, scoped: bool) -> None:
    """Create the indexes of one side of this revision."""
    for name, table, columns, options in _indexes(scoped=scoped):
        op.create_index(name, table, columns, **options)  # type: ignore[arg-type]


def _drop_indexes(*, scoped: bool) -> None:
    """Drop the indexes of one side of this revision."""
    for name, table, _columns, _options in _indexes(scoped=scoped):
        op.drop_index(name, table_name=table)


def _set_key(table: str, columns: list[str]) -> None:
    """Make `columns` the table's primary key (pk_<table>) in the open batch."""
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f"pk_{table}"), type_="primary")
        batch.create_primary_key(op.f(f"pk_{table}"), columns)


def upgrade() -> None:
    """Add `workspace` to every table of workspace data; keys and indexes lead with it."""
    _drop_indexes(scoped=False)
    for table in SCOPED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_workspace())
    _set_key("tasks", ["workspace", "task_id"])
    _set_key("conversations", ["workspace", "user_id", "channel"])
    _create_indexes(scoped=True)


def downgrade() -> None:
    """Drop `workspace` again; refused while any row belongs to a workspace other than '' (purge those first).

    Without the column, two workspaces' rows could no longer be told apart (nor two records of one task id kept).
    """
    connection = op.get_bind()
    for table in SCOPED:
        others = connection.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE workspace <> ''")).scalar()  # noqa: S608 - a constant table name
        if others:
            raise RuntimeError(
                f"{table} holds {others} row(s) of workspaces other than the single-workspace one: "
                "purge them (lexi-bot workspace purge) before downgrading below 0009"
            )
    _drop_indexes(scoped=True)
    _set_key("conversations", ["user_id", "channel"])
    _set_key("tasks", ["task_id"])
    for table in SCOPED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("workspace")
    _create_indexes(scoped=False)
