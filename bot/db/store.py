"""The store: the only code that opens transactions. Every state change is one atomic, conditional UPDATE.

Every row of workspace data belongs to one Slack workspace (models.SINGLE_WORKSPACE, '', in single-workspace mode).
A Store works on its own workspace's rows only: `Store(engine)` on '', `store.scoped(team_id)` on that team's.
Each of its statements filters by the workspace (a bound parameter, `p_ws`, in the pre-built ones) and each insert
writes it. Work that spans workspaces is not implicit: it has methods of its own, named for it (`purge_workspace`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import tenacity
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    Update,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from bot.db.models import OPEN_DECISIONS, SINGLE_WORKSPACE, STATES, UNREPLIED, Base
from bot.lexi.models import Task, TaskState

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: How long one store operation keeps retrying a lost connection (short: a click's ack may be waiting on it).
RETRY_FOR = 1.0
#: Seconds between two sweeps of expired request keys (first_sighting).
FORGET_EVERY = 10.0
#: How long a new PostgreSQL connection may take before the database counts as unreachable (psycopg: at least 2).
CONNECT_TIMEOUT = 2
#: A pooled PostgreSQL connection idle for longer than this (seconds) is pinged before it is used again.
PING_IDLE = 1.0
#: The memory SQLite keeps for the whole process, its connections' page caches above all (PRAGMA soft_heap_limit).
#: Each pooled connection may otherwise cache 2 MiB of pages, and a busy spell leaves up to 32 of them pooled: an hour
#: of a task a second grew SQLite's memory from 0.8 to 6.9 MiB, and still growing. Above the limit SQLite reuses the
#: least recently used cached pages; the file stays in the operating system's cache.
SQLITE_HEAP_LIMIT = 16 * 2**20


class Replayed(Exception):
    """Raised when a request recorded with its decision (`accept_decision(sighting=…)`) was seen before: a replay."""


class CommitUncertain(SQLAlchemyError):
    """Raised when the connection broke while COMMIT was under way: the transaction may or may not have landed."""


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or the connection broke (worth retrying).

    That is a failure to connect (no statement was sent) or one SQLAlchemy recognised as a disconnect. Other
    driver errors are not, even OperationalError: SQLite raises it for a missing table too.
    """
    if not isinstance(exc, DBAPIError) or isinstance(exc, CommitUncertain):
        return False
    return exc.connection_invalidated or exc.statement is None


def _retryable(exc: BaseException) -> bool:
    """A connection error on PostgreSQL; SQLite's errors are its file lock, which its busy timeout already waits on."""
    return is_connection_error(exc) and not _is_sqlite(exc)


def _is_sqlite(exc: BaseException) -> bool:
    """Whether the error comes from the sqlite3 driver."""
    orig = getattr(exc, "orig", None)
    return type(orig).__module__.startswith("sqlite3")


def _log_retry(state: tenacity.RetryCallState) -> None:
    """Log one retry of a store operation (the error's type only: its text may hold the URL)."""
    error = state.outcome.exception() if state.outcome is not None else None
    log.info(
        "database connection lost (%s); retrying %s",
        type(error).__name__,
        getattr(state.fn, "__name__", "a store operation"),
    )


