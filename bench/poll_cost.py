"""Benchmark 4: the cost of one poll cycle as history grows, and the bot's resident memory.

For N = 1k, 10k and 100k recorded tasks in final states (bulk-inserted) plus 100 pending tasks announced, one
`Poller.cycle()` (webhooks off: the full reconcile) is timed several times, counting SQL statements (the SQLAlchemy
`before_cursor_execute` event). SQLite always; PostgreSQL too when TEST_DATABASE_URL is set (in a schema of its own,
`lexi_bench`, dropped afterwards; ANALYZEd after the bulk insert, as autovacuum would). Memory: the VmRSS of the
bot's own process (bench.botproc) idle on an empty database, and polling a 100k-task history; and what this process
retains per task the messenger has handled.
"""

from __future__ import annotations

import gc
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, text

from bench.common import (
    CHANNEL,
    UNLIMITED,
    parse_args,
    posts_by_task,
    print_table,
    pyplot,
    rss_mb,
    running_bot,
    save_chart,
    wait_until,
)
from bot.config import load_settings, normalize_database_url
from bot.db import migrate
from bot.db.models import TaskRecord
from bot.db.store import Store, utcnow
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime

PENDING = 100
PG_SCHEMA = "lexi_bench"
FINAL = (("completed", 60), ("dismissed", 25), ("failed", 10), ("gone", 5))


def history_rows(start: int, count: int) -> list[dict[str, Any]]:
    """`count` task records in final states, as the bot leaves them (reply posted, card rendered)."""
    rng = random.Random(start)
    now = utcnow()
    rows = []
    for i in range(start, start + count):
        state = rng.choices([s for s, _ in FINAL], [w for _, w in FINAL])[0]
        at = now - timedelta(minutes=i)
        task_id = f"hist-{i:07d}"
        rows.append(
            {
                "task_id": task_id,
                "task_type": "prospect_search",
                "state": state,
                "channel": CHANNEL,
                "payload": {
                    "id": task_id,
                    "type": "prospect_search",
                    "status": state,
                    "description": "Find CFOs",
                    "created_at": at.isoformat(),
                    "metadata": {"per_page": 20},
                },
                "message_ts": f"{1_700_000_000 + i}.000100",
                "claimed_at": at,
                "actor": "UALICE",
                "action": "dismiss" if state == "dismissed" else "approve",
                "surface": "button",
                "reason": None,
                "note": None,
                "decided_at": at,
                "version": 3,
                "rendered_version": 3,
                "needs_render": False,
                "replied_state": state if state in ("completed", "failed") else None,
                "announced_at": at,
                "updated_at": at,
            }
        )
    return rows


def populate(engine: Engine, count: int) -> None:
    """Bulk-insert `count` final-state records with SQLAlchemy core, in chunks."""
    for start in range(0, count, 5_000):
        with engine.begin() as conn:
            conn.execute(insert(TaskRecord), history_rows(start, min(5_000, count - start)))


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[tuple[str, Engine]]:
    """An empty, migrated database: a SQLite file, or the `lexi_bench` schema of TEST_DATABASE_URL."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'history-{time.monotonic_ns()}.db'}"
        store = Store.from_url(url)
        migrate.upgrade(store.engine)
        try:
            yield url, store.engine
        finally:
            store.close()
        return
    url = normalize_database_url(os.environ["TEST_DATABASE_URL"])
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    # The bot's own engine settings (bot.db.store.make_engine), confined to the benchmark's schema.
    engine = create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"options": f"-csearch_path={PG_SCHEMA}"}
    )
    migrate.upgrade(engine)
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        admin.dispose()


@dataclass(frozen=True)
class CycleCost:
    """Timings (seconds) and SQL statements of repeated poll cycles over one history size."""

    kind: str
    history: int
    times: list[float]
    statements: list[int]
    lexi_calls: int
    slowest: str
    slowest_seconds: float


class _SqlCounter:
    """Counts the SQL statements sent on one engine and the time each kind of statement takes to execute."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        self.seconds: dict[str, float] = defaultdict(float)
        self._started: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, cursor: Any, *_args: Any) -> None:
        """A statement starts."""
        self.statements += 1
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, _conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        """A statement ends: add its time under its WHERE clause."""
        where = re.sub(r"%\(\w+\)s(::\w+)?", "?", " ".join(statement.split("WHERE", 1)[-1].split()))
        where = re.sub(r"\([?, ]{40,}\)", "(…)", where.replace("tasks.", ""))
        self.seconds[where] += time.perf_counter() - self._started.pop(id(cursor), time.perf_counter())

    def slowest(self) -> tuple[str, float]:
        """The kind of statement that took the most time so far, and that time."""
        return max(self.seconds.items(), key=lambda item: item[1], default=("—", 0.0))


