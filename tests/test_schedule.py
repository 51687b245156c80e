"""The poll scheduler of multi-workspace mode (bot.core.schedule), on SQLite and PostgreSQL.

The poll functions here are test inputs standing for Tenants.poll: they record their calls, sleep, block or raise.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, make_url

from bot.core.schedule import Polled, Scheduler
from bot.db import migrate
from bot.db.store import Store
from bot.db.vault import Vault, generate_key
from bot.db.workspaces import Workspace, Workspaces
from bot.ops.metrics import Metrics
from tests.support.harness import SECRETS_GIVEN
from tests.support.tcp_proxy import TcpProxy

KEY = "wbk_schedule_secret_key_0123456789"
SECRETS_GIVEN.add(KEY)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty store."""
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


@pytest.fixture
def vault() -> Vault:
    """A vault with a fresh key (watched by the session's secret scan)."""
    key = generate_key()
    SECRETS_GIVEN.add(key)
    return Vault([key])


@pytest.fixture
def registry(store: Store, vault: Vault) -> Workspaces:
    """The registry on the store's engine."""
    return Workspaces(store.engine, vault)


@pytest.fixture
def replica_registries(database_url: str, vault: Vault) -> Iterator[Callable[[], Workspaces]]:
    """Builds registries each on an engine of its own, as separate replicas have; closes them all at the end."""
    stores: list[Store] = []

    def build() -> Workspaces:
        """A registry on a new engine."""
        stores.append(Store.from_url(database_url))
        return Workspaces(stores[-1].engine, vault)

    yield build
    for store in stores:
        store.close()


def _connect(registry: Workspaces, *workspace_ids: str) -> None:
    """Install and connect each workspace (a LeadLex key and a channel)."""
    for workspace_id in workspace_ids:
        registry.installed(workspace_id, enterprise_id=None, is_enterprise_install=False, installer="U0INSTALL")
        registry.connect_lexi(workspace_id, KEY)
        registry.configure(workspace_id, channel="C0LEXI")


def _ids(count: int) -> list[str]:
    """`count` workspace ids."""
    return [f"T{i:04d}" for i in range(count)]


