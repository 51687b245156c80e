"""The store's atomic transitions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.pool import StaticPool

from bot.db import migrate
from bot.db.models import Base
from bot.db.store import DecisionRow, GroupCommit, Replayed, Store, WriterLock
from bot.lexi.models import Task


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty store."""
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


def _announced(store: Store, task_id: str = "t1") -> None:
    """Claim and record a task as announced."""
    assert store.claim_announcement(Task(id=task_id, description="d"), "C0LEXI")
    store.record_message(task_id, "C0LEXI", "100.1", rendered_version=1)


def test_migrations_match_models(database_url: str) -> None:
    """Upgrading an empty database to head gives exactly the schema the models describe."""
    store = Store.from_url(database_url)
    try:
        assert migrate.current(store.engine) is None
        migrate.upgrade(store.engine)
        assert migrate.current(store.engine) == migrate.head()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        migrate.upgrade(store.engine)  # a second upgrade is a no-op
        migrate.downgrade(store.engine, "base")
        assert migrate.current(store.engine) is None
    finally:
        store.close()


def test_announcement_claim_is_taken_once(store: Store) -> None:
    """Claiming the same task twice succeeds only the first time."""
    task = Task(id="t1")
    assert store.claim_announcement(task, "C0LEXI") is True
    assert store.claim_announcement(task, "C0LEXI") is False
    assert store.get("t1").state == "announcing"


