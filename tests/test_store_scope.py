"""Every stored row belongs to one workspace (issue 15): a store scoped to A never reads, counts or changes B's rows.

Two scoped stores, A and B, share one database (SQLite and PostgreSQL), each holding the same task ids in every
state; B also holds tasks only it has. Every public Store method is listed here, as a read or a write, and run in A
with A's own ids and with B's: a read returns what it returns once B's rows are gone (and nothing of B's), a write
changes A's rows and none of B's. A method added to Store without being listed here fails the first test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy import inspect as inspect_schema

from bot.db import migrate
from bot.db.models import SINGLE_WORKSPACE, STATES
from bot.db.store import WORKSPACE_TABLES, Store
from bot.lexi.models import Task, TaskState

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
#: When the checks run: an hour after the rows were written, so claims are stale and leases have run out.
T1 = T0 + timedelta(hours=1)
A, B, C = "T0ALPHA", "T0BRAVO", "T0CHARLIE"
#: What each workspace's rows say (descriptions, channels, actors, notes), to spot one workspace's rows in another's.
MARKS = {A: "alpha", B: "bravo"}
#: The tasks every populated workspace holds (their ids are a prefix and these names).
NAMES = ("pending", "deciding", "approved", "completed", "quorum", "stale-claim", "announcing")


@dataclass
class Ids:
    """The ids of one populated set of rows: task ids (a prefix and a name) and accepted decisions."""

    prefix: str
    decisions: dict[str, int] = field(default_factory=dict)

    def t(self, name: str) -> str:
        """The task id of one of NAMES (or of a task not recorded yet)."""
        return self.prefix + name


@dataclass
class World:
    """A database holding workspaces A and B (C is empty), the stores on them and the clock they share."""

    root: Store
    now: list[datetime]
    own: Ids
    foreign: Ids  # B's tasks and decisions that A has no rows for

    def store(self, workspace: str) -> Store:
        """The store scoped to `workspace`."""
        return self.root.scoped(workspace)


def _populate(store: Store, prefix: str) -> Ids:
    """Record a task in every state, decisions open, claimed and done, a conversation and audit events."""
    mark = MARKS[store.workspace]
    channel, actor = f"C{mark}", f"U{mark}"
    ids = Ids(prefix)
    for name in NAMES:
        assert store.claim_announcement(Task(id=ids.t(name), description=f"{mark} {name}"), channel)
        if name != "announcing":
            store.record_message(ids.t(name), channel, "100.1", rendered_version=1)
    decide: dict[str, Any] = {"actor": actor, "action": "approve", "surface": "button", "note": mark}
    lease: dict[str, Any] = {
        "reason": None,
        "reply": {"channel": channel},
        "owner": "dead",
        "lease": timedelta(minutes=1),
    }
    claimed = store.accept_decision(ids.t("deciding"), **decide, **lease)
    assert store.claim_decision(ids.t("deciding"), **decide, decision_id=claimed.id)[0]
    assert store.claim_decision(ids.t("stale-claim"), **decide)[0]  # a claim no journaled decision holds
    for name in ("approved", "completed"):
        assert store.claim_decision(ids.t(name), **decide)[0]
        assert store.finish_decision(ids.t(name), TaskState.APPROVED) is not None
    assert store.apply_lexi_state(ids.t("completed"), TaskState.COMPLETED, from_states=[TaskState.APPROVED])
    assert store.add_approval(ids.t("quorum"), "Uquorum", 3, "button")[0] == "added"
    ids.decisions["claimed"] = claimed.id
    ids.decisions["open"] = store.accept_decision(ids.t("pending"), **decide, **lease).id
    ids.decisions["done"] = store.accept_decision(ids.t("approved"), **decide, **lease).id
    store.close_decision(ids.decisions["done"])
    store.remember_conversation("Uasker", "Cask", f"conversation {mark}")
    assert store.claim_copy(ids.t("pending"), "Dcopy", "dm")
    store.record_copy(ids.t("pending"), "Dcopy", "500.1", rendered_version=1)
    assert store.claim_copy(ids.t("announcing"), "Dthread", "thread", "400.1")  # claimed, not posted
    store.audit("note", ids.t("pending"), actor=actor, surface="test", detail=f"{mark} note")
    store.claim_digest("channel", "2026-12-01")  # B is populated twice: its second claim of the day is refused
    store.digest_sent("channel", "2026-12-01", 1)
    return ids


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    """A and B populated the same way at T0 (B has tasks of its own too); the clock stands at T1."""
    now = [T0]
    root = Store.from_url(database_url, clock=lambda: now[0])
    migrate.upgrade(root.engine)
    own = _populate(root.scoped(A), "t-")
    _populate(root.scoped(B), "t-")  # the same task ids as A's
    foreign = _populate(root.scoped(B), "only-b-")
    now[0] = T1
    yield World(root, now, own, foreign)
    root.close()


def _dump(store: Store, workspace: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row `workspace` has in every table, as text."""
    with store.engine.connect() as conn:
        return {
            table.name: sorted(
                tuple(str(value) for value in row)
                for row in conn.execute(select(table).where(table.c.workspace == workspace))
            )
            for table in WORKSPACE_TABLES
        }