def measure_cycles(kind: str, history: int, repeats: int, workdir: Path) -> CycleCost:
    """Time `repeats` poll cycles over `history` final records and PENDING announced pending tasks."""
    with database(kind, workdir) as (url, engine), Sandbox(seed=False, **UNLIMITED) as sandbox, SlackStandIn() as slack:
        populate(engine, history)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:  # as autovacuum would after such growth: the planner sees the table
                conn.execute(text("ANALYZE tasks"))
        for _ in range(PENDING):
            sandbox.add_task()
        settings = load_settings(
            {
                "LEXI_API_KEY": sandbox.api_key,
                "LEXI_API_URL": sandbox.url,
                "SLACK_BOT_TOKEN": "xoxb-test-token",
                "SLACK_SIGNING_SECRET": "bench-signing-secret-0123456789",
                "SLACK_CHANNEL": CHANNEL,
                "SLACK_API_URL": slack.api_url,
                "DATABASE_URL": url,
                "POLL_INTERVAL": "60",
            }
        )
        runtime = Runtime.build(settings, store=Store(engine), post_interval=0.0)
        try:
            runtime.poller.cycle()  # announces the pending tasks; not measured
            counter = _SqlCounter(engine)
            times: list[float] = []
            statements: list[int] = []
            sent = runtime.lexi.sent
            for _ in range(repeats):
                before = counter.statements
                started = time.perf_counter()
                runtime.poller.cycle()
                times.append(time.perf_counter() - started)
                statements.append(counter.statements - before)
            calls = (runtime.lexi.sent - sent) // repeats
        finally:
            runtime.drain(60)  # announcements queued by the cycles finish before the queues stop
            for queue in runtime.queues.values():
                queue.shutdown()
            runtime.lexi.close()
    where, seconds = counter.slowest()
    return CycleCost(kind, history, times, statements, calls, where, seconds / repeats)


def bot_memory(history: int, workdir: Path) -> tuple[float, float]:
    """VmRSS (MiB) of the bot process: idle on an empty database, and polling `history` records + PENDING."""
    with running_bot(poll_interval=1.0, post_interval=0.0) as stack:
        time.sleep(5)  # a few idle cycles
        idle = stack.rss_mb()
    url = f"sqlite:///{workdir / 'memory.db'}"
    store = Store.from_url(url)
    migrate.upgrade(store.engine)
    populate(store.engine, history)
    store.close()

    def add_pending(sandbox: Sandbox) -> None:
        for _ in range(PENDING):
            sandbox.add_task()

    with running_bot(poll_interval=1.0, post_interval=0.0, database_url=url, before_start=add_pending) as stack:
        wait_until(lambda: len(posts_by_task(stack.slack)) >= PENDING, 60, interval=0.1)
        time.sleep(5)  # a few cycles over the full history
        loaded = stack.rss_mb()
    return idle, loaded


def retained_per_task(history: int, workdir: Path) -> tuple[int, float, float]:
    """Entries kept, RSS growth and their sys.getsizeof size (MiB) after syncing `history` distinct cards."""
    with database("sqlite", workdir) as (url, engine), Sandbox(seed=False) as sandbox, SlackStandIn() as slack:
        populate(engine, history)
        settings = load_settings(
            {
                "LEXI_API_KEY": sandbox.api_key,
                "LEXI_API_URL": sandbox.url,
                "SLACK_BOT_TOKEN": "xoxb-test-token",
                "SLACK_SIGNING_SECRET": "bench-signing-secret-0123456789",
                "SLACK_CHANNEL": CHANNEL,
                "SLACK_API_URL": slack.api_url,
                "DATABASE_URL": url,
            }
        )
        runtime = Runtime.build(settings, store=Store(engine), post_interval=0.0)
        try:
            gc.collect()
            before = rss_mb()
            for i in range(history):  # what announcing or deciding each task does once (cards already current)
                runtime.messenger.sync_card(f"hist-{i:07d}")
            gc.collect()
            grown = rss_mb() - before
            locks = runtime.messenger._render_locks  # noqa: SLF001 - the structure being measured is private on purpose
            pairs = list(locks.items()) if isinstance(locks, dict) else [("", lock) for lock in locks]
            size = sys.getsizeof(locks) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in pairs)
        finally:
            runtime.drain(60)  # announcements queued by the cycles finish before the queues stop
            for queue in runtime.queues.values():
                queue.shutdown()
            runtime.lexi.close()
    return len(locks), grown, size / 2**20


