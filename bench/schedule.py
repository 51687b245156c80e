r"""Benchmark: the multi-workspace poll scheduler's claim throughput and lag (bot.core.schedule), with a no-op poll.

N connected workspaces are bulk-inserted with their first polls spread over one interval; R replicas, each a
process of its own with its own engine and a Scheduler of `--workers` threads, claim and "poll" them for S seconds.
The poll does nothing but note how late it started (now − the workspace's next_poll_at before the claim: the claim
lag) and return `--interval` seconds. Reported: polls/s against the demand (N / interval), the lag's median, p99
and max, the claim transactions (their count and median duration), and each replica's CPU (process time / wall).
On PostgreSQL the tables live in a schema of their own, `lexi_bench_schedule`, dropped afterwards; SQLite serves
one process, so one replica.

    .venv/bin/python -m bench.schedule --workspaces 1000 --replicas 3 --seconds 20 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text

from bench.common import machine, percentile, print_table
from bot.config import normalize_database_url
from bot.core.schedule import Scheduler
from bot.db import migrate
from bot.db.store import make_engine, utcnow
from bot.db.workspaces import WORKSPACES, Workspace, Workspaces

PG_SCHEMA = "lexi_bench_schedule"


@dataclass(frozen=True)
class Replica:
    """What one replica measured."""

    polls: int
    lags: list[float]
    claims: list[float]
    cpu: float
    wall: float


def engine_for(url: str) -> Engine:
    """The bot's own engine settings (bot.db.store.make_engine); on PostgreSQL confined to the benchmark's schema."""
    if not url.startswith("postgresql"):
        return make_engine(url)
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args={"options": f"-csearch_path={PG_SCHEMA}"}
    )


@contextmanager
def database(url: str) -> Iterator[str]:
    """The database URL, migrated (PostgreSQL: in a fresh schema of its own, dropped afterwards)."""
    if url.startswith("postgresql"):
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    engine = engine_for(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if url.startswith("postgresql"):
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
            admin.dispose()


def populate(url: str, count: int, interval: float, start: datetime) -> None:
    """Insert `count` connected workspaces, their first polls spread evenly over one interval from `start`."""
    engine = engine_for(url)
    rows = [
        {
            "id": f"TB{i:07d}",
            "is_enterprise_install": False,
            "state": "connected",
            "lexi_key": "bench: never read",
            "channel": "C0LEXI",
            "approvers": [],
            "webhook_path": f"bench-{i}",
            "next_poll_at": start + timedelta(seconds=interval * i / count),
            "created_at": start,
            "updated_at": start,
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(WORKSPACES), rows)
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE workspaces"))
    engine.dispose()


class TimedScheduler(Scheduler):
    """A Scheduler that also times each claim transaction (measurement only: the claim itself is unchanged)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As Scheduler."""
        super().__init__(*args, **kwargs)
        self.claim_times: list[float] = []

    def claim(self, limit: int | None = None) -> list[Workspace]:
        """Claim, as Scheduler does, timing it."""
        started = time.perf_counter()
        claimed = super().claim(limit)
        if claimed:
            self.claim_times.append(time.perf_counter() - started)
        return claimed


def replica(url: str, options: dict[str, Any], start: float, results: Any) -> None:
    """One replica's process: schedule no-op polls from `start` (a time.time()) for the run's seconds."""
    lags: list[float] = []
    lock = threading.Lock()

    def poll(workspace: Workspace) -> float:
        """Note how late this poll started; the next in `interval` seconds."""
        if workspace.next_poll_at is not None:
            lag = (utcnow() - workspace.next_poll_at).total_seconds()
            with lock:
                lags.append(lag)
        return float(options["interval"])

    engine = engine_for(url)
    scheduler = TimedScheduler(
        Workspaces(engine, None), poll, workers=options["workers"], lease=timedelta(seconds=options["lease"])
    )
    time.sleep(max(start - time.time(), 0.0))
    stop = threading.Event()
    threading.Timer(options["seconds"], stop.set).start()
    cpu, wall = time.process_time(), time.monotonic()
    scheduler.run(stop)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    engine.dispose()
    results.put(Replica(len(lags), lags, scheduler.claim_times, cpu, wall))


def run(args: argparse.Namespace) -> list[Replica]:
    """Populate, run the replicas side by side, and gather what each measured."""
    url = normalize_database_url(args.database_url)
    if not url.startswith("postgresql") and args.replicas > 1:
        raise SystemExit("SQLite serves one process: use --replicas 1, or a PostgreSQL --database-url")
    options = {"interval": args.interval, "workers": args.workers, "lease": args.lease, "seconds": args.seconds}
    context = multiprocessing.get_context("spawn")
    with database(url):
        start = time.time() + 3.0  # time for the replicas to start and import before the first poll is due
        populate(url, args.workspaces, args.interval, utcnow() + timedelta(seconds=3.0))
        results = context.Queue()
        processes = [context.Process(target=replica, args=(url, options, start, results)) for _ in range(args.replicas)]
        for process in processes:
            process.start()
        replicas = [results.get(timeout=args.seconds + 120) for _ in processes]
        for process in processes:
            process.join(30)
    return replicas


def report(args: argparse.Namespace, replicas: Sequence[Replica]) -> None:
    """Print the run's tables."""
    seconds = statistics.mean(r.wall for r in replicas)
    lags = [lag for r in replicas for lag in r.lags]
    claims = [c for r in replicas for c in r.claims]
    demand = args.workspaces / args.interval if args.interval else float("inf")
    database = normalize_database_url(args.database_url).split(":", 1)[0].split("+", 1)[0]
    print(
        f"\n{args.workspaces} workspaces, {args.replicas} replicas × {args.workers} workers, {database}, "
        f"poll interval {args.interval:g} s (demand {demand:,.0f} polls/s), lease {args.lease:g} s, "
        f"{seconds:.1f} s measured",
        flush=True,
    )
    print_table(
        "Throughput and claim lag (no-op poll)",
        ["polls", "polls/s", "lag median", "lag p99", "lag max", "claims", "claim median", "claim p99"],
        [
            [
                f"{len(lags):,}",
                f"{len(lags) / seconds:,.0f}",
                f"{percentile(lags, 50) * 1000:.0f} ms",
                f"{percentile(lags, 99) * 1000:.0f} ms",
                f"{max(lags, default=float('nan')) * 1000:.0f} ms",
                f"{len(claims):,}",
                f"{percentile(claims, 50) * 1000:.1f} ms",
                f"{percentile(claims, 99) * 1000:.1f} ms",
            ]
        ],
    )
    print_table(
        "Per replica",
        ["replica", "polls", "share", "CPU s", "CPU % of a core", "claims", "workspaces per claim"],
        [
            [
                i + 1,
                f"{r.polls:,}",
                f"{r.polls / max(len(lags), 1):.0%}",
                f"{r.cpu:.1f}",
                f"{r.cpu / r.wall:.0%}",
                f"{len(r.claims):,}",
                f"{r.polls / max(len(r.claims), 1):.1f}",
            ]
            for i, r in enumerate(replicas)
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, run, and print the results."""
    default_url = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tempfile.gettempdir()}/lexi-bench-schedule.db"
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workspaces", type=int, default=1000, help="connected workspaces (default 1000)")
    parser.add_argument("--replicas", type=int, default=3, help="replica processes (default 3; SQLite: 1)")
    parser.add_argument("--database-url", default=default_url, help="default: TEST_DATABASE_URL, else a SQLite file")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the replicas run (default 20)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds each poll plans to the next (default 5)")
    parser.add_argument("--workers", type=int, default=4, help="poll threads per replica (default 4)")
    parser.add_argument("--lease", type=float, default=120.0, help="claim lease in seconds (default 120)")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    if args.database_url.startswith("sqlite"):
        Path(args.database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    report(args, run(args))


if __name__ == "__main__":
    main()