def _leaks(result: object) -> bool:
    """Whether a result shows anything of B's rows."""
    return MARKS[B] in repr(result).lower()


Call = Callable[[Store, Ids], object]

#: Every public method that reads one workspace's rows: {name: calls}. A's result must not depend on B's rows.
READS: dict[str, tuple[Call, ...]] = {
    "get": (lambda s, i: s.get(i.t("pending")),),
    "get_now": (lambda s, i: s.get_now(i.t("pending")),),
    "known": (lambda s, i: s.known(i.t(name) for name in NAMES),),
    "in_states": (lambda s, _: s.in_states(STATES), lambda s, _: s.in_states([TaskState.PENDING], limit=5)),
    "recent_decisions": (lambda s, _: s.recent_decisions(),),
    "stale": (
        lambda s, _: s.stale(TaskState.DECIDING, timedelta(minutes=1)),
        lambda s, _: s.stale(TaskState.ANNOUNCING, timedelta(days=1), orphaned_before=T1),
    ),
    "unrendered": (lambda s, _: s.unrendered(),),
    "unreplied": (lambda s, _: s.unreplied(),),
    "is_empty": (lambda s, _: s.is_empty(),),
    "count_in_state": (lambda s, _: s.count_in_state(TaskState.PENDING),),
    "conversation_for": (lambda s, _: s.conversation_for("Uasker", "Cask"),),
    "decision": (lambda s, i: s.decision(i.decisions["open"]),),
    "copies": (lambda s, i: s.copies(i.t("pending")), lambda s, i: s.copies(i.t("announcing"))),
    "stale_copies": (lambda s, _: s.stale_copies(timedelta(0)),),
    "audit_events": (lambda s, _: s.audit_events(), lambda s, _: s.audit_events(since=T0, limit=3)),
    "count_audit": (
        lambda s, _: s.count_audit("announced"),
        lambda s, i: s.count_audit("note", surface="test", since=T0, task_id=i.t("pending")),
    ),
}

_CLAIM: dict[str, Any] = {"actor": "Unew", "action": "approve", "surface": "button"}