def _chart(costs: Sequence[CycleCost], path: str) -> None:
    """Median cycle time and statements per cycle against history size, per database."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for kind in dict.fromkeys(c.kind for c in costs):
        mine = [c for c in costs if c.kind == kind]
        sizes = [c.history for c in mine]
        medians = [statistics.median(c.times) * 1000 for c in mine]
        ax.plot(sizes, medians, marker="o", label=kind)
        for size, value in zip(sizes, medians):
            ax.annotate(f"{value:.1f} ms", (size, value), textcoords="offset points", xytext=(0, 7), ha="center")
    ax.set_xscale("log")
    ax.set_ylim(0, max(statistics.median(c.times) for c in costs) * 1000 * 1.2)
    ax.set_xlabel("recorded tasks in the store (log scale)")
    ax.set_ylabel("median time per poll cycle (ms)")
    statements = ", ".join(sorted({str(statistics.median(c.statements)) for c in costs}))
    ax.set_title(f"Poll cycle cost with {PENDING} pending tasks ({statements} SQL statements per cycle)")
    ax.legend()
    save_chart(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure cycle cost per history size and database, and memory; print tables; optionally chart."""
    args = parse_args(__doc__ or "", argv)
    sizes = [1_000, 5_000] if args.quick else [1_000, 10_000, 100_000]
    repeats = 5 if args.quick else 15
    kinds = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])
    workdir = Path(tempfile.mkdtemp(prefix="lexi-pollcost-"))
    try:
        costs = [measure_cycles(kind, n, repeats, workdir) for kind in kinds for n in sizes]
        idle, loaded = bot_memory(sizes[-1], workdir)
        kept, grown, size = retained_per_task(sizes[-1], workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for c in costs:
        base = next(b for b in costs if b.kind == c.kind)
        rows.append(
            [
                c.kind,
                f"{c.history:,}",
                len(c.times),
                f"{statistics.median(c.times) * 1000:.1f} ms",
                f"{max(c.times) * 1000:.1f} ms",
                statistics.median(c.statements),
                c.lexi_calls,
                f"{statistics.median(c.times) / statistics.median(base.times):.2f}×",
                f"{c.slowest_seconds * 1000:.1f} ms: WHERE {c.slowest[:95]}",
            ]
        )
    print_table(
        f"One poll cycle (full reconcile) with {PENDING} pending tasks, by recorded history",
        [
            "database",
            "history",
            "cycles",
            "median",
            "max",
            "SQL statements",
            "LeadLex calls",
            "vs smallest",
            "slowest statement (mean per cycle)",
        ],
        rows,
    )
    print_table(
        "Memory",
        ["what", "VmRSS / growth"],
        [
            ["bot process, idle (empty database, polling every 1 s)", f"{idle:.1f} MiB"],
            [f"bot process, polling {sizes[-1]:,} recorded + {PENDING} pending tasks", f"{loaded:.1f} MiB"],
            [
                f"retained after the messenger synced {sizes[-1]:,} distinct tasks' cards",
                (
                    f"{grown:+.1f} MiB RSS; Messenger._render_locks holds {kept:,} locks "
                    f"(≈ {size:.2f} MiB by sys.getsizeof)"
                ),
            ],
        ],
    )
    flat = all(
        statistics.median(c.times) <= 1.5 * statistics.median(next(b for b in costs if b.kind == c.kind).times)
        and statistics.median(c.statements) == statistics.median(costs[0].statements)
        for c in costs
    )
    print(f"target: poll-cycle cost flat as history grows → {'met' if flat else 'MISSED'}")
    if args.chart:
        _chart(costs, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