def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether `predicate` came true within `timeout` seconds (asked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@dataclass
class FakePoll:
    """A poll function that records each call's start and end per workspace, sleeps, and returns `interval`."""

    interval: float = 60.0
    sleep: float = 0.0
    replica: str = "one"
    failing: frozenset[str] = frozenset()
    blocked: threading.Event | None = None
    #: (workspace id, replica, start, end) of each call; shared by the copies made for other replicas (replace()).
    calls: list[tuple[str, str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, workspace: Workspace) -> float:
        """Poll `workspace`: wait, record, and return the interval (or raise for a failing one)."""
        started = time.monotonic()
        if self.blocked is not None:
            self.blocked.wait(30)
        time.sleep(self.sleep)
        with self.lock:
            self.calls.append((workspace.id, self.replica, started, time.monotonic()))
        if workspace.id in self.failing:
            raise RuntimeError(f"LeadLex said no to {workspace.id}")
        return self.interval

    def polled(self) -> Counter[str]:
        """How many polls each workspace had."""
        with self.lock:
            return Counter(call[0] for call in self.calls)


class FakeClock:
    """A UTC clock that the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now


def _seconds_to_next(registry: Workspaces, workspace_id: str) -> float:
    """Seconds from a workspace's last recorded poll to its next one."""
    workspace = registry.require(workspace_id)
    assert workspace.next_poll_at is not None and workspace.last_poll_at is not None
    return (workspace.next_poll_at - workspace.last_poll_at).total_seconds()


def test_due_workspaces_are_polled_and_others_never(registry: Workspaces) -> None:
    """Connected due workspaces are polled once a round; installed-only and uninstalled ones never are."""
    _connect(registry, "T0A", "T0B", "T0C", "T0GONE")
    registry.installed("T0NEW", enterprise_id=None, is_enterprise_install=False, installer="U0INSTALL")
    registry.uninstalled("T0GONE")
    poll, metrics = FakePoll(interval=120.0), Metrics()
    scheduler = Scheduler(registry, poll, workers=8, metrics=metrics)
    try:
        before = datetime.now(UTC)
        assert scheduler.tick(timeout=10) == 3
        assert scheduler.tick(timeout=10) == 0
    finally:
        scheduler.close()
    assert poll.polled() == Counter({"T0A": 1, "T0B": 1, "T0C": 1})
    for workspace_id in ("T0A", "T0B", "T0C"):
        workspace = registry.require(workspace_id)
        assert workspace.next_poll_at is not None and workspace.last_error is None
        assert before + timedelta(seconds=119) <= workspace.next_poll_at <= datetime.now(UTC) + timedelta(seconds=121)
    assert metrics.registry.get_sample_value("lexi_workspace_polls_total", {"result": "ok"}) == 3


def test_next_poll_follows_the_returned_interval_and_budget(registry: Workspaces) -> None:
    """A poll returning Polled records its interval and LeadLex's budget left; a plain number keeps the budget."""
    _connect(registry, "T0A")
    clock = FakeClock()
    answers: list[float | Polled] = [Polled(30.0, budget_remaining=777), 45.0]
    scheduler = Scheduler(Workspaces(registry.engine, None, clock=clock), lambda _ws: answers.pop(0), clock=clock)
    try:
        assert scheduler.tick(timeout=10) == 1
        assert registry.require("T0A").next_poll_at == clock.now + timedelta(seconds=30)
        assert registry.require("T0A").budget_remaining == 777
        clock.now += timedelta(seconds=29)
        assert scheduler.tick(timeout=10) == 0
        clock.now += timedelta(seconds=2)
        assert scheduler.tick(timeout=10) == 1
    finally:
        scheduler.close()
    workspace = registry.require("T0A")
    assert workspace.next_poll_at == clock.now + timedelta(seconds=45) and workspace.budget_remaining == 777


def test_claim_takes_only_free_workers_and_hides_claimed_workspaces(registry: Workspaces) -> None:
    """A claim takes at most the free workers' worth, and a claimed workspace is not due again until its lease ends."""
    _connect(registry, *_ids(5))
    scheduler = Scheduler(registry, FakePoll(), workers=2, lease=timedelta(seconds=90))
    try:
        now = datetime.now(UTC)
        claimed = scheduler.claim()
        assert len(claimed) == 2 and all(w.next_poll_at is None for w in claimed)
        due = {w.id for w in registry.due(now)}
        assert len(due) == 3 and not due & {w.id for w in claimed}
        assert {w.id for w in registry.due(now + timedelta(seconds=91))} == set(_ids(5))
    finally:
        scheduler.close()


def test_a_failing_poll_records_its_error_and_backs_off(registry: Workspaces, caplog: pytest.LogCaptureFixture) -> None:
    """A poll that raises is logged quoted and recorded as last_error; its retries back off; the others go on."""
    _connect(registry, "T0BAD", "T0OK")
    clock = FakeClock()
    poll = FakePoll(interval=1.0, failing=frozenset({"T0BAD"}))
    timed = Workspaces(registry.engine, None, clock=clock)
    scheduler = Scheduler(timed, poll, clock=clock, backoff=(2.0, 10.0))
    caplog.set_level(logging.WARNING, logger="bot.core.schedule")
    gaps: list[float] = []
    try:
        for _ in range(60):
            failures = poll.polled()["T0BAD"]
            scheduler.tick(timeout=10)
            assert _seconds_to_next(registry, "T0OK") == 1.0
            if poll.polled()["T0BAD"] > failures:
                gaps.append(_seconds_to_next(registry, "T0BAD"))
            if len(gaps) == 5:
                break
            clock.now += timedelta(seconds=1.001)
    finally:
        scheduler.close()
    assert registry.require("T0BAD").last_error == "RuntimeError: LeadLex said no to T0BAD"
    assert registry.require("T0OK").last_error is None
    assert len(gaps) == 5 and 1.6 <= gaps[0] <= 2.0
    assert all(later >= 1.5 * earlier for earlier, later in itertools.pairwise(gaps) if earlier < 5.0)
    assert 8.0 <= gaps[-1] <= 10.0
    assert poll.polled()["T0OK"] > poll.polled()["T0BAD"] == 5
    assert "poll failed: 'RuntimeError: LeadLex said no to T0BAD'" in caplog.text
    assert KEY not in caplog.text


def test_a_poll_returning_nonsense_is_a_failure(registry: Workspaces) -> None:
    """A poll that returns no usable number of seconds is recorded as failed, not as a poll due at once forever."""
    _connect(registry, "T0A")
    scheduler = Scheduler(registry, lambda _ws: float("nan"), backoff=(5.0, 10.0))
    try:
        scheduler.tick(timeout=10)
    finally:
        scheduler.close()
    assert registry.require("T0A").last_error == "ValueError: the poll returned 'nan', not a number of seconds"
    assert _seconds_to_next(registry, "T0A") >= 3.0


def test_run_polls_in_one_process_and_stops_after_polls_in_flight(registry: Workspaces) -> None:
    """run() keeps every connected workspace polled on its interval (SQLite: one process) and stops cleanly."""
    _connect(registry, *_ids(10))
    poll = FakePoll(interval=0.3, sleep=0.05)
    scheduler = Scheduler(registry, poll, workers=3)
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert _until(lambda: min(poll.polled()[w] for w in _ids(10)) >= 3, 15)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    count = len(poll.calls)
    time.sleep(0.5)
    assert len(poll.calls) == count  # nothing polls after run() returned
    assert all(w.last_poll_at is not None and w.last_error is None for w in registry.all())


def test_wake_starts_a_round_at_once(registry: Workspaces) -> None:
    """A workspace connected while the scheduler waits is polled as soon as wake() is called."""
    poll = FakePoll()
    scheduler = Scheduler(registry, poll)
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    try:
        time.sleep(0.2)
        _connect(registry, "T0LATE")
        started = time.monotonic()
        scheduler.wake()
        assert _until(lambda: poll.polled()["T0LATE"] == 1, 5)
        assert time.monotonic() - started < 0.9
    finally:
        stop.set()
        runner.join(10)


def test_a_poll_longer_than_its_lease_keeps_its_claim_while_it_runs(
    registry: Workspaces, replica_registries: Callable[[], Workspaces]
) -> None:
    """A poll five times its lease is renewed while it runs: another replica never finds the workspace due meanwhile."""
    _connect(registry, "T0SLOW")
    slow = FakePoll(interval=60.0, sleep=1.5)
    scheduler = Scheduler(registry, slow, workers=1, lease=timedelta(seconds=0.3))  # busy: it claims nothing more
    other = Scheduler(replica_registries(), FakePoll(), workers=2, lease=timedelta(seconds=0.3))
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    stolen: list[Workspace] = []
    try:
        assert _until(lambda: registry.require("T0SLOW").next_poll_at is not None, 5)
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            stolen += other.claim()
            time.sleep(0.05)
        assert _until(lambda: slow.polled() == Counter({"T0SLOW": 1}), 5)
    finally:
        stop.set()
        runner.join(10)
        other.close(timeout=1)
    assert stolen == []
    assert 59 < _seconds_to_next(registry, "T0SLOW") < 61


def test_a_stuck_poll_is_renewed_no_longer_than_longest(registry: Workspaces, caplog: pytest.LogCaptureFixture) -> None:
    """A poll past `longest` stops being renewed, is logged, and is not started twice by its own scheduler."""
    _connect(registry, "T0SLOW")
    poll = FakePoll(interval=60.0, sleep=1.5)
    scheduler = Scheduler(registry, poll, workers=2, lease=timedelta(seconds=0.2), longest=timedelta(seconds=0.4))
    caplog.set_level(logging.WARNING, logger="bot.core.schedule")
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert _until(lambda: "its claim is no longer renewed" in caplog.text, 10)
        assert _until(lambda: "longer than a claim is renewed" in caplog.text, 10)
    finally:
        stop.set()
        runner.join(10)
    assert poll.polled() == Counter({"T0SLOW": 1})
    assert 59 < _seconds_to_next(registry, "T0SLOW") < 61


def test_replicas_never_poll_a_workspace_twice_at_once(
    database_url: str, registry: Workspaces, replica_registries: Callable[[], Workspaces]
) -> None:
    """Three schedulers on their own engines share 30 workspaces: all polled, spread, never one polled twice at once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several replicas need PostgreSQL; SQLite has one process")
    _connect(registry, *_ids(30))
    poll = FakePoll(interval=0.2, sleep=0.03)
    stop = threading.Event()
    replicas = ("r1", "r2", "r3")
    schedulers = [Scheduler(replica_registries(), replace(poll, replica=name), workers=4) for name in replicas]
    runners = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s in schedulers]
    for runner in runners:
        runner.start()
    try:
        time.sleep(3)
    finally:
        stop.set()
        for runner in runners:
            runner.join(10)
    assert not any(runner.is_alive() for runner in runners)
    by_workspace: dict[str, list[tuple[float, float]]] = {}
    for workspace_id, _, started, ended in poll.calls:
        by_workspace.setdefault(workspace_id, []).append((started, ended))
    assert set(by_workspace) == set(_ids(30))
    for spans in by_workspace.values():
        spans.sort()
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))
    per_replica = Counter(replica for _, replica, _, _ in poll.calls)
    assert all(per_replica[name] >= len(poll.calls) / 10 for name in replicas), per_replica


def test_a_dead_replicas_workspaces_are_polled_after_its_lease(
    registry: Workspaces, replica_registries: Callable[[], Workspaces]
) -> None:
    """A replica whose polls never finish holds its claims only until the lease ends; then another polls them."""
    _connect(registry, *_ids(12))
    lease = timedelta(seconds=1.5)
    stuck = threading.Event()
    dead = Scheduler(replica_registries(), FakePoll(blocked=stuck), workers=4, lease=lease, drain=0.1)
    live_poll = FakePoll(interval=60.0)
    live = Scheduler(replica_registries(), live_poll, workers=4, lease=lease)
    stop = threading.Event()
    runner = threading.Thread(target=live.run, args=(stop,), daemon=True)
    try:
        claimed_at = time.monotonic()
        assert dead.tick(timeout=0.1) == 4
        held = {w for w in _ids(12) if registry.require(w).next_poll_at is not None}
        runner.start()
        assert _until(lambda: set(live_poll.polled()) == set(_ids(12)), 15)
    finally:
        stop.set()
        runner.join(10)
        stuck.set()
        dead.close(timeout=5)
    firsts = {w: min(c[2] for c in live_poll.calls if c[0] == w) for w in held}
    assert len(held) == 4 and all(started >= claimed_at + 1.4 for started in firsts.values())
    assert live_poll.polled() == Counter(dict.fromkeys(_ids(12), 1))


def test_the_claim_uses_the_due_index(database_url: str, registry: Workspaces) -> None:
    """On PostgreSQL the claim's query is answered from ix_workspaces_due (sequential scans disabled to ask)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the plan is PostgreSQL's")
    _connect(registry, *_ids(3))
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:  # noqa: FBT001 - SQLAlchemy's signature
        """Keep the claim's SELECT."""
        if "SKIP LOCKED" in statement:
            statements.append((statement, parameters))

    engine: Engine = registry.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert len(registry.claim_due(2, lease=timedelta(seconds=60))) == 2
        assert len(statements) == 1  # the never-planned workspaces filled the claim: the due ones were not asked
        third = next(w.id for w in registry.all() if w.next_poll_at is None)
        registry.polled(third, next_poll_at=datetime.now(UTC))
        assert [w.id for w in registry.claim_due(2, lease=timedelta(seconds=60))] == [third]
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(statements) == 1 + 2
    for statement, parameters in statements:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        assert "Index Scan using ix_workspaces_due" in plan, plan
        assert "Index Cond: (next_poll_at" in plan, plan
        assert "LockRows" in plan


def test_polling_resumes_after_the_database_comes_back(
    database_url: str, registry: Workspaces, vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    """While PostgreSQL is unreachable the scheduler waits (logged once, by error type); then polling resumes."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is PostgreSQL's (through a proxy that can cut it)")
    _connect(registry, *_ids(3))
    base = make_url(database_url)
    caplog.set_level(logging.INFO, logger="bot.core.schedule")
    with TcpProxy(base.host or "127.0.0.1", base.port or 5432) as proxy:
        proxied = Store.from_url(base.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        poll = FakePoll(interval=0.2)
        scheduler = Scheduler(Workspaces(proxied.engine, vault), poll)
        stop = threading.Event()
        runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
        runner.start()
        try:
            assert _until(lambda: min(poll.polled()[w] for w in _ids(3)) >= 2, 10)
            proxy.cut()
            assert _until(lambda: "cannot reach the database" in caplog.text, 10)
            time.sleep(1)
            during = len(poll.calls)
            time.sleep(1)
            assert len(poll.calls) == during
            proxy.resume()
            assert _until(lambda: len(poll.calls) >= during + 6, 15)
            assert _until(lambda: "the scheduler resumes" in caplog.text, 5)
        finally:
            stop.set()
            runner.join(10)
            proxied.close()
    assert caplog.text.count("cannot reach the database") == 1


def test_a_claim_taken_over_meanwhile_is_let_go(registry: Workspaces, caplog: pytest.LogCaptureFixture) -> None:
    """A renewal leaves alone a workspace another replica claimed and polled after this one's lease ran out."""
    _connect(registry, "T0MINE", "T0LOST")
    scheduler = Scheduler(registry, FakePoll(), workers=2, lease=timedelta(seconds=30))
    assert {w.id for w in scheduler.claim()} == {"T0MINE", "T0LOST"}
    claimed = registry.require("T0MINE").next_poll_at
    theirs = datetime.now(UTC) + timedelta(seconds=47)
    registry.polled("T0LOST", next_poll_at=theirs)  # the other replica's poll, recorded
    caplog.set_level(logging.WARNING, logger="bot.core.schedule")
    time.sleep(0.01)
    assert scheduler.renew() == 1
    assert "T0LOST: another replica took its claim over" in caplog.text
    renewed = registry.require("T0MINE").next_poll_at
    assert claimed is not None and renewed is not None and renewed > claimed
    assert registry.require("T0LOST").next_poll_at == theirs
    assert scheduler.renew() == 1  # the one let go is not tried again
    assert registry.require("T0LOST").next_poll_at == theirs
    scheduler.close(timeout=1)
