"""Database tables, as typed SQLAlchemy 2 models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.lexi.models import TaskState

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Every state a task record may be in (bot.lexi.models.TaskState); a CHECK constraint holds the column to them.
STATES = tuple(TaskState)
#: The CHECK that holds tasks.state to STATES (named ck_tasks_state by the naming convention; migration 0007).
STATE_CHECK = "state IN (" + ", ".join(f"'{state}'" for state in STATES) + ")"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; SQLite gets it without an offset."""
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - SQLAlchemy's signature
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: The workspace of single-workspace mode: rows written before workspaces existed, and every row a bot serving one
#: Slack workspace writes (the column's server default). In multi-workspace mode a row's `workspace` is the Slack
#: team (or Enterprise Grid org) id it belongs to; every statement of the store filters by it (Store.scoped).
SINGLE_WORKSPACE = ""


#: Finished tasks whose thread reply is still owed; one text for the partial index and its query.
UNREPLIED = f"replied_state IS NULL AND state IN ('{TaskState.COMPLETED}', '{TaskState.FAILED}')"


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention, so migrations name things predictably."""

    metadata = MetaData(naming_convention=NAMING)


class TaskRecord(Base):
    """One announced task: its Slack message, our state of it, and who decided it."""

    __tablename__ = "tasks"

    # The key is (workspace, task_id): two Slack workspaces may see the same LeadLex task id.
    workspace: Mapped[str] = mapped_column(String(64), primary_key=True, server_default=SINGLE_WORKSPACE)
    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    task_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(16))
    surface: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    rendered_version: Mapped[int] = mapped_column(Integer, default=0)
    #: Whether the card has copies (card_copies): a card update reads them only then (most cards have none).
    has_copies: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    needs_render: Mapped[bool] = mapped_column(Boolean, default=False)
    replied_state: Mapped[str | None] = mapped_column(String(20))
    approvals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The signed time (webhook envelope `timestamp`) of the content last applied; older content is dropped.
    content_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The accepted decision (Decision.id) whose claim holds this task in `deciding`.
    decision_id: Mapped[int | None] = mapped_column(Integer)
    #: When a decision in progress was taken over from a process that died (the card says it resumed).
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the task, still waiting, was escalated to the policy's `escalate_to` (migration 0013); NULL: not yet.
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(STATE_CHECK, name="state"),
        # Every index leads with the workspace: every query of the store filters by it (migration 0009).
        Index("ix_tasks_state", "workspace", "state", "replied_state"),
        # Partial: only the few cards waiting for an update are indexed, so the lookup stays flat with history;
        # in the order Store.unrendered reads them. Each predicate is written as SQLAlchemy renders
        # `.where(needs_render)` for that database, so that the planner can use the index.
        Index(
            "ix_tasks_needs_render",
            "workspace",
            "updated_at",
            postgresql_where=text("needs_render"),
            sqlite_where=text("needs_render = 1"),
        ),
        # Partial: only finished tasks whose thread reply is still owed (Store.unreplied uses this very text).
        Index(
            "ix_tasks_unreplied",
            "workspace",
            "task_id",
            postgresql_where=text(UNREPLIED),
            sqlite_where=text(UNREPLIED),
        ),
        Index("ix_tasks_decided_at", "workspace", "decided_at"),
    )


#: The kinds of card copy: in an approver's DM (the policy's `notify`), or in the thread where Lexi prepared the task.
COPY_KINDS = ("dm", "thread")
#: The CHECK that holds card_copies.kind to COPY_KINDS (ck_card_copies_kind; migration 0012).
COPY_KIND_CHECK = "kind IN (" + ", ".join(f"'{kind}'" for kind in COPY_KINDS) + ")"


class CardCopy(Base):
    """One more card of a task, beside the one on its record (tasks.channel/message_ts), kept showing the same state.

    A row is the claim to post the copy, taken before posting (`ts` NULL until Slack answered), so a retry or a
    restart never posts it twice; `rendered_version` is the task version the copy shows.
    """

    __tablename__ = "card_copies"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True, server_default=SINGLE_WORKSPACE)
    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: The thread the copy was posted in (kind 'thread'), else NULL.
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    rendered_version: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(COPY_KIND_CHECK, name="kind"),
        # Partial: only the copies claimed and not yet posted, which recovery looks for (Store.stale_copies).
        Index(
            "ix_card_copies_unposted",
            "workspace",
            "claimed_at",
            postgresql_where=text("ts IS NULL"),
            sqlite_where=text("ts IS NULL"),
        ),
    )


class Conversation(Base):
    """The Lexi conversation one person continues with `/lexi ask` in one channel."""

    __tablename__ = "conversations"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True, server_default=SINGLE_WORKSPACE)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """One entry of the append-only audit trail: what happened to a task, who did it, through which surface."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace: Mapped[str] = mapped_column(String(64), server_default=SINGLE_WORKSPACE)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    task_id: Mapped[str | None] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(100))
    surface: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_events_at", "workspace", "at"),
        Index("ix_audit_events_task_id", "workspace", "task_id"),
    )