def retried(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-run a store operation after a connection error, with backoff, for at most RETRY_FOR seconds.

    Only for operations that are safe to re-run: reads, and transactions whose failure came before COMMIT
    (PostgreSQL rolled them back). A failure during COMMIT is CommitUncertain and is never retried here.
    The first attempt runs directly: tenacity's machinery (built for each call) is entered only after a connection
    error, so the store's every call does not pay for it (a click makes about ten).
    """
    name = getattr(fn, "__name__", "a store operation")

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not _retryable(exc):
                raise
            log.info("database connection lost (%s); retrying %s", type(exc).__name__, name)
        time.sleep(0.05)  # the backoff's first step
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable),
            stop=tenacity.stop_after_delay(max(RETRY_FOR - (time.monotonic() - started), 0))
            | tenacity.stop_after_attempt(4),
            wait=tenacity.wait_exponential(multiplier=0.05, max=0.4) + tenacity.wait_random(0, 0.05),
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    return run


#: States a decision (in Slack or in LeadLex) has led to.
DECIDED_STATES = (TaskState.APPROVED, TaskState.DISMISSED, TaskState.COMPLETED, TaskState.FAILED)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Audit:
    """An audit event to write with a transition."""

    event: str
    actor: str | None = None
    surface: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class TaskRow:
    """A snapshot of one task record, detached from any session."""

    task_id: str
    task: Task
    state: str
    channel: str
    message_ts: str | None
    claimed_at: datetime
    actor: str | None
    action: str | None
    surface: str | None
    reason: str | None
    note: str | None
    decided_at: datetime | None
    version: int
    rendered_version: int
    replied_state: str | None
    announced_at: datetime
    updated_at: datetime
    approvals: dict[str, Any] | None = None
    decision_id: int | None = None
    resumed_at: datetime | None = None
    #: Whether copies of the card exist (Store.copies lists them).
    has_copies: bool = False
    escalated_at: datetime | None = None


@dataclass(frozen=True)
class CopyRow:
    """A snapshot of one copy of a task's card (see models.CardCopy); `ts` None: claimed, not posted (yet)."""

    task_id: str
    channel: str
    kind: str
    thread_ts: str | None
    ts: str | None
    rendered_version: int


@dataclass(frozen=True)
class StaleCopy:
    """A copy claimed and never recorded as posted (Store.stale_copies): where, and since when."""

    task_id: str
    channel: str
    kind: str
    thread_ts: str | None
    claimed_at: datetime


@dataclass(frozen=True)
class DecisionRow:
    """A snapshot of one accepted decision (see models.Decision)."""

    id: int
    task_id: str
    actor: str
    action: str
    surface: str
    reason: str | None
    note: str | None
    reply: dict[str, Any]
    stage: str
    owner: str | None
    attempts: int
    #: The task's record as this decision's claim left it, when the claim was made in the same write as the journal
    #: entry (this process only; never read back from the database).
    claimed: TaskRow | None = field(default=None, compare=False, repr=False)

    @property
    def resumed(self) -> bool:
        """Whether a process other than the one that accepted it carries it out (its first died)."""
        return self.attempts > 1


#: The tables, used directly: Core statements on them cost a fraction of ORM-enabled ones (no identity map,
#: no ORM compile step), and the store only ever hands out snapshots (TaskRow, DecisionRow).
TASKS = Base.metadata.tables["tasks"]
DECISIONS = Base.metadata.tables["decisions"]
AUDIT_EVENTS = Base.metadata.tables["audit_events"]
CONVERSATIONS = Base.metadata.tables["conversations"]
SEEN_REQUESTS = Base.metadata.tables["seen_requests"]
CARD_COPIES = Base.metadata.tables["card_copies"]
DIGESTS = Base.metadata.tables["digests"]
#: The tables holding one workspace's data, each with a `workspace` column (seen_requests is global: models).
#: Children before parents, the order purge_workspace deletes in.
WORKSPACE_TABLES = (CARD_COPIES, AUDIT_EVENTS, DECISIONS, CONVERSATIONS, DIGESTS, TASKS)
_T = TASKS.c
_D = DECISIONS.c
_A = AUDIT_EVENTS.c
_C = CONVERSATIONS.c
_K = CARD_COPIES.c
#: The longest workspace id a row holds (a Slack team or Enterprise Grid org id is far shorter).
WORKSPACE_MAX = 64

#: A row of a statement on the tables (any columns).
_Found = Row[*tuple[Any, ...]]

#: The columns a TaskRow is made of (the payload becomes its Task), in every read and RETURNING.
_ROW_COLUMNS = tuple(
    _T[name]
    for name in (
        "task_id",
        "payload",
        "state",
        "channel",
        "message_ts",
        "claimed_at",
        "actor",
        "action",
        "surface",
        "reason",
        "note",
        "decided_at",
        "version",
        "rendered_version",
        "replied_state",
        "approvals",
        "announced_at",
        "updated_at",
        "decision_id",
        "resumed_at",
        "has_copies",
        "escalated_at",
    )
)
_DECISION_COLUMNS = tuple(
    _D[name]
    for name in ("id", "task_id", "actor", "action", "surface", "reason", "note", "reply", "stage", "owner", "attempts")
)

# Statements run on every click, built once: a statement object keeps its cache key, so running it again costs
# neither the key's generation nor a compilation (the parameters are bound at execution).
# Each statement on workspace data is scoped by the bound parameter `p_ws` (the store's workspace): executing one
# without it fails, so no statement can forget its workspace and run on every workspace's rows.
_IN_WS = _T.workspace == bindparam("p_ws")
_D_IN_WS = _D.workspace == bindparam("p_ws")
_THE_TASK = (_IN_WS, _T.task_id == bindparam("p_task_id"))
_READ = select(*_ROW_COLUMNS).where(*_THE_TASK)
_READ_LOCKED = _READ.with_for_update()
_READ_DECISION = select(*_DECISION_COLUMNS).where(_D.id == bindparam("p_id"), _D_IN_WS)
_READ_DECIDER = select(_T.actor, _T.surface).where(*_THE_TASK)
_INSERT_AUDIT = insert(AUDIT_EVENTS)
_INSERT_DECISION = insert(DECISIONS).returning(_D.id)
_CLAIM = (
    update(TASKS)
    .where(*_THE_TASK, _T.state == TaskState.PENDING)
    .values(version=_T.version + 1, needs_render=True)
    .returning(*_ROW_COLUMNS)
)
#: The claim only while the record is still at the version a permission check saw (`p_version`). [SQLite]
_CLAIM_AT = _CLAIM.where(_T.version == bindparam("p_version"))
_CLAIM_STAGE = update(DECISIONS).where(_D.id == bindparam("p_id"), _D_IN_WS).values(stage="claimed")
#: A decision journaled as claimed whose claim then missed, in the same transaction: accepted after all. [SQLite]
_UNCLAIM_STAGE = update(DECISIONS).where(_D.id == bindparam("p_id"), _D_IN_WS).values(stage="accepted")
_CLOSE_DECISION = (
    update(DECISIONS)
    .where(_D.id == bindparam("p_id"), _D_IN_WS)
    .values(stage="done", owner=None, lease_until=None, reply=None)
)
_MARK_RENDERED = (
    update(TASKS)
    .where(*_THE_TASK, _T.rendered_version < bindparam("p_version"))
    .values(rendered_version=bindparam("p_version"), needs_render=_T.version > bindparam("p_version"))
    .returning(_T.version)
)


# PostgreSQL runs a transition and what goes with it (its audit event, its decision's stage) as one statement: each
# write a data-modifying CTE, all of them atomic together, one round trip (SQLite has no such CTEs: its path runs
# them one by one in one transaction). A statement inside a CTE takes no execution-time values: each value is bound
# by name (`v_…`), typed by its column.
def _bound(table_columns: Any, *names: str) -> dict[str, Any]:
    """Named, typed bound parameters (`v_<column>`) for these columns of one table."""
    return {name: bindparam(f"v_{name}", type_=table_columns[name].type) for name in names}


_AUDIT_NAMES = ("workspace", "at", "task_id", "event", "actor", "surface", "detail")


def _claim_in_one(*conditions: ColumnElement[bool]) -> Select[Any]:
    """The claim (pending → deciding, also under `conditions`) with its event and its decision's stage, in one.

    [PostgreSQL] The claim's `decision_started` event and its decision's stage `claimed`: the record as the claim
    left it, no row when someone else was first (then nothing was written).
    """
    claimed = (
        update(TASKS)
        .where(*_THE_TASK, _T.state == TaskState.PENDING, *conditions)
        .values(
            version=_T.version + 1,
            needs_render=True,
            **_bound(
                _T,
                "state",
                "actor",
                "action",
                "surface",
                "reason",
                "note",
                "claimed_at",
                "decided_at",
                "decision_id",
                "resumed_at",
                "updated_at",
            ),
        )
        .returning(*_ROW_COLUMNS)
        .cte("claimed")
    )
    return select(claimed).add_cte(
        insert(AUDIT_EVENTS)
        .from_select(
            _AUDIT_NAMES,
            select(
                bindparam("p_ws", type_=_A.workspace.type),
                claimed.c.updated_at,
                claimed.c.task_id,
                literal("decision_started", _A.event.type),
                claimed.c.actor,
                claimed.c.surface,
                claimed.c.action,
            ),
        )
        .cte("claim_audit"),
        update(DECISIONS)
        .where(_D.id == bindparam("p_id"), _D_IN_WS, select(claimed.c.task_id).exists())
        .values(stage="claimed")
        .cte("claim_stage"),
    )


_CLAIM_IN_ONE = _claim_in_one()
#: The same, only while the record is still at the version a permission check saw (`p_version`). [PostgreSQL]
_CLAIM_IN_ONE_AT = _claim_in_one(_T.version == bindparam("p_version"))
_FINISHED = (
    update(TASKS)
    .where(*_THE_TASK, _T.state == TaskState.DECIDING)
    .values(
        version=_T.version + 1,
        needs_render=True,
        actor=func.coalesce(bindparam("v_actor", type_=_T.actor.type), _T.actor),
        **_bound(_T, "state", "decided_at", "updated_at"),
    )
    .returning(*_ROW_COLUMNS)
    .cte("finished")
)
#: The outcome (deciding → approved / dismissed) and its `decided` event; LeadLex's answer's event before it (when
#: `v_answer_event` is not NULL, whatever the outcome), and the decision `p_id` closed (when not NULL). [PostgreSQL]
_FINISH_IN_ONE = select(_FINISHED).add_cte(
    insert(AUDIT_EVENTS)
    .from_select(
        _AUDIT_NAMES,
        union_all(
            select(
                bindparam("p_ws", type_=_A.workspace.type),
                bindparam("v_at", type_=_A.at.type),
                bindparam("p_task_id", type_=_A.task_id.type),
                bindparam("v_answer_event", type_=_A.event.type),
                bindparam("v_answer_actor", type_=_A.actor.type),
                bindparam("v_answer_surface", type_=_A.surface.type),
                bindparam("v_answer_detail", type_=_A.detail.type),
            ).where(bindparam("v_answer_event", type_=_A.event.type).is_not(None)),
            select(
                bindparam("p_ws", type_=_A.workspace.type),
                bindparam("v_at", type_=_A.at.type),
                _FINISHED.c.task_id,
                literal("decided", _A.event.type),
                _FINISHED.c.actor,
                _FINISHED.c.surface,
                _FINISHED.c.state,
            ),
        ),
    )
    .cte("finish_audit"),
    update(DECISIONS)
    .where(_D.id == bindparam("p_id"), _D_IN_WS)
    .values(stage="done", owner=None, lease_until=None, reply=None, done_at=bindparam("v_at", type_=_D.done_at.type))
    .cte("finish_close"),
)
_SEEN = (
    (seen := postgresql.insert(SEEN_REQUESTS).values(key=bindparam("p_key"), expires_at=bindparam("p_expires")))
    .on_conflict_do_update(
        index_elements=[SEEN_REQUESTS.c.key],
        set_={"expires_at": seen.excluded.expires_at},
        where=SEEN_REQUESTS.c.expires_at < bindparam("p_now"),
    )
    .returning(SEEN_REQUESTS.c.key)
    .cte("seen")
)
_ACCEPT_NAMES = (
    "workspace",
    "task_id",
    "actor",
    "action",
    "surface",
    "reason",
    "note",
    "reply",
    "stage",
    "owner",
    "lease_until",
    "attempts",
    "accepted_at",
)
#: A request remembered by its replay key and its decision journaled: the decision's id, no row when the request
#: was seen before (then nothing was written). [PostgreSQL]
_ACCEPT_IN_ONE = (
    insert(DECISIONS)
    .from_select(_ACCEPT_NAMES, select(*_bound(_D, *_ACCEPT_NAMES).values()).select_from(_SEEN))
    .returning(_D.id)
)

_FORGET_EXPIRED = delete(SEEN_REQUESTS).where(SEEN_REQUESTS.c.expires_at < bindparam("p_now"))
#: Remember a signed request unless it was seen and has not expired (atomic on both databases): a key whose
#: record expired (not swept yet) is taken over. [on SQLite, on PostgreSQL]
_SIGHT = tuple(
    (stmt := builder(SEEN_REQUESTS))
    .on_conflict_do_update(
        index_elements=[SEEN_REQUESTS.c.key],
        set_={"expires_at": stmt.excluded.expires_at},
        where=SEEN_REQUESTS.c.expires_at < bindparam("p_now"),
    )
    .returning(SEEN_REQUESTS.c.key)
    for builder in (sqlite.insert, postgresql.insert)
)
_IN_STATES = (
    select(*_ROW_COLUMNS)
    .where(_IN_WS, _T.state.in_(bindparam("p_states", expanding=True)))
    .order_by(_T.announced_at.desc())
)
_IN_STATES_LIMITED = _IN_STATES.limit(bindparam("p_limit"))
_FINISH = (
    update(TASKS)
    .where(*_THE_TASK, _T.state == TaskState.DECIDING)
    .values(version=_T.version + 1, needs_render=True)
    .returning(*_ROW_COLUMNS)
)
_RECENT_DECISIONS = (
    select(*_ROW_COLUMNS)
    .where(_IN_WS, _T.state.in_(DECIDED_STATES), _T.decided_at.is_not(None))
    .order_by(_T.decided_at.desc())
    .limit(bindparam("p_limit"))
)
_STALE = (
    select(*_ROW_COLUMNS)
    .where(_IN_WS, _T.state == bindparam("p_state"), _T.claimed_at < bindparam("p_cutoff"))
    .limit(200)
)
_UNRENDERED = (
    select(*_ROW_COLUMNS)
    .where(_IN_WS, _T.needs_render, _T.message_ts.is_not(None))
    .order_by(_T.updated_at)
    .limit(bindparam("p_limit"))
)
_UNREPLIED = (
    select(*_ROW_COLUMNS)
    .where(_IN_WS, text(UNREPLIED), _T.message_ts.is_not(None))  # the partial index's own text
    .limit(bindparam("p_limit"))
)
_ANY_TASK = select(_T.task_id).where(_IN_WS).limit(1)
_COUNT_IN_STATE = select(func.count()).select_from(TASKS).where(_IN_WS, _T.state == bindparam("p_state"))
_KNOWN = select(_T.task_id).where(_IN_WS, _T.task_id.in_(bindparam("p_ids", expanding=True)))
_CONVERSATION = select(_C.conversation_id).where(
    _C.workspace == bindparam("p_ws"), _C.user_id == bindparam("p_user"), _C.channel == bindparam("p_channel")
)
_RECORD_MESSAGE = (
    update(TASKS)
    .where(*_THE_TASK)
    .values(
        channel=bindparam("p_channel"),
        message_ts=bindparam("p_ts"),
        rendered_version=bindparam("p_rendered"),
        needs_render=_T.version > bindparam("p_rendered"),
        updated_at=bindparam("p_now"),
    )
)
_ANNOUNCED = update(TASKS).where(*_THE_TASK, _T.state == TaskState.ANNOUNCING).values(state=TaskState.PENDING)
_RELEASE_ANNOUNCEMENT = delete(TASKS).where(*_THE_TASK, _T.state == TaskState.ANNOUNCING, _T.message_ts.is_(None))


def _decision(found: _Found) -> DecisionRow:
    """Snapshot an accepted decision from its _DECISION_COLUMNS."""
    decision_id, task_id, actor, action, surface, reason, note, reply, stage, owner, attempts = found
    return DecisionRow(
        id=decision_id,
        task_id=task_id,
        actor=actor,
        action=action,
        surface=surface,
        reason=reason,
        note=note,
        reply=dict(reply or {}),
        stage=stage,
        owner=owner,
        attempts=attempts,
    )


def _row(found: _Found) -> TaskRow:
    """Snapshot a record from its _ROW_COLUMNS (unpacked by position: the cheapest way to read a row)."""
    (
        task_id,
        payload,
        state,
        channel,
        message_ts,
        claimed_at,
        actor,
        action,
        surface,
        reason,
        note,
        decided_at,
        version,
        rendered_version,
        replied_state,
        approvals,
        announced_at,
        updated_at,
        decision_id,
        resumed_at,
        has_copies,
        escalated_at,
    ) = found
    return TaskRow(
        task_id=task_id,
        task=Task.from_api(payload) or Task(id=task_id),
        state=state,
        channel=channel,
        message_ts=message_ts,
        claimed_at=claimed_at,
        actor=actor,
        action=action,
        surface=surface,
        reason=reason,
        note=note,
        decided_at=decided_at,
        version=version,
        rendered_version=rendered_version,
        replied_state=replied_state,
        approvals=approvals,
        announced_at=announced_at,
        updated_at=updated_at,
        decision_id=decision_id,
        resumed_at=resumed_at,
        has_copies=bool(has_copies),
        escalated_at=escalated_at,
    )


def _read(conn: Connection, workspace: str, task_id: str, *, lock: bool = False) -> TaskRow | None:
    """One task record of `workspace` read on `conn` (inside its transaction); `lock`: hold the row (PostgreSQL)."""
    found = conn.execute(_READ_LOCKED if lock else _READ, {"p_ws": workspace, "p_task_id": task_id}).first()
    return _row(found) if found is not None else None


def _read_decision(conn: Connection, workspace: str, decision_id: int) -> DecisionRow | None:
    """One accepted decision of `workspace` read on `conn` (inside its transaction)."""
    found = conn.execute(_READ_DECISION, {"p_ws": workspace, "p_id": decision_id}).first()
    return _decision(found) if found is not None else None


def not_newer_than(signed_at: datetime | None) -> tuple[ColumnElement[bool], ...]:
    """The condition that a record's content was signed no later than `signed_at` (None: no condition).

    Content is ordered by the time LeadLex signed it, so a late or replayed delivery never overwrites newer
    content; equal times apply in arrival order.
    """
    if signed_at is None:
        return ()
    return (or_(_T.content_signed_at.is_(None), _T.content_signed_at <= signed_at),)


class WriterLock:
    """A re-entrant lock for SQLite's single writer, handed over in turn: urgent holders first, then in arrival order.

    Each waiter waits on a gate of its own and the holder opens the next one when it lets go, so a release wakes one
    thread, not every waiter (with hundreds of decisions waiting, waking all of them on each commit cost more CPU
    than the writes did).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiting: list[tuple[int, int, int, threading.Lock]] = []  # a heap of (rank, arrival, thread, gate)
        self._arrivals = itertools.count()

    @contextmanager
    def hold(self, *, urgent: bool = False) -> Iterator[None]:
        """Hold the lock for the block; `urgent`: before every ordinary waiter."""
        self._acquire(urgent=urgent)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, *, urgent: bool) -> None:
        """Take the lock, or queue for it and wait until the holder hands it over."""
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None and not self._waiting:
                self._owner, self._depth = me, 1
                return
            gate = threading.Lock()
            gate.acquire()
            entry = (0 if urgent else 1, next(self._arrivals), me, gate)
            heapq.heappush(self._waiting, entry)
        try:
            gate.acquire()  # opened by the holder once this thread owns the lock
        except BaseException:  # interrupted while waiting: leave the queue, or pass on what was just handed over
            with self._mutex:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                    raise
            self._release()
            raise

    def _release(self) -> None:
        """Let go once; the outermost release hands the lock to the first waiter."""
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            if self._waiting:
                _rank, _arrival, thread, gate = heapq.heappop(self._waiting)
                self._owner, self._depth = thread, 1
                gate.release()
            else:
                self._owner = None


@dataclass(eq=False)
class _Queued:
    """One write waiting for a group commit: its work, and what came of it."""

    work: Callable[[Connection], Any]
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    """Writes someone waits on, from many threads at once, committed together (SQLite's one writer).

    Each transaction costs a turn of the writer lock and a commit: twenty clicks in flight each waited about 36 ms for
    their turn. Here the first thread to find nobody writing leads: it writes everything queued by then in one
    transaction, then hands the lead to the first write queued meanwhile. A write raising one of `alone` (it must
    have written nothing of its own, like a replay: a sweep of expired request keys before it may stay) fails alone;
    any other failure rolls the transaction back and every write in it raises that error (none of them was written).
    Not re-entrant: a thread already holding the writer lock must not call it (none does).
    """

    def __init__(self, *, alone: tuple[type[Exception], ...]) -> None:
        self._alone = alone
        self._mutex = threading.Lock()
        self._queued: list[_Queued] = []
        self._leading = False

    @property
    def waiting(self) -> int:
        """Writes queued for the next transaction."""
        with self._mutex:
            return len(self._queued)

    def run(self, work: Callable[[Connection], Any], begin: Callable[[], AbstractContextManager[Connection]]) -> Any:
        """Run `work(conn)` in a transaction shared with the writes queued with it; its result, or its error."""
        me = _Queued(work)
        with self._mutex:
            self._queued.append(me)
            if not self._leading:
                self._leading = me.leads = True
        if not me.leads:
            me.woken.wait()
        if not me.done:  # leading: write what is queued (this one included)
            self._lead(begin)
        if me.error is not None:
            raise me.error
        return me.result

    def _lead(self, begin: Callable[[], AbstractContextManager[Connection]]) -> None:
        """Write every queued write in one transaction, then wake them and hand the lead on."""
        with self._mutex:
            batch, self._queued = self._queued, []
        try:
            with begin() as conn:
                for queued in batch:
                    try:
                        queued.result = queued.work(conn)
                    except self._alone as exc:
                        queued.error = exc
        except BaseException as exc:  # noqa: BLE001 - rolled back: each write raises it in its own thread
            for queued in batch:
                queued.result, queued.error = None, exc
        finally:
            with self._mutex:
                for queued in batch:
                    queued.done = True
                if self._queued:
                    self._queued[0].leads = True
                    self._queued[0].woken.set()
                else:
                    self._leading = False
            for queued in batch:
                queued.woken.set()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and cross-thread use."""
    if url.startswith("sqlite"):
        # Threads wait for the store's writer lock, not for a pooled connection: enough connections for every
        # listener and decision thread that reads at once (WAL readers never block one another).
        # No pre-ping: a file does not drop connections, and the ping would cost every checkout a statement.
        # LIFO: the connection used last is used next, so under light load a few connections (and their page caches)
        # do the work instead of every pooled one in turn filling a cache of its own (slow, steady RSS growth).
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=32,
            max_overflow=96,
            pool_use_lifo=True,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT}")  # process-wide: the same on every connection
            cursor.close()

        return engine
    # The connect timeout keeps an unreachable server from holding a caller (or /readyz) for minutes.
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if url.startswith("postgresql") else {}
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True, connect_args=connect_args)
    ping_idle_connections(engine)
    return engine