#: Every public method that writes one workspace's rows: {name: calls}. In A they change A's rows, never B's.
WRITES: dict[str, tuple[Call, ...]] = {
    "claim_announcement": (lambda s, i: s.claim_announcement(Task(id=i.t("new")), "Cnew"),),
    "remember_unannounced": (lambda s, i: s.remember_unannounced(Task(id=i.t("new")), "Cnew", TaskState.APPROVED),),
    "update_payload": (lambda s, i: s.update_payload(Task(id=i.t("pending"), description="edited")),),
    "take_over_announcement": (lambda s, i: s.take_over_announcement(i.t("announcing"), T0),),
    "record_message": (lambda s, i: s.record_message(i.t("announcing"), "Cnew", "200.1", rendered_version=1),),
    "release_announcement": (lambda s, i: s.release_announcement(i.t("announcing")),),
    "move_announcement": (lambda s, i: s.move_announcement(i.t("announcing"), "Dnew"),),
    "claim_copy": (lambda s, i: s.claim_copy(i.t("pending"), "Dnew", "dm"),),
    "record_copy": (lambda s, i: s.record_copy(i.t("announcing"), "Dthread", "600.1", rendered_version=2),),
    "release_copy": (lambda s, i: s.release_copy(i.t("announcing"), "Dthread"),),
    "take_over_copy": (lambda s, i: s.take_over_copy(i.t("announcing"), "Dthread", T0),),
    "mark_copy_rendered": (lambda s, i: s.mark_copy_rendered(i.t("pending"), "Dcopy", 99),),
    "render_again": (lambda s, i: s.render_again(i.t("pending")),),
    "rendered_everywhere": (lambda s, i: s.rendered_everywhere(i.t("pending"), 1),),
    "restore_announcement": (
        lambda s, i: s.restore_announcement(i.t("new"), "Cnew", "300.1", TaskState.APPROVED, "Unew"),
    ),
    "claim_decision": (
        lambda s, i: s.claim_decision(i.t("pending"), **_CLAIM),
        lambda s, i: s.claim_decision(i.t("pending"), **_CLAIM, decision_id=i.decisions["open"]),
    ),
    "add_approval": (lambda s, i: s.add_approval(i.t("quorum"), "Unew", 3, "button"),),
    "withdraw_approvals": (lambda s, i: s.withdraw_approvals(i.t("quorum"), ["Uquorum"], 3),),
    "accept_decision": (
        lambda s, i: s.accept_decision(
            i.t("pending"), **_CLAIM, reason=None, note=None, reply={}, owner="me", lease=timedelta(minutes=5)
        ),
    ),
    "close_decision": (lambda s, i: s.close_decision(i.decisions["open"]),),
    "renew_leases": (lambda s, i: s.renew_leases("dead", [i.decisions["open"]], timedelta(hours=2)),),
    "take_over_decisions": (
        lambda s, _: s.take_over_decisions("me", timedelta(minutes=5)),
        lambda s, _: s.take_over_decisions("me", timedelta(minutes=5), orphans=True, limit=1),
    ),
    "mark_resumed": (lambda s, i: s.mark_resumed(i.t("deciding"), i.decisions["claimed"]),),
    "adopt_stale_decisions": (lambda s, _: s.adopt_stale_decisions(timedelta(minutes=1)),),
    "prune_decisions": (lambda s, _: s.prune_decisions(timedelta(minutes=1)),),
    "finish_decision": (lambda s, i: s.finish_decision(i.t("deciding"), TaskState.APPROVED, actor="Unew"),),
    "release_decision": (lambda s, i: s.release_decision(i.t("deciding"), "LeadLex refused"),),
    "apply_lexi_state": (
        lambda s, i: s.apply_lexi_state(i.t("approved"), TaskState.COMPLETED, from_states=[TaskState.APPROVED]),
        lambda s, i: s.apply_lexi_state(
            i.t("pending"),
            TaskState.DISMISSED,
            from_states=[TaskState.PENDING],
            task=Task(id=i.t("pending")),
            signed_at=T1,
        ),
    ),
    "expire": (
        lambda s, i: s.expire(i.t("pending"), "too old"),
        lambda s, i: s.expire(i.t("deciding"), "too old", deciding=True),
    ),
    "escalate": (lambda s, i: s.escalate(i.t("pending"), ("Uboss", "S0boss"), "2h"),),
    "claim_reply": (lambda s, i: s.claim_reply(i.t("completed"), TaskState.COMPLETED),),
    "mark_rendered": (lambda s, i: s.mark_rendered(i.t("completed"), 99),),
    "remember_conversation": (lambda s, _: s.remember_conversation("Uasker", "Cask", "conversation new"),),
    "audit": (lambda s, i: s.audit("note", i.t("pending"), actor="Unew", detail="new"),),
    "claim_digest": (
        lambda s, _: s.claim_digest("channel", "2026-12-05"),
        lambda s, _: s.claim_digest("approvers", "2026-12-02"),
    ),
    "digest_sent": (lambda s, _: s.digest_sent("channel", "2026-12-01", 5),),
}

#: Public methods that are not about one workspace's rows: the pool, the view, the global replay cache, and
#: work that names the workspace it acts on (tested below).
NOT_SCOPED = {
    "from_url",
    "close",
    "ping",
    "scoped",
    "purge_workspace",
    "first_sighting",  # seen_requests is global: models.SeenRequest says why
    "forget_sighting",
    # multi-workspace mode's one decision keeper (bot.tenants), named for spanning workspaces (tested below)
    "workspaces_to_resume",
    "renew_leases_everywhere",
    "prune_decisions_everywhere",
}


def _cases(table: dict[str, tuple[Call, ...]]) -> list[Any]:
    """One pytest param per call, named after its method."""
    return [pytest.param(call, id=f"{name}-{n}") for name, calls in table.items() for n, call in enumerate(calls)]