class DigestSent(Base):
    """One day's digest of the waiting tasks, claimed by the process that sends it (migration 0011)."""

    __tablename__ = "digests"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True, server_default=SINGLE_WORKSPACE)
    #: Where it went: channel | approvers (bot.core.policy.DIGEST_TARGETS).
    target: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: The digest's date in the policy's time zone, YYYY-MM-DD.
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: How many messages it made (None until they are out).
    sent: Mapped[int | None] = mapped_column(Integer)


class SeenRequest(Base):
    """A signed request already acted on (a webhook body's hash, a Slack signature), kept while it could be replayed.

    Global, not per workspace: a key is a hash or signature of the request itself (unique without a workspace),
    and a replay must be refused whichever workspace it claims or is routed to; the keys hold no workspace's
    data and expire within minutes.
    """

    __tablename__ = "seen_requests"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_seen_requests_expires_at", "expires_at"),)


#: Accepted decisions not yet carried out to the end; one text for the partial index and its query.
OPEN_DECISIONS = "stage <> 'done'"
#: Decisions carried out (the ones pruned); implied by Store.prune_decisions' `done_at < ?`.
DONE_DECISIONS = "done_at IS NOT NULL"


class Decision(Base):
    """A decision Slack was told was accepted: journaled before the acknowledgement, carried out under a lease.

    `stage`: `accepted` (recorded, not yet checked or claimed), `claimed` (holds the task in `deciding`),
    `done`. `owner` is the process carrying it out while `lease_until` lies ahead; any live process takes over
    an open decision whose lease has run out.
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The workspace of the task it decides (the id stays the key: the database numbers decisions).
    workspace: Mapped[str] = mapped_column(String(64), server_default=SINGLE_WORKSPACE)
    task_id: Mapped[str] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16))
    surface: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    #: How to answer the person privately: {"channel", "response_url", "in_channel"}.
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stage: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Partial: only open decisions are indexed, so the sweep for expired leases stays flat with history.
        Index(
            "ix_decisions_open",
            "workspace",
            "lease_until",
            postgresql_where=text(OPEN_DECISIONS),
            sqlite_where=text(OPEN_DECISIONS),
        ),
        # Partial: only decisions carried out, so that it never competes with ix_decisions_open for the sweep
        # (SQLite, without statistics, picked it for `workspace = ?` and read every decision ever made).
        Index(
            "ix_decisions_done_at",
            "workspace",
            "done_at",
            postgresql_where=text(DONE_DECISIONS),
            sqlite_where=text(DONE_DECISIONS),
        ),
    )


#: The states of a workspace in the registry (bot.db.workspaces): installed (the app is in the Slack workspace),
#: connected (a LeadLex key and a channel are set: the bot serves it), uninstalled (its secrets are deleted).
WORKSPACE_STATES = ("installed", "connected", "uninstalled")
#: The CHECK that holds workspaces.state to WORKSPACE_STATES (ck_workspaces_state; migration 0010).
WORKSPACE_STATE_CHECK = "state IN (" + ", ".join(f"'{state}'" for state in WORKSPACE_STATES) + ")"
#: The workspaces the scheduler polls; one text for the partial index and its query.
CONNECTED = "state = 'connected'"


class WorkspaceRecord(Base):
    """One installed Slack workspace (multi-workspace mode): its LeadLex connection, configuration and polling.

    `id` is the Slack team id, or the Enterprise Grid org id of an org-wide install: the `workspace` of its rows in
    the other tables. `lexi_key` and `webhook_secret` are Fernet tokens (bot.db.vault), never clear text.
    """

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(String(64))
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean)
    #: The Slack user who installed the app (U… or W…).
    installer: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    #: The LeadLex API base URL this workspace's key belongs to (None: the default one).
    lexi_api_url: Mapped[str | None] = mapped_column(String(500))
    lexi_key: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(32))
    #: Slack user ids (U…, W…) and user-group ids (S…) who may decide; empty: anyone in the channel.
    approvers: Mapped[list[str]] = mapped_column(JSON)
    policy_yaml: Mapped[str | None] = mapped_column(Text)
    webhook_id: Mapped[str | None] = mapped_column(String(255))
    webhook_secret: Mapped[str | None] = mapped_column(Text)
    #: The unguessable token in this workspace's webhook delivery URL.
    webhook_path: Mapped[str] = mapped_column(String(64), unique=True)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    budget_remaining: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(WORKSPACE_STATE_CHECK, name="state"),
        # Partial: only connected workspaces, by when their next poll is due (the scheduler's question).
        Index(
            "ix_workspaces_due",
            "next_poll_at",
            postgresql_where=text(CONNECTED),
            sqlite_where=text(CONNECTED),
        ),
    )


# slack_sdk's OAuth tables, for its SQLAlchemy installation and state stores on the bot's own engine
# (bot.slack.install). slack_sdk describes them itself; they are on our metadata so that migration 0008, which
# creates them, is checked against slack_sdk's own description like every other table against its model.
SLACK_INSTALLATIONS = SQLAlchemyInstallationStore.build_installations_table(Base.metadata, "slack_installations")
SLACK_BOTS = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, "slack_bots")
SLACK_OAUTH_STATES = SQLAlchemyOAuthStateStore.build_oauth_states_table(Base.metadata, "slack_oauth_states")