def ping_idle_connections(engine: Engine, idle: float = PING_IDLE) -> None:
    """Ping a pooled connection at checkout when it sat idle for more than `idle` seconds; replace it if dead.

    SQLAlchemy's pool_pre_ping pings at every checkout: a round trip before each of a click's ten statements.
    A connection PostgreSQL dropped (a restart, a failover) is found among the idle ones; one given back a moment
    ago that breaks anyway fails its statement as a disconnect. Either invalidates the whole pool (after a restart
    every pooled connection is dead), and the store's operations are retried (`retried`).
    """

    @event.listens_for(engine, "checkin")
    def _given_back(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= idle:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means this connection cannot be used
            raise InvalidatePoolError(f"a pooled connection is dead ({type(exc).__name__})") from None
        if not alive:
            raise InvalidatePoolError("a pooled connection is dead")


class Store:
    """Intention-named operations on one workspace's task records, decisions, audit trail and Lexi conversations.

    `Store(engine)` works on the single-workspace mode's rows (workspace ''); `scoped(team_id)` gives a view on
    another workspace's. Every read, write, count and transition of a store touches its own workspace's rows only.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        #: The workspace whose rows this store reads and writes (see scoped).
        self.workspace = SINGLE_WORKSPACE
        self._now = clock
        # SQLite has one writer at a time. Left to itself, a writer that finds the file locked sleeps in SQLite's
        # busy handler (up to 100 ms a try), so with 20 clicks in flight some wait a second; queued on a lock in
        # this process (the only one using the file: bot.db.guard) each starts the moment the previous commits.
        # Writes a person waits on (the journal of a click before its ack) go first.
        self._writer: WriterLock | None = WriterLock() if engine.dialect.name == "sqlite" else None
        # The journal writes of clicks arriving together take one turn of that lock (SQLite; views share it).
        self._journal = GroupCommit(alone=(Replayed,)) if self._writer is not None else None
        self._forget_after = 0.0  # when first_sighting next drops expired request keys (time.monotonic)
        # Reads of one statement each (and batches of them that need no common snapshot) go outside any transaction
        # on PostgreSQL: autocommit spares each the round trips of its BEGIN and ROLLBACK, and the statement sees what
        # it would see in a transaction of its own (READ COMMITTED). The same pool; SQLite begins none for a read.
        self._reads: Engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name == "postgresql" else engine
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Store:
        """Open a store on a database URL (the schema must already be migrated)."""
        return cls(make_engine(url), **kwargs)

    def scoped(self, workspace: str) -> Store:
        """A view of this store on `workspace`'s rows alone: the same engine, pool, writer lock and clock (cheap).

        Closing any view releases the pool every view shares: the store's owner closes it once.
        """
        if not isinstance(workspace, str) or len(workspace) > WORKSPACE_MAX:
            raise ValueError(f"a workspace id is a string of at most {WORKSPACE_MAX} characters")
        view = copy.copy(self)
        view.workspace = workspace
        return view

    def close(self) -> None:
        """Release the connection pool (every view's: see scoped)."""
        self.engine.dispose()

    def ping(self) -> None:
        """Raise (an SQLAlchemyError) unless the database answers now; never retries, so it answers quickly."""
        with self.engine.connect() as conn:
            conn.execute(select(1))

    @contextmanager
    def _begin(self, *, urgent: bool = False) -> Iterator[Connection]:
        """A transaction like `engine.begin()`, whose COMMIT failing on a broken connection is CommitUncertain.

        `urgent`: on SQLite, this write goes before queued ordinary ones (someone waits for it).
        """
        with (
            self._writer.hold(urgent=urgent) if self._writer is not None else nullcontext(),
            self.engine.connect() as conn,
        ):
            transaction = conn.begin()
            yield conn  # an error in the body propagates; closing the connection rolls the transaction back
            try:
                transaction.commit()
            except DBAPIError as exc:
                if not is_connection_error(exc):
                    raise
                raise CommitUncertain(f"the connection broke during COMMIT ({type(exc).__name__})") from exc

    # --- reading ---------------------------------------------------------------------------------

    @retried
    def get(self, task_id: str) -> TaskRow | None:
        """One task record, or None."""
        return self.get_now(task_id)

    def get_now(self, task_id: str) -> TaskRow | None:
        """`get`, tried once: no retry after a connection error, for a caller Slack's deadline is waiting on."""
        with self._reads.connect() as conn:
            return _read(conn, self.workspace, task_id)

    def known(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these task ids have a record (in batches, so the cost follows the input, not history)."""
        return self._known(list(dict.fromkeys(task_ids)))  # a list: a retry must see the ids again

    @retried
    def _known(self, ids: list[str]) -> set[str]:
        """`known` for a list of distinct ids."""
        found: set[str] = set()
        with self._reads.connect() as conn:
            for start in range(0, len(ids), 500):
                found.update(conn.scalars(_KNOWN, {"p_ws": self.workspace, "p_ids": ids[start : start + 500]}))
        return found

    def in_states(self, states: Iterable[str], *, limit: int | None = None) -> list[TaskRow]:
        """Records in any of these states, newest announcement first."""
        if limit is None:
            return self._select(_IN_STATES, {"p_states": list(states)})
        return self._select(_IN_STATES_LIMITED, {"p_states": list(states), "p_limit": limit})

    def recent_decisions(self, limit: int = 10) -> list[TaskRow]:
        """The records decided most recently (in Slack or in LeadLex), latest decision first."""
        return self._select(_RECENT_DECISIONS, {"p_limit": limit})

    def stale(self, state: str, older_than: timedelta, *, orphaned_before: datetime | None = None) -> list[TaskRow]:
        """Records stuck in a claim state (announcing / deciding) for longer than `older_than`.

        `orphaned_before`: claims made before this moment are stale whatever their age (on SQLite, the
        moment this process started: only one process may use the file, so older claims are orphans).
        """
        cutoff = self._now() - older_than
        if orphaned_before is not None:
            cutoff = max(cutoff, orphaned_before)
        return self._select(_STALE, {"p_state": state, "p_cutoff": cutoff})

    def unrendered(self, limit: int = 50) -> list[TaskRow]:
        """Records whose Slack message does not yet show their current version."""
        return self._select(_UNRENDERED, {"p_limit": limit})

    def unreplied(self, limit: int = 50) -> list[TaskRow]:
        """Completed or failed records whose thread reply was never claimed (a crash came in between)."""
        return self._select(_UNREPLIED, {"p_limit": limit})

    @retried
    def is_empty(self) -> bool:
        """Whether no task of this workspace was ever recorded (a new or lost database, a new workspace)."""
        with self._reads.connect() as conn:
            return conn.execute(_ANY_TASK, {"p_ws": self.workspace}).first() is None

    @retried
    def restore_announcement(self, task_id: str, channel: str, ts: str, state: str, actor: str | None) -> bool:
        """Record a card found in the channel after the database was lost; the card already shows `state`."""
        if state not in STATES:
            raise ValueError(f"unknown state {state[:40]!r}")  # the caller validates what the card says
        with self._begin() as conn:
            inserted = self._insert_on(conn, Task(id=task_id), channel, state)
            if inserted:
                self._update_on(
                    conn,
                    task_id,
                    (),
                    bump=False,
                    message_ts=ts,
                    actor=actor,
                    rendered_version=1,
                    decided_at=self._now() if state not in (TaskState.PENDING, TaskState.ANNOUNCING) else None,
                    audit=Audit("restored", actor=actor, detail=f"{state} {channel} {ts}"),
                )
            return inserted

    @retried
    def count_in_state(self, state: str) -> int:
        """How many records are in one state (an index lookup: it does not grow with history)."""
        with self._reads.connect() as conn:
            return int(conn.execute(_COUNT_IN_STATE, {"p_ws": self.workspace, "p_state": state}).scalar() or 0)

    @retried
    def _select(self, query: Select[Any], parameters: Mapping[str, Any]) -> list[TaskRow]:
        """Run a pre-built select of the task records' _ROW_COLUMNS in this workspace and snapshot the rows."""
        with self._reads.connect() as conn:
            return [_row(found) for found in conn.execute(query, {**parameters, "p_ws": self.workspace})]

    # --- conversations with Lexi -----------------------------------------------------------------

    @retried
    def conversation_for(self, user: str, channel: str) -> str | None:
        """The Lexi conversation `user` continues in `channel`, or None when they have none yet."""
        with self._reads.connect() as conn:
            return conn.scalar(_CONVERSATION, {"p_ws": self.workspace, "p_user": user, "p_channel": channel})

    @retried
    def remember_conversation(self, user: str, channel: str, conversation_id: str) -> None:
        """Make `conversation_id` the one `user` continues in `channel` (replacing any earlier one)."""
        now = self._now()
        with self._begin() as conn:
            builder = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            statement = builder(CONVERSATIONS).values(
                workspace=self.workspace, user_id=user, channel=channel, conversation_id=conversation_id, updated_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["workspace", "user_id", "channel"],
                    set_={"conversation_id": conversation_id, "updated_at": now},
                )
            )

    # --- the daily digest --------------------------------------------------------------------------

    @retried
    def claim_digest(self, target: str, day: str) -> bool:
        """Claim the digest of `day` (YYYY-MM-DD) to `target`; False when some process already claimed it."""
        with self._begin() as conn:
            builder = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            values = {"workspace": self.workspace, "target": target, "day": day, "claimed_at": self._now()}
            statement = builder(DIGESTS).values(**values).on_conflict_do_nothing()
            return conn.execute(statement.returning(DIGESTS.c.day)).first() is not None

    @retried
    def digest_sent(self, target: str, day: str, messages: int) -> None:
        """Record that the claimed digest went out as `messages` messages (with its audit event)."""
        with self._begin() as conn:
            conn.execute(
                update(DIGESTS)
                .where(DIGESTS.c.workspace == self.workspace, DIGESTS.c.target == target, DIGESTS.c.day == day)
                .values(sent=messages)
            )
            detail = f"{day} to {target}: {messages} {'message' if messages == 1 else 'messages'}"
            self._write_audit(conn, Audit("digest", actor="rule:digest", surface="rule", detail=detail), None)

    # --- announcing ------------------------------------------------------------------------------

    def claim_announcement(self, task: Task, channel: str, *, signed_at: datetime | None = None) -> bool:
        """Insert the task as `announcing`; False when some process already recorded it.

        `signed_at`: when the content was signed (a webhook) or fetched (a poll); later older content is dropped.
        """
        return self._insert(task, channel, TaskState.ANNOUNCING, signed_at=signed_at)

    @retried
    def remember_unannounced(self, task: Task, channel: str, state: str, *, signed_at: datetime | None = None) -> bool:
        """Record a task LeadLex reports as already decided before we announced it, so it never is.

        A late or replayed `task.created` then finds the record and posts nothing.
        """
        with self._begin() as conn:
            inserted = self._insert_on(conn, task, channel, state, signed_at=signed_at)
            if inserted:
                self._write_audit(
                    conn, Audit("seen_decided", actor="leadlex", surface="webhook", detail=state), task.id
                )
            return inserted

    def update_payload(self, task: Task, *, signed_at: datetime | None = None) -> TaskRow | None:
        """Store a pending task's new content (LeadLex edited it) so the card shows it.

        None when the task is not pending, or when the record holds content signed after `signed_at`.
        """
        signed: dict[str, Any] = {"content_signed_at": signed_at} if signed_at is not None else {}
        return self._change(
            task.id,
            (_T.state.in_((TaskState.ANNOUNCING, TaskState.PENDING)), *not_newer_than(signed_at)),
            payload=task.to_api(),
            **signed,
        )

    @retried
    def _insert(self, task: Task, channel: str, state: str, *, signed_at: datetime | None = None) -> bool:
        """Insert a record unless one exists (atomic on both databases); True when this call inserted it."""
        with self._begin() as conn:
            return self._insert_on(conn, task, channel, state, signed_at=signed_at)

    def _insert_on(
        self, conn: Connection, task: Task, channel: str, state: str, *, signed_at: datetime | None = None
    ) -> bool:
        """`_insert` inside the caller's transaction."""
        now = self._now()
        values = {
            "workspace": self.workspace,
            "task_id": task.id,
            "task_type": task.type[:100],
            "payload": task.to_api(),
            "state": state,
            "channel": channel,
            "claimed_at": now,
            "version": 1,
            "rendered_version": 0,
            "needs_render": False,
            "announced_at": now,
            "updated_at": now,
            "content_signed_at": signed_at,
        }
        builder = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = builder(TASKS).values(**values).on_conflict_do_nothing()
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT.
        return conn.execute(statement.returning(_T.task_id)).first() is not None

    def take_over_announcement(self, task_id: str, seen_claimed_at: datetime) -> bool:
        """Renew a stale announcement claim; False when another process renewed or finished it first."""
        return self._update(
            task_id,
            (_T.state == TaskState.ANNOUNCING, _T.claimed_at == seen_claimed_at),
            claimed_at=self._now(),
            bump=False,
        )

    @retried
    def record_message(self, task_id: str, channel: str, ts: str, *, rendered_version: int) -> None:
        """Record the message that announces a task; the task becomes `pending` if nothing moved it on."""
        the_task = {"p_ws": self.workspace, "p_task_id": task_id}
        message = {"p_channel": channel, "p_ts": ts, "p_rendered": rendered_version, "p_now": self._now()}
        with self._begin() as conn:
            conn.execute(_RECORD_MESSAGE, {**the_task, **message})
            announced = conn.execute(_ANNOUNCED, the_task).rowcount
            if announced == 1:
                self._write_audit(conn, Audit("announced", detail=f"{channel} {ts}"), task_id)

    @retried
    def release_announcement(self, task_id: str) -> None:
        """Forget a claim whose post Slack definitely refused, so a later poll tries again."""
        with self._begin() as conn:
            conn.execute(_RELEASE_ANNOUNCEMENT, {"p_ws": self.workspace, "p_task_id": task_id})

    def move_announcement(self, task_id: str, channel: str) -> bool:
        """Point a claim not yet posted at the channel its card goes to (an approver's DM), so recovery looks there."""
        return self._update(
            task_id, (_T.state == TaskState.ANNOUNCING, _T.message_ts.is_(None)), channel=channel, bump=False
        )

    # --- copies of a card (approvers' DMs, the thread Lexi answered in) ---------------------------

    @retried
    def claim_copy(self, task_id: str, channel: str, kind: str, thread_ts: str | None = None) -> bool:
        """Take the right to post a task's card in `channel` (once per task and channel); False when already taken."""
        with self._begin() as conn:
            builder = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            statement = builder(CARD_COPIES).values(
                workspace=self.workspace,
                task_id=task_id,
                channel=channel,
                kind=kind,
                thread_ts=thread_ts,
                ts=None,
                rendered_version=0,
                claimed_at=self._now(),
            )
            if conn.execute(statement.on_conflict_do_nothing().returning(_K.task_id)).first() is None:
                return False
            flagged = update(TASKS).where(_T.workspace == self.workspace, _T.task_id == task_id)
            conn.execute(flagged.values(has_copies=True))  # card updates read the copies of flagged tasks only
            return True

    @retried
    def stale_copies(self, older_than: timedelta, *, orphaned_before: datetime | None = None) -> list[StaleCopy]:
        """Copies claimed longer than `older_than` ago and never recorded as posted (their process died meanwhile).

        `orphaned_before`: claims made before this moment are stale whatever their age (as for `stale`).
        """
        cutoff = self._now() - older_than
        if orphaned_before is not None:
            cutoff = max(cutoff, orphaned_before)
        query = (
            select(_K.task_id, _K.channel, _K.kind, _K.thread_ts, _K.claimed_at)
            .where(_K.workspace == self.workspace, _K.ts.is_(None), _K.claimed_at < cutoff)
            .order_by(_K.claimed_at)
            .limit(100)
        )
        with self._reads.connect() as conn:
            return [StaleCopy(*found) for found in conn.execute(query)]

    def take_over_copy(self, task_id: str, channel: str, seen_claimed_at: datetime) -> bool:
        """Renew a stale copy's claim; False when another process renewed or recorded it first."""
        with self._begin() as conn:
            moved = conn.execute(
                update(CARD_COPIES)
                .where(
                    _K.workspace == self.workspace,
                    _K.task_id == task_id,
                    _K.channel == channel,
                    _K.ts.is_(None),
                    _K.claimed_at == seen_claimed_at,
                )
                .values(claimed_at=self._now())
            )
            return moved.rowcount == 1

    @retried
    def record_copy(self, task_id: str, channel: str, ts: str, *, rendered_version: int) -> None:
        """Record the message of a claimed copy and the task version it shows."""
        with self._begin() as conn:
            conn.execute(
                update(CARD_COPIES)
                .where(_K.workspace == self.workspace, _K.task_id == task_id, _K.channel == channel)
                .values(ts=ts, rendered_version=rendered_version)
            )

    @retried
    def release_copy(self, task_id: str, channel: str) -> None:
        """Forget a copy's claim whose post Slack definitely refused (a later announcement may try again)."""
        with self._begin() as conn:
            conn.execute(
                delete(CARD_COPIES).where(
                    _K.workspace == self.workspace, _K.task_id == task_id, _K.channel == channel, _K.ts.is_(None)
                )
            )

    @retried
    def copies(self, task_id: str) -> list[CopyRow]:
        """Every copy of a task's card (claimed or posted), by channel."""
        query = (
            select(_K.task_id, _K.channel, _K.kind, _K.thread_ts, _K.ts, _K.rendered_version)
            .where(_K.workspace == self.workspace, _K.task_id == task_id)
            .order_by(_K.channel)
        )
        with self.engine.connect() as conn:
            return [CopyRow(*found) for found in conn.execute(query)]

    @retried
    def mark_copy_rendered(self, task_id: str, channel: str, version: int) -> None:
        """Record that a copy now shows `version` (never moves backwards)."""
        with self._begin() as conn:
            conn.execute(
                update(CARD_COPIES)
                .where(
                    _K.workspace == self.workspace,
                    _K.task_id == task_id,
                    _K.channel == channel,
                    _K.rendered_version < version,
                )
                .values(rendered_version=version)
            )

    def render_again(self, task_id: str) -> bool:
        """Mark a task's cards for another update (a copy Slack did not update): the reconciler syncs it again."""
        return self._update(task_id, (), needs_render=True, bump=False)

    def rendered_everywhere(self, task_id: str, version: int) -> bool:
        """Clear a task's mark for another update: every card shows `version`, and it is still the task's."""
        return self._update(
            task_id, (_T.version == version, _T.rendered_version >= version), needs_render=False, bump=False
        )

    # --- deciding --------------------------------------------------------------------------------

    def claim_decision(
        self,
        task_id: str,
        *,
        actor: str,
        action: str,
        surface: str,
        reason: str | None = None,
        note: str | None = None,
        decision_id: int | None = None,
    ) -> tuple[bool, TaskRow | None]:
        """Move a task from `pending` to `deciding` for one person; (False, current row) when someone was first.

        With `decision_id`, that accepted decision becomes `claimed` in the same transaction, so a process that
        takes it over later knows whether the task's claim is its own.
        """
        with self._begin(urgent=True) as conn:  # the LeadLex call waits for it
            won = self._claim_on(
                conn,
                task_id,
                actor=actor,
                action=action,
                surface=surface,
                reason=reason,
                note=note,
                decision_id=decision_id,
            )
            if won is None:
                return False, _read(conn, self.workspace, task_id)
            return True, won

    def _claim_on(
        self,
        conn: Connection,
        task_id: str,
        *,
        actor: str,
        action: str,
        surface: str,
        reason: str | None,
        note: str | None,
        decision_id: int | None,
        version: int | None = None,
        staged: bool = False,
    ) -> TaskRow | None:
        """The claim on `conn` (with its event and its decision's stage): the record it left; None when it missed.

        `version`: claim only while the record is still at that version (what a permission check saw). `staged`: the
        decision's entry already says claimed (written in this transaction), so its stage is not written again.
        """
        now = self._now()
        claim = {
            "p_ws": self.workspace,
            "p_task_id": task_id,
            "state": TaskState.DECIDING,
            "actor": actor,
            "action": action,
            "surface": surface,
            "reason": reason,
            "note": note,
            "claimed_at": now,
            "decided_at": None,
            "decision_id": decision_id,
            "resumed_at": None,
            "updated_at": now,
        }
        at = {} if version is None else {"p_version": version}
        if conn.dialect.name == "postgresql":  # the claim, its event and its decision's stage: one statement
            bound = {f"v_{name}": value for name, value in claim.items() if not name.startswith("p_")}
            the_claim = {**bound, "p_ws": self.workspace, "p_task_id": task_id, "p_id": decision_id, **at}
            won = conn.execute(_CLAIM_IN_ONE if version is None else _CLAIM_IN_ONE_AT, the_claim).first()
            return _row(won) if won is not None else None
        won = conn.execute(_CLAIM if version is None else _CLAIM_AT, {**claim, **at}).first()
        if won is None:
            return None
        self._write_audit(conn, Audit("decision_started", actor=actor, surface=surface, detail=action), task_id)
        if decision_id is not None and not staged:
            conn.execute(_CLAIM_STAGE, {"p_ws": self.workspace, "p_id": decision_id})
        return _row(won)

    @retried
    def add_approval(self, task_id: str, user: str, needed: int, surface: str) -> tuple[str, list[str]]:
        """Count one person's approval towards a quorum: ("added" | "duplicate" | "not_pending", approvers so far).

        One transaction holding the record (locked on PostgreSQL; SQLite's one writer is this store's lock), so
        concurrent approvals are never lost and nobody counts twice.
        """
        with self._begin() as conn:
            row = _read(conn, self.workspace, task_id, lock=True)
            if row is None or row.state != TaskState.PENDING:
                return "not_pending", []
            by = list((row.approvals or {}).get("by", []))
            if user in by:
                return "duplicate", by
            by.append(user)
            audit = Audit("approval", actor=user, surface=surface, detail=f"{len(by)} of {needed}")
            if not self._update_on(
                conn,
                task_id,
                (_T.version == row.version, _T.state == TaskState.PENDING),
                approvals={"needed": needed, "by": by},
                audit=audit,
            ):
                raise RuntimeError(f"task {task_id}: approvals changed under a held record")
            return "added", by

    @retried
    def withdraw_approvals(self, task_id: str, users: list[str], needed: int) -> list[str]:
        """Stop counting these people's approvals (they may no longer approve); the approvers still counted.

        One transaction holding the record, like `add_approval`.
        """
        with self._begin() as conn:
            row = _read(conn, self.workspace, task_id, lock=True)
            by = list((row.approvals or {}).get("by", [])) if row is not None else []
            kept = [u for u in by if u not in users]
            if row is None or row.state != TaskState.PENDING or kept == by:
                return kept
            audit = Audit(
                "approval_withdrawn",
                actor=None,
                surface="policy",
                detail=f"{', '.join(u for u in by if u in users)} may no longer approve",
            )
            if not self._update_on(
                conn,
                task_id,
                (_T.version == row.version, _T.state == TaskState.PENDING),
                approvals={"needed": needed, "by": kept},
                audit=audit,
            ):
                raise RuntimeError(f"task {task_id}: approvals changed under a held record")
            return kept

    # --- accepted decisions (the journal written before Slack is acknowledged) ------------------------

    def accept_decision(
        self,
        task_id: str,
        *,
        actor: str,
        action: str,
        surface: str,
        reason: str | None,
        note: str | None,
        reply: dict[str, Any],
        owner: str,
        lease: timedelta,
        sighting: tuple[str, datetime] | None = None,
        claim_at: int | None = None,
    ) -> DecisionRow:
        """Journal a decision Slack is about to be told was accepted, leased to `owner` (one short INSERT).

        With `sighting` (a request's replay key and when to forget it: bot.slack.replay), the request is remembered
        in the same transaction, and a request seen before journals nothing and raises Replayed: a click costs one
        write before its acknowledgement, not two.

        `claim_at`: the version of the task's record a permission check just saw; the task is also claimed for this
        decision in the same transaction (pending → deciding) if its record is still at that version, and the
        decision comes back `claimed` with the record as the claim left it (`DecisionRow.claimed`). Otherwise it
        comes back `accepted`, to be checked and claimed when it is carried out.
        """
        now = self._now()
        row = DecisionRow(
            id=0,  # the database numbers it
            task_id=task_id[:255],
            actor=actor[:100],
            action=action,
            surface=surface[:16],
            reason=reason,
            note=note,
            reply=reply,
            stage="accepted",
            owner=owner,
            attempts=1,
        )
        values = {
            "workspace": self.workspace,
            "task_id": row.task_id,
            "actor": row.actor,
            "action": row.action,
            "surface": row.surface,
            "reason": row.reason,
            "note": row.note,
            "reply": row.reply,
            "stage": row.stage,
            "owner": row.owner,
            "lease_until": now + lease,
            "attempts": row.attempts,
            "accepted_at": now,
        }
        if self._journal is not None:  # SQLite: with the clicks' journal writes queued meanwhile, one transaction
            accepted: DecisionRow = self._journal.run(
                lambda conn: self._accept_on(conn, row, values, sighting, claim_at), lambda: self._begin(urgent=True)
            )
            return accepted
        with self._begin(urgent=True) as conn:
            return self._accept_on(conn, row, values, sighting, claim_at)

    def _accept_on(
        self,
        conn: Connection,
        row: DecisionRow,
        values: dict[str, Any],
        sighting: tuple[str, datetime] | None,
        claim_at: int | None,
    ) -> DecisionRow:
        """`accept_decision`'s writes on `conn`, in the caller's transaction (Replayed before any write)."""
        # SQLite: the entry is written as claimed already when its claim follows in this transaction (one statement
        # less; PostgreSQL's claim writes the stage in its own statement anyway).
        staged = claim_at is not None and conn.dialect.name != "postgresql"
        if sighting is not None and conn.dialect.name == "postgresql":  # the request and the decision: one statement
            self._forget_expired(conn)
            key, expires_at = sighting
            remembered = {"p_key": key[:100], "p_expires": expires_at, "p_now": values["accepted_at"]}
            bound = {f"v_{name}": value for name, value in values.items()}
            decision_id = conn.execute(_ACCEPT_IN_ONE, {**bound, **remembered}).scalar()
            if decision_id is None:
                raise Replayed(key.split(":", 1)[0])
        else:
            if sighting is not None and not self._sight(conn, *sighting):
                raise Replayed(sighting[0].split(":", 1)[0])
            insert_values = {**values, "stage": "claimed"} if staged else values
            decision_id = conn.execute(_INSERT_DECISION, insert_values).scalar_one()
        if claim_at is None:
            return dataclasses.replace(row, id=int(decision_id))
        claimed = self._claim_on(
            conn,
            row.task_id,
            actor=row.actor,
            action=row.action,
            surface=row.surface,
            reason=row.reason,
            note=row.note,
            decision_id=int(decision_id),
            version=claim_at,
            staged=staged,
        )
        if claimed is None:
            if staged:  # the record moved on since the check: the entry is only accepted, as nobody saw otherwise
                conn.execute(_UNCLAIM_STAGE, {"p_ws": self.workspace, "p_id": int(decision_id)})
            return dataclasses.replace(row, id=int(decision_id))
        return dataclasses.replace(row, id=int(decision_id), stage="claimed", claimed=claimed)

    def decision(self, decision_id: int) -> DecisionRow | None:
        """One accepted decision, or None."""
        with self._reads.connect() as conn:
            return _read_decision(conn, self.workspace, decision_id)

    def close_decision(self, decision_id: int) -> None:
        """Mark an accepted decision carried out to the end (whatever came of it): nobody resumes it.

        Its way of answering (a response_url, valid for a while) is forgotten: nobody needs it any more.
        """
        with self._begin() as conn:
            conn.execute(_CLOSE_DECISION, {"p_ws": self.workspace, "p_id": decision_id, "done_at": self._now()})

    def renew_leases(self, owner: str, decision_ids: Iterable[int], lease: timedelta) -> None:
        """Extend `owner`'s leases on these open decisions (its heartbeat while they wait or LeadLex works)."""
        self._renew_leases(owner, decision_ids, lease, _D.workspace == self.workspace)

    @retried
    def take_over_decisions(
        self, owner: str, lease: timedelta, *, orphans: bool = False, exclude: Iterable[int] = (), limit: int = 50
    ) -> list[DecisionRow]:
        """Take the open decisions whose lease ran out (their process died), each leased to `owner` now.

        `orphans`: also every open decision another owner holds (on SQLite, where one process alone may use
        the file, they belong to a process that died). `exclude`: decisions `owner` is carrying out right now.
        Each take is a compare-and-set, so one process wins; all of them are one transaction.
        """
        now = self._now()
        expired = or_(_D.lease_until.is_(None), _D.lease_until < now)
        if orphans:
            expired = or_(expired, _D.owner.is_(None), _D.owner != owner)
        taken = []
        busy = set(exclude)
        with self._begin() as conn:
            seen = conn.execute(
                select(_D.id, _D.owner, _D.lease_until)
                .where(_D.workspace == self.workspace, text(OPEN_DECISIONS), expired)
                .order_by(_D.id)
                .limit(limit)
            ).all()
            for decision_id, old_owner, old_lease in seen:
                if decision_id in busy:
                    continue
                owned = _D.owner.is_(None) if old_owner is None else _D.owner == old_owner
                leased = _D.lease_until.is_(None) if old_lease is None else _D.lease_until == old_lease
                won = (
                    conn.execute(
                        update(DECISIONS)
                        .where(
                            _D.workspace == self.workspace, _D.id == decision_id, owned, leased, text(OPEN_DECISIONS)
                        )
                        .values(owner=owner, lease_until=now + lease, attempts=_D.attempts + 1)
                    ).rowcount
                    == 1
                )
                if won:
                    row = _read_decision(conn, self.workspace, decision_id)
                    if row is not None:
                        taken.append(row)
        return taken

    # --- decisions across workspaces (multi-workspace mode's one keeper: bot.tenants) -------------------

    def workspaces_to_resume(self, owner: str, *, orphans: bool = False, limit: int = 100) -> list[str]:
        """The workspaces, any of them, with an open decision whose lease ran out (its process died): one query.

        `orphans` as in take_over_decisions: also those with an open decision another owner holds (SQLite).
        """
        expired = or_(_D.lease_until.is_(None), _D.lease_until < self._now())
        if orphans:
            expired = or_(expired, _D.owner.is_(None), _D.owner != owner)
        query = select(_D.workspace).where(text(OPEN_DECISIONS), expired).distinct().limit(limit)
        with self._reads.connect() as conn:
            return list(conn.scalars(query))

    def renew_leases_everywhere(self, owner: str, decision_ids: Iterable[int], lease: timedelta) -> None:
        """Extend `owner`'s leases on these open decisions, whichever workspace each is in (ids are unique)."""
        self._renew_leases(owner, decision_ids, lease, true())

    def _renew_leases(
        self, owner: str, decision_ids: Iterable[int], lease: timedelta, where: ColumnElement[bool]
    ) -> None:
        """Extend `owner`'s leases on the open decisions among these ids that also match `where` (500 ids a time)."""
        ids = list(decision_ids)
        if not ids:
            return
        with self._begin() as conn:
            for start in range(0, len(ids), 500):
                conn.execute(
                    update(DECISIONS)
                    .where(where, _D.id.in_(ids[start : start + 500]), _D.owner == owner, text(OPEN_DECISIONS))
                    .values(lease_until=self._now() + lease)
                )

    def prune_decisions_everywhere(self, older_than: timedelta) -> None:
        """Forget every workspace's decisions carried out longer ago than `older_than` (one DELETE)."""
        with self._begin() as conn:
            conn.execute(delete(DECISIONS).where(_D.done_at < self._now() - older_than))

    def mark_resumed(self, task_id: str, decision_id: int) -> bool:
        """Show on the card that this task's decision was resumed; False unless the decision still holds it."""
        return self._update(
            task_id,
            (_T.state == TaskState.DECIDING, _T.decision_id == decision_id),
            resumed_at=self._now(),
        )

    @retried
    def adopt_stale_decisions(self, older_than: timedelta) -> int:
        """Journal claims left `deciding` with no open decision behind them, so that they are resumed, not handed back.

        Such claims were written before decisions were journaled, or their decision ended without an outcome. One
        transaction; each adoption is still conditional on the claim being the one read.
        """
        cutoff = self._now() - older_than
        open_ids = select(_D.id).where(_D.workspace == self.workspace, text(OPEN_DECISIONS))
        adopted = 0
        with self._begin() as conn:
            rows = conn.execute(
                select(
                    _T.task_id,
                    _T.actor,
                    _T.action,
                    _T.surface,
                    _T.reason,
                    _T.note,
                    _T.decision_id,
                )
                .where(
                    _T.workspace == self.workspace,
                    _T.state == TaskState.DECIDING,
                    _T.claimed_at < cutoff,
                    or_(_T.decision_id.is_(None), _T.decision_id.not_in(open_ids)),
                )
                .limit(200)
            ).all()
            for row in rows:
                decision_id = conn.execute(
                    insert(DECISIONS)
                    .values(
                        workspace=self.workspace,
                        task_id=row.task_id,
                        actor=row.actor or "unknown",
                        action=row.action or "approve",
                        surface=(row.surface or "button")[:16],
                        reason=row.reason,
                        note=row.note,
                        reply={},
                        stage="claimed",
                        owner=None,
                        lease_until=None,
                        attempts=1,
                        accepted_at=self._now(),
                    )
                    .returning(_D.id)
                ).scalar_one()
                same = _T.decision_id.is_(None) if row.decision_id is None else _T.decision_id == row.decision_id
                if (
                    conn.execute(
                        update(TASKS)
                        .where(
                            _T.workspace == self.workspace,
                            _T.task_id == row.task_id,
                            _T.state == TaskState.DECIDING,
                            same,
                        )
                        .values(decision_id=decision_id)
                    ).rowcount
                    == 1
                ):
                    adopted += 1
                else:
                    conn.execute(delete(DECISIONS).where(_D.workspace == self.workspace, _D.id == decision_id))
        return adopted

    def prune_decisions(self, older_than: timedelta) -> None:
        """Forget decisions carried out longer ago than `older_than` (the audit trail keeps what happened)."""
        with self._begin() as conn:
            conn.execute(delete(DECISIONS).where(_D.workspace == self.workspace, _D.done_at < self._now() - older_than))

    @retried
    def finish_decision(
        self,
        task_id: str,
        state: str,
        *,
        actor: str | None = None,
        answer: Audit | None = None,
        decision_id: int | None = None,
    ) -> TaskRow | None:
        """Record the outcome of the decision in progress (`approved` / `dismissed`).

        In the same transaction: `answer`, LeadLex's answer's audit event (written whatever the outcome), and the
        journaled decision `decision_id` closed (see close_decision): a click's outcome is one write, not three.
        """
        now = self._now()
        with self._begin() as conn:
            if conn.dialect.name == "postgresql":  # all of it in one statement
                found = conn.execute(
                    _FINISH_IN_ONE,
                    {
                        "p_ws": self.workspace,
                        "p_task_id": task_id,
                        "p_id": decision_id,
                        "v_state": state,
                        "v_actor": actor,
                        "v_decided_at": now,
                        "v_updated_at": now,
                        "v_at": now,
                        "v_answer_event": answer.event if answer else None,
                        "v_answer_actor": answer.actor if answer else None,
                        "v_answer_surface": answer.surface if answer else None,
                        "v_answer_detail": answer and (answer.detail or None) and answer.detail[:2000],
                    },
                ).first()
                return _row(found) if found is not None else _read(conn, self.workspace, task_id)
            values: dict[str, Any] = {
                "p_ws": self.workspace,
                "p_task_id": task_id,
                "state": state,
                "decided_at": now,
                "updated_at": now,
            }
            if actor is not None:
                values["actor"] = actor
            found = conn.execute(_FINISH, values).first()
            events = [self._audit_row(conn, answer, task_id)] if answer is not None else []
            if found is not None:
                events.append(self._audit_row(conn, Audit("decided", detail=state), task_id, found))
            if events:
                conn.execute(_INSERT_AUDIT, events)  # one statement for both, LeadLex's answer first
            if decision_id is not None:
                conn.execute(_CLOSE_DECISION, {"p_ws": self.workspace, "p_id": decision_id, "done_at": now})
            # As this transaction left it: when the UPDATE did not match, someone else's outcome.
            return _row(found) if found is not None else _read(conn, self.workspace, task_id)

    @retried
    def release_decision(self, task_id: str, note: str | None) -> TaskRow | None:
        """Return a task whose decision failed to `pending`, with the reason shown on the card."""
        with self._begin() as conn:
            before = _read(conn, self.workspace, task_id, lock=True)  # who was deciding, for the audit
            found = self._change_on(
                conn,
                task_id,
                (_T.state == TaskState.DECIDING,),
                audit=Audit(
                    "decision_failed",
                    actor=before.actor if before else None,
                    surface=before.surface if before else None,
                    detail=note,
                ),
                state=TaskState.PENDING,
                note=note,
                actor=None,
                action=None,
                surface=None,
                reason=None,
            )
            return _row(found) if found is not None else _read(conn, self.workspace, task_id)

    def apply_lexi_state(
        self,
        task_id: str,
        state: str,
        *,
        from_states: Iterable[str],
        surface: str = "leadlex",
        task: Task | None = None,
        signed_at: datetime | None = None,
    ) -> TaskRow | None:
        """Move a task to the state LeadLex reports, if it is in one of `from_states`; None when nothing changed.

        A decision made outside Slack clears the actor; completion or failure keeps who approved. `task`, when
        given, refreshes the stored content too. With `signed_at`, a report signed before the content the
        record holds changes nothing.
        """
        values: dict[str, Any] = {"state": state, "note": None}
        if task is not None:
            values["payload"] = task.to_api()
        if signed_at is not None:
            values["content_signed_at"] = signed_at
        if state in (TaskState.APPROVED, TaskState.DISMISSED, TaskState.GONE):
            values.update(actor=None, surface=surface, reason=None, decided_at=self._now())
        audit = Audit("state_changed", actor="leadlex", surface=surface, detail=state)
        conditions = (_T.state.in_(list(from_states)), *not_newer_than(signed_at))
        return self._change(task_id, conditions, audit=audit, **values)

    def expire(self, task_id: str, note: str | None, *, deciding: bool = False) -> TaskRow | None:
        """Mark a task still pending past its expiry as expired (not decided); None when it was decided first.

        `deciding`: the task is claimed by the expiry's own decision (it dismissed the task in LeadLex), whose
        claim is cleared: an expired task was decided by nobody.
        """
        claim: dict[str, Any] = {"actor": None, "action": None, "surface": None, "reason": None} if deciding else {}
        return self._change(
            task_id,
            (_T.state == (TaskState.DECIDING if deciding else TaskState.PENDING),),
            state=TaskState.EXPIRED,
            note=note,
            decided_at=self._now(),
            audit=Audit("expired", actor="rule:expiry", surface="rule", detail=note),
            **claim,
        )

    def escalate(self, task_id: str, to: tuple[str, ...], after: str, *, at: datetime | None = None) -> TaskRow | None:
        """Take the escalation of a task still pending and not escalated yet, audited in the same transaction.

        `to`: who it is escalated to (user and user-group ids); `after`: how long it waited, in words; `at`: when, by
        the escalation's clock (default now). None when it was decided or escalated first (by this process or
        another): only the caller it returns a record to sends.
        """
        detail = f"to {', '.join(to)} after {after}"
        return self._change(
            task_id,
            (_T.state == TaskState.PENDING, _T.escalated_at.is_(None)),
            bump=False,
            escalated_at=at or self._now(),
            audit=Audit("escalated", actor="rule:escalation", surface="rule", detail=detail),
        )

    def claim_reply(self, task_id: str, state: str) -> bool:
        """Take the right to post the one thread reply for a final state; False when it was already taken."""
        return self._update(task_id, (_T.replied_state.is_(None),), replied_state=state, bump=False)

    @retried
    def mark_rendered(self, task_id: str, version: int) -> int | None:
        """Record that the Slack message now shows `version` (never moves backwards).

        The record's current version when this moved it forward (above `version`: it changed since); None when the
        message was already recorded as showing `version` or a later one.
        """
        with self._begin() as conn:
            return conn.execute(
                _MARK_RENDERED, {"p_ws": self.workspace, "p_task_id": task_id, "p_version": version}
            ).scalar()

    @retried
    def _update(
        self,
        task_id: str,
        conditions: tuple[ColumnElement[bool], ...],
        *,
        bump: bool = True,
        audit: Audit | None = None,
        **values: Any,
    ) -> bool:
        """One conditional UPDATE of one task, audited in the same transaction; True when it matched."""
        with self._begin() as conn:
            return self._update_on(conn, task_id, conditions, bump=bump, audit=audit, **values)

    @retried
    def _change(
        self,
        task_id: str,
        conditions: tuple[ColumnElement[bool], ...],
        *,
        bump: bool = True,
        audit: Audit | None = None,
        **values: Any,
    ) -> TaskRow | None:
        """`_update`, returning the record as the same transaction left it; None when the UPDATE did not match."""
        with self._begin() as conn:
            found = self._change_on(conn, task_id, conditions, bump=bump, audit=audit, **values)
            return _row(found) if found is not None else None

    def _update_on(
        self,
        conn: Connection,
        task_id: str,
        conditions: tuple[ColumnElement[bool], ...],
        *,
        bump: bool = True,
        audit: Audit | None = None,
        **values: Any,
    ) -> bool:
        """`_update` inside the caller's transaction."""
        matched = conn.execute(self._update_of(task_id, conditions, bump=bump, values=values)).rowcount == 1
        if matched and audit is not None:
            self._write_audit(conn, audit, task_id)
        return matched

    def _change_on(
        self,
        conn: Connection,
        task_id: str,
        conditions: tuple[ColumnElement[bool], ...],
        *,
        bump: bool = True,
        audit: Audit | None = None,
        **values: Any,
    ) -> _Found | None:
        """`_update_on` that returns the record's _ROW_COLUMNS as the UPDATE left them (RETURNING: no second read).

        None when the UPDATE did not match.
        """
        statement = self._update_of(task_id, conditions, bump=bump, values=values).returning(*_ROW_COLUMNS)
        found = conn.execute(statement).first()
        if found is not None and audit is not None:
            self._write_audit(conn, audit, task_id, found)
        return found

    def _update_of(
        self, task_id: str, conditions: tuple[ColumnElement[bool], ...], *, bump: bool, values: dict[str, Any]
    ) -> Update:
        """The conditional UPDATE of one task setting `values`; `bump`: a new version the card must show."""
        values["updated_at"] = self._now()
        if bump:
            values["version"] = _T.version + 1
            values["needs_render"] = True
        return update(TASKS).where(_T.workspace == self.workspace, _T.task_id == task_id, *conditions).values(**values)

    # --- across workspaces (never implicit: each names the workspace it acts on) ---------------------

    @retried
    def purge_workspace(self, workspace: str) -> dict[str, int]:
        """Delete every row `workspace` has in every table, in one transaction; how many each table lost.

        For an uninstalled workspace whose admin asked for its data (the audit trail too) to go. Any store may run
        it, whatever its own workspace: the workspace is named here.
        """
        deleted: dict[str, int] = {}
        with self._begin() as conn:
            for table in WORKSPACE_TABLES:
                deleted[table.name] = conn.execute(delete(table).where(table.c.workspace == workspace)).rowcount
        return deleted

    # --- replay protection (global: a signed request's key is unique without a workspace; models.SeenRequest) -----

    @retried
    def first_sighting(self, key: str, expires_at: datetime) -> bool:
        """Remember a signed request by `key` until `expires_at`; False when it was already seen (a replay).

        Shared by every replica through the database. A key whose record has expired counts as new. Expired
        records are swept in the same transaction at most every FORGET_EVERY seconds: a click's acknowledgement
        waits for this write, which need not scan for expired keys each time.
        """
        with self._begin(urgent=True) as conn:
            return self._sight(conn, key, expires_at)

    def _sight(self, conn: Connection, key: str, expires_at: datetime) -> bool:
        """Remember `key` in the caller's transaction; False when it was already remembered (and has not expired)."""
        self._forget_expired(conn)
        statement = _SIGHT[conn.dialect.name == "postgresql"]
        values = {"key": key[:100], "expires_at": expires_at, "p_now": self._now()}
        return conn.execute(statement, values).first() is not None

    def _forget_expired(self, conn: Connection) -> None:
        """Drop expired request keys in the caller's transaction, at most every FORGET_EVERY seconds."""
        if time.monotonic() >= self._forget_after:
            self._forget_after = time.monotonic() + FORGET_EVERY
            conn.execute(_FORGET_EXPIRED, {"p_now": self._now()})

    @retried
    def forget_sighting(self, key: str) -> None:
        """Forget a request recorded by first_sighting that could not be acted on, so its retry is not a replay."""
        with self._begin() as conn:
            conn.execute(delete(SEEN_REQUESTS).where(SEEN_REQUESTS.c.key == key[:100]))

    # --- the audit trail (append-only: nothing updates or deletes it) ----------------------------

    @retried
    def audit(
        self,
        event: str,
        task_id: str | None = None,
        *,
        actor: str | None = None,
        surface: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one event that is not part of a state transition (a refusal, a reminder, a LeadLex answer)."""
        with self._begin() as conn:
            self._write_audit(conn, Audit(event, actor=actor, surface=surface, detail=detail), task_id)

    @retried
    def audit_events(self, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit trail, oldest first, from `since` on."""
        query = select(AUDIT_EVENTS).where(_A.workspace == self.workspace).order_by(_A.at, _A.id)
        if since is not None:
            query = query.where(_A.at >= since)
        with self._reads.connect() as conn:
            return [
                {
                    "at": e.at.isoformat(),
                    "task_id": e.task_id,
                    "event": e.event,
                    "actor": e.actor,
                    "surface": e.surface,
                    "detail": e.detail,
                }
                for e in conn.execute(query.limit(limit))
            ]

    @retried
    def count_audit(
        self, event: str, *, surface: str | None = None, since: datetime | None = None, task_id: str | None = None
    ) -> int:
        """How many audit events of one kind (for one task, through one surface) happened since a moment."""
        query = select(func.count()).select_from(AUDIT_EVENTS).where(_A.workspace == self.workspace, _A.event == event)
        if task_id is not None:
            query = query.where(AUDIT_EVENTS.c.task_id == task_id)
        if surface is not None:
            query = query.where(AUDIT_EVENTS.c.surface == surface)
        if since is not None:
            query = query.where(AUDIT_EVENTS.c.at >= since)
        with self._reads.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def _write_audit(self, conn: Connection, audit: Audit, task_id: str | None, record: _Found | None = None) -> None:
        """Insert an audit row on `conn`; a decision's actor and surface come from the task when not given.

        `record`: the task's columns as this transaction left them, when the caller has them (saves a read).
        """
        conn.execute(_INSERT_AUDIT, self._audit_row(conn, audit, task_id, record))

    def _audit_row(
        self, conn: Connection, audit: Audit, task_id: str | None, record: _Found | None = None
    ) -> dict[str, Any]:
        """The values of an audit row (see _write_audit), for one INSERT of one or more rows."""
        actor, surface = audit.actor, audit.surface
        if task_id is not None and (actor is None or surface is None) and audit.event == "decided":
            decider = (
                (record.actor, record.surface)
                if record is not None
                else conn.execute(_READ_DECIDER, {"p_ws": self.workspace, "p_task_id": task_id}).first()
            )
            if decider is not None:
                actor, surface = actor or decider[0], surface or decider[1]
        return {
            "workspace": self.workspace,
            "at": self._now(),
            "task_id": task_id,
            "event": audit.event,
            "actor": actor,
            "surface": surface,
            "detail": (audit.detail or None) and audit.detail[:2000],
        }