def test_every_public_store_method_is_listed_for_the_isolation_tests() -> None:
    """A public Store method missing from READS, WRITES or NOT_SCOPED fails here (so it cannot skip the checks)."""
    public = {name for name, _ in inspect.getmembers(Store, callable) if not name.startswith("_")}
    listed = set(READS) | set(WRITES) | NOT_SCOPED
    assert public == listed
    assert not set(READS) & set(WRITES)


@pytest.mark.parametrize("call", _cases(READS))
def test_a_read_in_one_workspace_never_sees_another_s_rows(world: World, call: Call) -> None:
    """A's read finds A's rows, shows nothing of B's (even asked for B's ids) and is the same once B's rows are gone."""
    a, empty = world.store(A), world.store(C)
    in_a, in_empty = call(a, world.own), call(empty, world.own)
    assert in_a != in_empty  # the read does find A's rows (a check that could not fail otherwise)
    assert not _leaks(in_a)
    assert not _leaks(call(a, world.foreign))  # B's own task and decision ids: nothing of B's either
    world.root.purge_workspace(B)
    assert call(a, world.own) == in_a
    world.root.purge_workspace(A)
    assert call(empty, world.own) == in_empty  # an empty workspace's answer never counted A's or B's rows


@pytest.mark.parametrize("call", _cases(WRITES))
def test_a_write_in_one_workspace_never_changes_another_s_rows(world: World, call: Call) -> None:
    """A's write changes A's rows and none of B's, with A's ids and with B's; it returns nothing of B's."""
    a = world.store(A)
    before_a, before_b = _dump(a, A), _dump(a, B)
    result = call(a, world.own)
    assert _dump(a, A) != before_a  # the write took effect, in A
    assert _dump(a, B) == before_b
    assert not _leaks(result)
    result = call(a, world.foreign)  # B's ids, sent to A
    assert _dump(a, B) == before_b
    assert not _leaks(result)


def test_the_same_task_id_lives_separately_in_each_workspace(world: World) -> None:
    """Claiming, finishing and releasing a decision in A leaves B's record of the same task id as it was."""
    a, b = world.store(A), world.store(B)
    task_id = world.own.t("pending")
    b_before = b.get(task_id)
    assert b_before is not None and b_before.channel == "Cbravo"
    won, row = a.claim_decision(task_id, actor="Ualice", action="approve", surface="button")
    assert won and row is not None and row.channel == "Calpha"
    assert a.release_decision(task_id, "LeadLex refused") is not None
    assert a.claim_decision(task_id, actor="Ualice", action="approve", surface="button")[0]
    finished = a.finish_decision(task_id, TaskState.APPROVED)
    assert finished is not None and finished.state == TaskState.APPROVED
    assert b.get(task_id) == b_before
    assert b.claim_decision(task_id, actor="Ubob", action="dismiss", surface="button")[0]  # B's is still pending
    assert a.get(task_id).state == TaskState.APPROVED  # type: ignore[union-attr]


def test_a_task_only_another_workspace_has_cannot_be_seen_or_decided(world: World) -> None:
    """A request for A naming B's task or decision ids finds nothing and changes nothing."""
    a, b = world.store(A), world.store(B)
    only_b = world.foreign.t("pending")
    before = _dump(a, B)
    assert a.get(only_b) is None
    assert a.known([only_b]) == set()
    assert a.claim_decision(only_b, actor="Umallory", action="approve", surface="button") == (False, None)
    assert a.finish_decision(only_b, TaskState.APPROVED) is None
    assert a.decision(world.foreign.decisions["open"]) is None
    a.close_decision(world.foreign.decisions["open"])
    assert a.add_approval(only_b, "Umallory", 1, "button") == ("not_pending", [])
    assert _dump(a, B) == before
    assert b.get(only_b).state == TaskState.PENDING  # type: ignore[union-attr]


def test_journals_conversations_and_audit_trails_are_separate(world: World) -> None:
    """Each workspace has its own decisions, conversation per person and channel, audit trail and digest days."""
    a, b = world.store(A), world.store(B)
    a.remember_conversation("Uasker", "Cask", "conversation new")
    assert a.conversation_for("Uasker", "Cask") == "conversation new"
    assert b.conversation_for("Uasker", "Cask") == "conversation bravo"
    assert {e["detail"] for e in a.audit_events() if e["event"] == "note"} == {"alpha note"}
    assert {e["detail"] for e in b.audit_events() if e["event"] == "note"} == {"bravo note"}
    assert a.decision(world.own.decisions["open"]) is not None
    assert b.decision(world.own.decisions["open"]) is None  # the database numbers decisions across workspaces
    taken = a.take_over_decisions("me", timedelta(minutes=5))
    assert {d.note for d in taken} == {"alpha"}
    assert a.claim_digest("approvers", "2026-12-09") and b.claim_digest("approvers", "2026-12-09")
    assert not a.claim_digest("approvers", "2026-12-09") and not b.claim_digest("channel", "2026-12-01")