def test_concurrent_announcement_claims_have_one_winner(store: Store) -> None:
    """Twenty threads claiming one task at once: exactly one wins."""
    results: list[bool] = []
    barrier = threading.Barrier(20)

    def claim() -> None:
        barrier.wait(timeout=10)
        results.append(store.claim_announcement(Task(id="race"), "C0LEXI"))

    threads = [threading.Thread(target=claim) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(results) == [False] * 19 + [True]


def test_concurrent_decision_claims_have_one_winner(store: Store) -> None:
    """Twenty people deciding one task at once: exactly one moves it to deciding."""
    _announced(store)
    winners: list[str] = []
    barrier = threading.Barrier(20)

    def claim(user: str) -> None:
        barrier.wait(timeout=10)
        won, _row = store.claim_decision("t1", actor=user, action="approve", surface="button")
        if won:
            winners.append(user)

    threads = [threading.Thread(target=claim, args=(f"U{i:03d}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(winners) == 1
    row = store.get("t1")
    assert row.state == "deciding" and row.actor == winners[0]


def test_decision_lifecycle_bumps_version_for_the_card(store: Store) -> None:
    """Each transition bumps the version so the card is re-rendered; mark_rendered clears it."""
    _announced(store)
    assert store.unrendered() == []
    won, row = store.claim_decision("t1", actor="UALICE", action="approve", surface="button")
    assert won and row.version == 2
    assert [r.task_id for r in store.unrendered()] == ["t1"]
    store.mark_rendered("t1", 2)
    assert store.unrendered() == []
    row = store.finish_decision("t1", "approved")
    assert row.state == "approved" and row.actor == "UALICE" and row.decided_at is not None
    assert store.claim_decision("t1", actor="UBOB", action="dismiss", surface="button")[0] is False


def test_a_decision_is_claimed_with_its_journal_entry_only_at_the_version_checked(store: Store) -> None:
    """`claim_at`: journal and claim in one write while the record is at the version checked; else journal only."""
    _announced(store, "t1")
    _announced(store, "t2")
    journal = {"reason": None, "note": None, "reply": {}, "owner": "me", "lease": timedelta(minutes=1)}
    seen = store.get("t1").version
    decision = store.accept_decision("t1", actor="UALICE", action="approve", surface="button", claim_at=seen, **journal)
    assert decision.stage == "claimed" and decision.claimed is not None
    row = store.get("t1")
    assert decision.claimed == row
    assert row.state == "deciding" and row.actor == "UALICE" and row.decision_id == decision.id
    assert row.version == seen + 1
    assert store.decision(decision.id).stage == "claimed"
    started = [e for e in store.audit_events() if e["event"] == "decision_started"]
    assert [(e["task_id"], e["actor"]) for e in started] == [("t1", "UALICE")]

    now = row.version
    late = store.accept_decision("t1", actor="UBOB", action="approve", surface="button", claim_at=now, **journal)
    assert late.stage == "accepted" and late.claimed is None  # not pending any more: journaled, not claimed
    assert store.decision(late.id).stage == "accepted"  # as stored too: nobody resumes it as claimed
    assert store.get("t1").actor == "UALICE"

    stale = store.get("t2").version
    store.add_approval("t2", "UCAROL", 2, "button")  # the record moves on after the check
    moved = store.accept_decision("t2", actor="UBOB", action="approve", surface="button", claim_at=stale, **journal)
    assert moved.stage == "accepted" and moved.claimed is None
    assert store.get("t2").state == "pending" and store.decision(moved.id).stage == "accepted"
    assert len([e for e in store.audit_events() if e["event"] == "decision_started"]) == 1


def test_released_decision_returns_to_pending_with_a_note(store: Store) -> None:
    """A failed decision hands the task back, with the reason for the card."""
    _announced(store)
    store.claim_decision("t1", actor="UALICE", action="approve", surface="button")
    row = store.release_decision("t1", "Could not approve: LeadLex is not answering")
    assert row.state == "pending" and row.actor is None and row.note.startswith("Could not")
    assert store.claim_decision("t1", actor="UBOB", action="approve", surface="button")[0] is True


def test_lexi_state_applies_only_from_expected_states(store: Store) -> None:
    """A state reported by LeadLex moves the record only from the states the caller expects."""
    _announced(store)
    assert store.apply_lexi_state("t1", "completed", from_states=("approved",)) is None
    row = store.apply_lexi_state("t1", "dismissed", from_states=("pending",))
    assert row.state == "dismissed" and row.actor is None and row.surface == "leadlex"


def test_thread_reply_is_claimed_once(store: Store) -> None:
    """The one thread reply per task can be claimed only once."""
    _announced(store)
    assert store.claim_reply("t1", "completed") is True
    assert store.claim_reply("t1", "completed") is False


def test_stale_claims_are_found_and_taken_over_once(database_url: str) -> None:
    """An old announcing claim is stale; only one process can take it over."""
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = Store.from_url(database_url, clock=lambda: now[0])
    migrate.upgrade(store.engine)
    try:
        store.claim_announcement(Task(id="t1"), "C0LEXI")
        assert store.stale("announcing", timedelta(seconds=90)) == []
        now[0] += timedelta(minutes=5)
        (row,) = store.stale("announcing", timedelta(seconds=90))
        assert store.take_over_announcement("t1", row.claimed_at) is True
        assert store.take_over_announcement("t1", row.claimed_at) is False
    finally:
        store.close()


def test_release_forgets_only_unposted_claims(store: Store) -> None:
    """Releasing an announcement deletes a claim without a message, never a posted task."""
    store.claim_announcement(Task(id="t1"), "C0LEXI")
    store.release_announcement("t1")
    assert store.get("t1") is None
    _announced(store, "t2")
    store.release_announcement("t2")
    assert store.get("t2") is not None


def test_known_handles_many_ids(store: Store) -> None:
    """known() answers for more ids than one IN clause holds."""
    for i in range(3):
        store.claim_announcement(Task(id=f"t{i}"), "C0LEXI")
    ids = [f"t{i}" for i in range(1200)]
    assert store.known(ids) == {"t0", "t1", "t2"}


def test_conversation_is_remembered_per_person_and_channel(store: Store) -> None:
    """Each person has one Lexi conversation per channel; remembering a new one replaces it."""
    assert store.conversation_for("UALICE", "C0LEXI") is None
    store.remember_conversation("UALICE", "C0LEXI", "conv-1")
    store.remember_conversation("UBOB", "C0LEXI", "conv-2")
    store.remember_conversation("UALICE", "D0ALICE", "conv-3")
    assert store.conversation_for("UALICE", "C0LEXI") == "conv-1"
    store.remember_conversation("UALICE", "C0LEXI", "conv-4")
    assert store.conversation_for("UALICE", "C0LEXI") == "conv-4"
    assert store.conversation_for("UBOB", "C0LEXI") == "conv-2"
    assert store.conversation_for("UALICE", "D0ALICE") == "conv-3"


def test_recent_decisions_are_latest_first_and_bounded(database_url: str) -> None:
    """recent_decisions lists decided records by decision time, newest first, and skips undecided ones."""
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = Store.from_url(database_url, clock=lambda: now[0])
    migrate.upgrade(store.engine)
    try:
        for i in range(4):
            _announced(store, f"t{i}")
        for task_id in ("t2", "t0", "t3"):
            now[0] += timedelta(minutes=1)
            store.claim_decision(task_id, actor="UALICE", action="approve", surface="button")
            store.finish_decision(task_id, "approved")
        store.apply_lexi_state("t3", "completed", from_states=("approved",))
        assert [r.task_id for r in store.recent_decisions()] == ["t3", "t0", "t2"]
        assert [r.task_id for r in store.recent_decisions(limit=1)] == ["t3"]
    finally:
        store.close()


def test_racing_releases_migrate_once(database_url: str) -> None:
    """Two releases migrating the same empty database at once both succeed, and the schema is migrated once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the migration lock is PostgreSQL's advisory lock; SQLite has one process")
    stores = [Store.from_url(database_url) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def release(store: Store) -> None:
        try:
            barrier.wait(timeout=10)
            migrate.upgrade(store.engine)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=release, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        assert migrate.current(stores[0].engine) == migrate.head()
        with stores[0].engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    finally:
        for s in stores:
            s.close()


def test_first_sighting_refuses_a_repeat_until_it_expires(database_url: str) -> None:
    """A replay key is accepted once, refused while remembered, and accepted again once it has expired."""
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]
    store = Store.from_url(database_url, clock=lambda: now[0])
    migrate.upgrade(store.engine)
    try:
        until = now[0] + timedelta(minutes=5)
        assert store.first_sighting("webhook:abc", until) is True
        assert store.first_sighting("webhook:abc", until) is False
        assert store.first_sighting("webhook:other", until) is True
        now[0] += timedelta(minutes=6)
        assert store.first_sighting("webhook:abc", now[0] + timedelta(minutes=5)) is True
    finally:
        store.close()


def test_first_sighting_has_one_winner_across_threads(store: Store) -> None:
    """Ten threads presenting the same request at once: exactly one is told it is the first."""
    until = datetime.now(UTC) + timedelta(minutes=5)
    results: list[bool] = []
    barrier = threading.Barrier(10)

    def present() -> None:
        barrier.wait()
        results.append(store.first_sighting("slack:sig", until))

    threads = [threading.Thread(target=present) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [False] * 9 + [True]


def test_sqlite_writer_lock_serves_urgent_writes_first_then_in_arrival_order() -> None:
    """A click's journal write (urgent) waiting on SQLite's writer lock goes before the card updates queued earlier.

    The others get the lock in the order they asked for it: the holder hands it to the next waiter in turn.
    """
    lock = WriterLock()
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with lock.hold():
            holding.set()
            release.wait(5)

    def writer(name: str, *, urgent: bool) -> None:
        with lock.hold(urgent=urgent):
            order.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holding.wait(5)
    for name, urgent in (("ordinary-1", False), ("ordinary-2", False), ("urgent", True)):
        thread = threading.Thread(target=writer, args=(name,), kwargs={"urgent": urgent})
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # queued in this order
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["urgent", "ordinary-1", "ordinary-2"]


def test_sqlite_writer_lock_is_reentrant_for_its_holder() -> None:
    """A write that runs another write on the same thread (an audit inside a transition) does not deadlock."""
    lock = WriterLock()
    with lock.hold(), lock.hold(urgent=True):
        pass
    done = threading.Event()

    def other() -> None:
        with lock.hold():
            done.set()

    threading.Thread(target=other).start()
    assert done.wait(5), "the lock was not released by its holder"


def test_a_click_s_transitions_do_not_read_back_what_they_wrote(store: Store) -> None:
    """Claiming and finishing a decision each take one UPDATE (RETURNING the record) and their audit INSERT.

    On PostgreSQL both are one statement (the audit INSERT a data-modifying CTE of the UPDATE's).
    """
    one = ["WITH"] if store.engine.dialect.name == "postgresql" else ["UPDATE", "INSERT"]
    _announced(store)
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split(maxsplit=1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        won, claimed = store.claim_decision("t1", actor="UALICE", action="approve", surface="button")
        assert won
        assert claimed is not None
        assert (claimed.state, claimed.actor, claimed.version) == ("deciding", "UALICE", 2)
        assert statements == one
        statements.clear()
        finished = store.finish_decision("t1", "approved")
        assert finished is not None
        assert (finished.state, finished.actor, finished.version) == ("approved", "UALICE", 3)
        assert statements == one
    finally:
        event.remove(store.engine, "before_cursor_execute", note)
    assert store.get("t1") == finished
    events = [(e["event"], e["actor"], e["surface"], e["detail"]) for e in store.audit_events()]
    assert events[-2:] == [
        ("decision_started", "UALICE", "button", "approve"),
        ("decided", "UALICE", "button", "approved"),
    ]


def test_journal_writes_arriving_together_are_each_recorded_once_or_refused_as_replays(store: Store) -> None:
    """Forty clicks at once, ten of them replays of others: thirty decisions journaled, each task claimed once."""
    for n in range(10):
        _announced(store, f"t{n}")
    journal = {"reason": None, "note": None, "reply": {}, "owner": "me", "lease": timedelta(minutes=1)}
    expires = datetime.now(UTC) + timedelta(minutes=5)
    results: list[object] = []
    barrier = threading.Barrier(40)

    def click(n: int) -> None:
        task_id, key = f"t{n % 10}", f"req:{n % 30}"  # requests 30..39 repeat requests 0..9
        version = store.get(task_id).version
        barrier.wait(timeout=10)
        try:
            results.append(
                store.accept_decision(
                    task_id,
                    actor=f"U{n}",
                    action="approve",
                    surface="button",
                    sighting=(key, expires),
                    claim_at=version,
                    **journal,
                )
            )
        except Replayed:
            results.append("replayed")

    threads = [threading.Thread(target=click, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    decisions = [r for r in results if isinstance(r, DecisionRow)]
    assert results.count("replayed") == 10 and len(decisions) == 30
    assert len({d.id for d in decisions}) == 30
    claimed = [d for d in decisions if d.stage == "claimed"]
    assert sorted(d.task_id for d in claimed) == [f"t{n}" for n in range(10)]  # each task claimed by one click
    for decision in claimed:
        row = store.get(decision.task_id)
        assert row.state == "deciding" and row.decision_id == decision.id and row.actor == decision.actor


def _numbered_write(n: int, leading: threading.Event, queued: threading.Event, conn: Connection) -> int:
    """Write `n`; 0 holds its transaction until `queued`, 2 fails the transaction, 3 fails alone (a LookupError)."""
    if n == 0:  # the leader's own write: holds the lead until the others have queued
        leading.set()
        assert queued.wait(10)
    if n == 2:
        raise RuntimeError("disk I/O error")
    if n == 3:
        raise LookupError("a replay")  # fails alone: it wrote nothing
    conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
    return n


def test_a_group_commit_that_fails_records_none_of_its_writes_and_each_raises() -> None:
    """A write that fails rolls back the writes committed with it (each raises); the next group commits."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    group = GroupCommit(alone=(LookupError,))
    leading, queued = threading.Event(), threading.Event()
    outcomes: dict[int, object] = {}

    def write(n: int) -> Callable[[Connection], int]:
        return partial(_numbered_write, n, leading, queued)

    def run(n: int) -> None:
        try:
            outcomes[n] = group.run(write(n), engine.begin)
        except Exception as exc:  # noqa: BLE001 - what each write raised is the point
            outcomes[n] = type(exc).__name__

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert leading.wait(10)
    others = [threading.Thread(target=run, args=(n,)) for n in (1, 2, 3)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while group.waiting < 3 and time.monotonic() < deadline:  # the three wait for the next group
        time.sleep(0.01)
    queued.set()
    for thread in [first, *others]:
        thread.join(10)
    assert outcomes == {0: 0, 1: "RuntimeError", 2: "RuntimeError", 3: "RuntimeError"}
    assert group.run(write(4), engine.begin) == 4
    with engine.connect() as conn:
        assert sorted(r[0] for r in conn.execute(text("SELECT n FROM t"))) == [0, 4]