def test_purging_a_workspace_deletes_its_rows_in_every_table_and_nothing_else(world: World) -> None:
    """purge_workspace(A) empties A in every table in one go; B's rows and the global replay cache stay."""
    b_before = _dump(world.root, B)
    assert world.root.first_sighting("signature", T1 + timedelta(minutes=5))
    deleted = world.root.purge_workspace(A)
    assert set(deleted) == {"tasks", "decisions", "audit_events", "conversations", "digests", "card_copies"}
    assert all(count > 0 for count in deleted.values())
    assert _dump(world.root, A) == {table.name: [] for table in WORKSPACE_TABLES}
    assert world.store(A).is_empty()
    assert _dump(world.root, B) == b_before
    assert not world.root.first_sighting("signature", T1 + timedelta(minutes=5))  # still remembered


def test_a_scoped_view_shares_the_engine_writer_lock_and_clock(world: World) -> None:
    """scoped() is a cheap view: the same engine, pool, writer lock and clock; the root store stays on ''."""
    view = world.root.scoped(A)
    assert view.engine is world.root.engine
    assert view._writer is world.root._writer  # noqa: SLF001 - the lock SQLite's one writer is queued on
    assert view._now is world.root._now  # noqa: SLF001
    assert world.root.workspace == SINGLE_WORKSPACE and view.workspace == A
    assert view.scoped(B).workspace == B and view.workspace == A
    with pytest.raises(ValueError, match="64"):
        world.root.scoped("x" * 65)


def test_the_single_workspace_store_sees_only_its_own_rows(world: World) -> None:
    """Store(engine) works on workspace '': none of A's or B's rows, and its own rows are invisible to them."""
    root = world.root
    assert root.is_empty()
    assert root.in_states(STATES) == []
    assert root.audit_events() == []
    assert root.claim_announcement(Task(id=world.own.t("pending"), description="single"), "Csingle")
    assert root.get(world.own.t("pending")).channel == "Csingle"  # type: ignore[union-attr]
    assert world.store(A).get(world.own.t("pending")).channel == "Calpha"  # type: ignore[union-attr]
    assert root.scoped(SINGLE_WORKSPACE).get(world.own.t("pending")) == root.get(world.own.t("pending"))


def _schema(store: Store) -> dict[str, list[str]]:
    """The columns of every key and index of the workspace tables, by name."""
    found = inspect_schema(store.engine)
    schema = {}
    present = set(found.get_table_names())
    for table in WORKSPACE_TABLES:
        if table.name not in present:
            continue  # a table a later migration adds (an older revision's schema is compared too)
        key = found.get_pk_constraint(table.name)
        if table.name in {"tasks", "conversations", "digests", "card_copies"}:
            schema[f"pk_{table.name}"] = list(key["constrained_columns"])
        for index in found.get_indexes(table.name):
            schema[str(index["name"])] = [str(column) for column in index["column_names"]]
    return schema


def test_rows_written_before_workspaces_belong_to_the_single_workspace(database_url: str) -> None:
    """Upgrading to 0009 puts existing rows in workspace ''; the downgrade keeps them, and refuses other workspaces'."""
    store = Store.from_url(database_url)
    try:
        migrate.upgrade(store.engine, "0008")
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tasks (task_id, task_type, payload, state, channel, message_ts, claimed_at, version,"
                    " rendered_version, needs_render, announced_at, updated_at) VALUES ('t1', 'x', '{}', 'completed',"
                    " 'C0LEXI', '100.1', :now, 2, 1, true, :now, :now)"
                ),
                {"now": "2026-01-01 00:00:00"},
            )
            conn.execute(
                text("INSERT INTO conversations VALUES ('U1', 'C1', 'conversation', :now)"), {"now": "2026-01-01"}
            )
        schema_0008 = _schema(store)
        migrate.upgrade(store.engine)
        assert all(columns[0] == "workspace" for columns in _schema(store).values())  # every key and index
        assert [row.task_id for row in store.unreplied()] == ["t1"]  # found through the scoped partial index
        assert [row.task_id for row in store.unrendered()] == ["t1"]
        assert store.conversation_for("U1", "C1") == "conversation"
        assert store.scoped(A).get("t1") is None
        assert store.scoped(A).claim_announcement(Task(id="t1"), "C0ALPHA")  # the same id, another workspace

        with pytest.raises(RuntimeError, match="purge"):
            migrate.downgrade(store.engine, "0008")
        assert migrate.current(store.engine) == migrate.head()
        store.purge_workspace(A)
        migrate.downgrade(store.engine, "0008")
        assert _schema(store) == schema_0008
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT task_id, state FROM tasks")).all() == [("t1", "completed")]
            assert conn.execute(text("SELECT conversation_id FROM conversations")).scalar() == "conversation"
        migrate.upgrade(store.engine)
        assert store.get("t1") is not None
    finally:
        store.close()


#: The store's calls on every poll cycle and click, each of which must read an index, never a whole table:
#: {name: (call, the indexes its statements may use)}. SQLite names the key of tasks sqlite_autoindex_tasks_1.
PK = {"pk_tasks", "sqlite_autoindex_tasks_1"}
INDEXED: dict[str, tuple[Call, set[str]]] = {
    "get": (lambda s, _: s.get("h-5"), PK),
    "get_now": (lambda s, _: s.get_now("h-5"), PK),  # a click's read before its ack
    "known": (lambda s, _: s.known(["h-5", "h-6", "new"]), PK),
    "unrendered": (lambda s, _: s.unrendered(), {"ix_tasks_needs_render"}),
    "unreplied": (lambda s, _: s.unreplied(), {"ix_tasks_unreplied", "ix_tasks_state"}),
    "count_in_state": (lambda s, _: s.count_in_state(TaskState.PENDING), {"ix_tasks_state"}),
    "in_states": (lambda s, _: s.in_states([TaskState.PENDING], limit=20), {"ix_tasks_state"}),
    "stale": (lambda s, _: s.stale(TaskState.DECIDING, timedelta(minutes=5)), {"ix_tasks_state"}),
    "recent_decisions": (lambda s, _: s.recent_decisions(), {"ix_tasks_decided_at"}),
    "take_over_decisions": (lambda s, _: s.take_over_decisions("me", timedelta(minutes=1)), {"ix_decisions_open"}),
    "prune_decisions": (lambda s, _: s.prune_decisions(timedelta(days=14)), {"ix_decisions_done_at"}),
    "claim_decision": (
        lambda s, _: s.claim_decision("h-5", actor="U", action="approve", surface="button"),
        {*PK, "ix_tasks_state"},
    ),
    "mark_rendered": (lambda s, _: s.mark_rendered("h-5", 3), PK),
    # Every card update reads the task's copies: by the key of card_copies, whatever the number of copies kept.
    "copies": (lambda s, _: s.copies("h-5"), {"pk_card_copies", "sqlite_autoindex_card_copies_1"}),
    # Recovery's look for copies claimed and never posted, every cycle: only those few rows are in its index.
    "stale_copies": (lambda s, _: s.stale_copies(timedelta(minutes=5)), {"ix_card_copies_unposted"}),
    "count_audit-task": (lambda s, _: s.count_audit("reminder", task_id="h-5"), {"ix_audit_events_task_id"}),
    "count_audit-since": (lambda s, _: s.count_audit("decided", surface="rule", since=T0), {"ix_audit_events_at"}),
}


def _history(store: Store, workspaces: tuple[str, ...], count: int) -> None:
    """Bulk-insert `count` finished tasks (replied, rendered), their decisions, audit and card copies per workspace."""
    rows, decisions, audit, copies = [], [], [], []
    for workspace in workspaces:
        for n in range(count):
            state = (TaskState.COMPLETED, TaskState.DISMISSED, TaskState.FAILED)[n % 3]
            at = T0 - timedelta(minutes=n)
            rows.append(
                {
                    "workspace": workspace,
                    "task_id": f"h-{n}",
                    "task_type": "contact_update",
                    "payload": {"id": f"h-{n}"},
                    "state": state,
                    "channel": "C0LEXI",
                    "message_ts": f"{n}.1",
                    "claimed_at": at,
                    "decided_at": at,
                    "version": 3,
                    "rendered_version": 3,
                    "needs_render": False,
                    "replied_state": state,
                    "announced_at": at,
                    "updated_at": at,
                }
            )
            audit.append({"workspace": workspace, "at": at, "task_id": f"h-{n}", "event": "announced"})
            copies.extend(
                {
                    "workspace": workspace,
                    "task_id": f"h-{n}",
                    "channel": dm,
                    "kind": "dm",
                    "ts": f"{n}.2",
                    "rendered_version": 3,
                    "claimed_at": at,
                }
                for dm in ("DBOB", "DCAROL")
            )
            decisions.append(
                {
                    "workspace": workspace,
                    "task_id": f"h-{n}",
                    "actor": "U",
                    "action": "approve",
                    "surface": "button",
                    "stage": "done",
                    "attempts": 1,
                    "accepted_at": at,
                    "done_at": at,
                }
            )
    tables = {table.name: table for table in WORKSPACE_TABLES}
    with store.engine.begin() as conn:
        conn.execute(tables["tasks"].insert(), rows)
        conn.execute(tables["decisions"].insert(), decisions)
        conn.execute(tables["audit_events"].insert(), audit)
        conn.execute(tables["card_copies"].insert(), copies)
        if conn.dialect.name == "postgresql":  # as autovacuum would; the bot never runs ANALYZE on SQLite
            conn.exec_driver_sql("ANALYZE")


@pytest.mark.parametrize("name", list(INDEXED))
def test_the_poll_cycle_s_statements_read_an_index_with_history(database_url: str, name: str) -> None:
    """With history in two workspaces, each statement of a hot call reads its index, never a whole table."""
    root = Store.from_url(database_url, clock=lambda: T1)
    try:
        migrate.upgrade(root.engine)
        _history(root, (SINGLE_WORKSPACE, A), 3000)
        store = root.scoped(A)
        for n in range(3):  # a little live work: pending, deciding, an open decision, a card to update
            assert store.claim_announcement(Task(id=f"live-{n}"), "C0LEXI")
            store.record_message(f"live-{n}", "C0LEXI", "1.1", rendered_version=1)
        store.claim_decision("live-0", actor="U", action="approve", surface="button")
        store.accept_decision("live-1", **_CLAIM, reason=None, note=None, reply={}, owner="x", lease=timedelta(0))
        seen: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: Any) -> None:
            seen.append((statement, parameters))

        event.listen(root.engine, "before_cursor_execute", capture)
        try:
            call, indexes = INDEXED[name]
            call(store, Ids("h-"))
        finally:
            event.remove(root.engine, "before_cursor_execute", capture)
        statements = [(s, p) for s, p in seen if s.lstrip().split()[0].upper() in {"SELECT", "UPDATE", "DELETE"}]
        assert statements
        with root.engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            for statement, parameters in statements:
                explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
                plan = " / ".join(str(row[-1]) for row in conn.exec_driver_sql(explain + statement, parameters))
                scanned = "Seq Scan" in plan if postgres else " SCAN " in f" {plan} ".replace("/", " ")
                assert not scanned, f"{name}: {statement.split()[0]} reads a whole table: {plan}"
                assert any(index in plan for index in indexes), f"{name}: not the index expected: {plan}"
            conn.rollback()
    finally:
        root.close()


def test_the_keeper_s_queries_across_workspaces_find_renew_and_prune_every_workspace_s(world: World) -> None:
    """One keeper for every workspace: expired leases found in A and B (not C), renewed by id, old ones pruned."""
    root = world.root
    assert sorted(root.workspaces_to_resume("me")) == [A, B]  # their leases ran out at T0 + 1 min
    taken = [d.id for w in (A, B) for d in world.store(w).take_over_decisions("me", timedelta(minutes=5))]
    assert root.workspaces_to_resume("me") == []
    world.now[0] = T1 + timedelta(minutes=10)
    assert sorted(root.workspaces_to_resume("me")) == [A, B]
    root.renew_leases_everywhere("me", taken, timedelta(minutes=5))
    assert root.workspaces_to_resume("me") == []
    assert sorted(root.workspaces_to_resume("me", orphans=True)) == []  # every open decision is "me"'s now
    root.prune_decisions_everywhere(timedelta(minutes=1))
    for workspace, ids in ((A, world.own), (B, world.foreign)):
        assert world.store(workspace).decision(ids.decisions["done"]) is None
        assert world.store(workspace).decision(ids.decisions["open"]) is not None
