r"""Benchmark (issue 15): N installed workspaces on R `lexi-bot run` replicas and one database.

Each workspace has its own Slack team, bot token and channel in the stand-in, and its own LeadLex workspace in the
sandbox with its own key and daily budget: the budgets are chosen so that the poll planner (bot.core.budget)
spreads each workspace's polling share over the day at one poll every `--intervals` seconds (30 to 60 by
default), each workspace its own. Set-up is bench.fleet's. Once every workspace was polled once (the warm-up),
each workspace gets `--tasks-per-workspace` new pending tasks at random times over `--minutes`, in random order.
Measured, per task: created → its card posted by chat.postMessage (the stand-in's clock is this process's);
lateness = that time − the workspace's planned poll interval (the median of next_poll_at − last_poll_at read from
the registry during the run), which must be ≤ 5 s; duplicates (two cards for one task); leaks (a card in another
workspace's channel, or posted with another team's token: the stand-in knows whose token made each call); the
budget (each LeadLex workspace's calls against the polling share of its daily limit over the run, and its 429s);
CPU seconds and RSS of each replica. `--kill` SIGKILLs replica 1 halfway: the workspaces it held then (its
claims, still leased 3 and 8 s later) must be announced within their interval plus the Scheduler's lease.

    .venv/bin/python -m bench.workspaces --workspaces 1000 --replicas 3 --minutes 5 --kill \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.workspaces --sizes 10,100,1000 --minutes 4 --database-url ...   # the growth series
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.common import machine, percentile, print_table
from bench.fleet import DAY, POLLING_SHARE, Fleet, Replica
from bot.db.store import make_engine
from bot.db.workspaces import WORKSPACES

#: The Scheduler's claim lease (bot.core.schedule.Scheduler's default, which `lexi-bot run` uses).
LEASE = 15.0
#: The target: every task announced within its workspace's planned interval plus this.
SLACK_SECONDS = 5.0
#: How often the registry's planned intervals are sampled.
SAMPLE_EVERY = 5.0


@dataclass(frozen=True)
class Options:
    """One run's size and pacing."""

    workspaces: int = 1000
    replicas: int = 3
    database_url: str = ""
    minutes: float = 5.0
    kill: bool = False
    poll_interval: float = 30.0
    intervals: tuple[float, float] = (30.0, 60.0)
    tasks_per_workspace: int = 1
    #: Seconds each LeadLex answer takes (as over the internet); it also keeps polls in flight when a replica dies.
    lexi_latency: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class TaskRecord:
    """A task added to one workspace's LeadLex, and when."""

    id: str
    team: str
    channel: str
    created: float


@dataclass(frozen=True)
class Post:
    """A card posted for a task: when, in which channel, with whose token, and whether Slack took it."""

    at: float
    channel: str
    team: str
    ok: bool


@dataclass
class Usage:
    """A replica's CPU seconds and RSS over the measured window."""

    number: int
    cpu: float
    wall: float
    rss_start: float
    rss_end: float
    killed: bool
    files: int


@dataclass
class Result:
    """What one run measured (every list in task order)."""

    options: Options
    warmup: float
    tasks: list[TaskRecord]
    posts: dict[str, list[Post]]
    planned: dict[str, float]
    usage: list[Usage]
    polls: int
    window: float
    budget_over: list[str]
    budget_ratio: float
    limited: int
    killed_at: float | None = None
    held: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    # --- the verdicts ---------------------------------------------------------------------------------

    def announced(self, task: TaskRecord) -> Post | None:
        """The task's first card that Slack took in its own channel with its own token, or None."""
        mine = [p for p in self.posts.get(task.id, []) if p.ok and p.team == task.team and p.channel == task.channel]
        return min(mine, key=lambda p: p.at) if mine else None

    def lateness(self, task: TaskRecord) -> float | None:
        """Seconds past its workspace's planned interval that the task's card came (None: never)."""
        post = self.announced(task)
        return None if post is None else post.at - task.created - self.planned[task.team]

    @property
    def missing(self) -> list[TaskRecord]:
        """Tasks never announced."""
        return [t for t in self.tasks if self.announced(t) is None]

    @property
    def duplicates(self) -> list[str]:
        """Tasks with more than one card Slack took."""
        return [task_id for task_id, posts in self.posts.items() if sum(p.ok for p in posts) > 1]

    @property
    def leaks(self) -> list[str]:
        """Tasks with a post (taken or refused) in another channel or with another team's token."""
        teams = {t.id: t for t in self.tasks}
        return [
            task_id
            for task_id, posts in self.posts.items()
            if task_id in teams
            and any(p.team != teams[task_id].team or p.channel != teams[task_id].channel for p in posts)
        ]

    def recovered(self) -> float | None:
        """Seconds from the kill to the first card after it in the slowest of the workspaces the dead replica held."""
        if self.killed_at is None or not self.held:
            return None
        firsts = []
        for team in self.held:
            after = [
                post.at
                for task in self.tasks
                if task.team == team and (post := self.announced(task)) is not None and post.at > self.killed_at
            ]
            if after:
                firsts.append(min(after) - self.killed_at)
        return max(firsts) if len(firsts) == len(self.held) else None

    def kill_affected(self, task: TaskRecord) -> bool:
        """Whether a task's workspace was held by the killed replica and the task came before it was recovered."""
        return (
            self.killed_at is not None
            and task.team in self.held
            and task.created < self.killed_at + LEASE + self.planned[task.team]
        )


# --- the run ----------------------------------------------------------------------------------------


def run(options: Options) -> Result:
    """Set up, warm up, add the tasks, optionally kill a replica, wait for the cards, and measure."""
    if not options.database_url.startswith("postgres") and options.replicas > 1:
        raise SystemExit("SQLite serves one process: use --replicas 1, or a PostgreSQL --database-url")
    workdir = Path(tempfile.mkdtemp(prefix="lexi-bench-workspaces-"))
    try:
        with Fleet(
            options.workspaces,
            options.replicas,
            options.database_url,
            workdir,
            options.poll_interval,
            options.intervals,
            options.seed,
        ) as fleet:
            _progress(
                f"{options.workspaces} workspaces installed and connected; starting {options.replicas} replica(s)"
            )
            return _measure(fleet, options)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class _Reading:
    """A replica's CPU seconds, RSS, open files and the time they were read."""

    cpu: float
    rss: float
    files: int
    at: float

    @classmethod
    def of(cls, replica: Replica) -> _Reading:
        """Read a replica now."""
        return cls(replica.cpu(), replica.rss(), replica.files(), time.time())


@dataclass
class _Load:
    """What adding the tasks left: the tasks, the replicas' readings at the end (or death), the dead one's claims."""

    tasks: list[TaskRecord] = field(default_factory=list)
    ended: dict[int, _Reading] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)


def _measure(fleet: Fleet, options: Options) -> Result:
    """The run itself, on a populated fleet."""
    started = time.time()
    for tenant in fleet.tenants:
        tenant.lexi.latency = options.lexi_latency
    fleet.start_replicas()
    sampler = Sampler(fleet.url)
    widest = max(t.interval for t in fleet.tenants)
    if not sampler.wait_all_polled(options.workspaces, timeout=2 * widest + 60 + options.workspaces * 0.3):
        raise RuntimeError("not every workspace was polled once in time: the replicas cannot keep up")
    warmup = time.time() - started
    _progress(f"every workspace polled once after {warmup:.0f} s; adding tasks for {options.minutes:g} min")
    sampler.start()
    t0 = time.time()
    begun = {r.number: _Reading.of(r) for r in fleet.running}
    load = _add_tasks(fleet, options, sampler, t0)
    end = time.time()
    polls = sum(1 for t in fleet.tenants for c in t.lexi.calls if t0 <= c.at < end and c.method == "GET")
    deadline = time.time() + widest + SLACK_SECONDS + (LEASE if options.kill else 0.0) + 20
    ids = {t.id for t in load.tasks}
    while time.time() < deadline and len(ids & set(_posts(fleet))) < len(ids):
        time.sleep(0.5)
    load.held |= sampler.held()
    sampler.stop()
    budget_over, ratio, limited = _budget(fleet, time.time() - started)
    usage = [
        Usage(
            r.number,
            load.ended[r.number].cpu - begun[r.number].cpu,
            load.ended[r.number].at - t0,
            begun[r.number].rss,
            load.ended[r.number].rss,
            r.killed_at is not None,
            load.ended[r.number].files,
        )
        for r in fleet.running
    ]
    return Result(
        options,
        warmup,
        load.tasks,
        _posts(fleet),
        {t.team: sampler.planned(t.team, t.interval) for t in fleet.tenants},
        usage,
        polls,
        end - t0,
        budget_over,
        ratio,
        limited,
        fleet.running[0].killed_at,
        load.held,
        [line for replica in fleet.running for line in replica.errors()],
    )


def _add_tasks(fleet: Fleet, options: Options, sampler: Sampler, t0: float) -> _Load:
    """Add each workspace's tasks at random times over the run's minutes (killing replica 1 halfway if asked)."""
    rng = random.Random(options.seed)
    seconds = options.minutes * 60
    schedule = sorted(
        (t0 + rng.uniform(0, seconds), tenant) for tenant in fleet.tenants for _ in range(options.tasks_per_workspace)
    )
    kill_at = t0 + seconds / 2 if options.kill else None
    victim = fleet.running[0]
    load = _Load()
    probed = False
    for n, (when, tenant) in enumerate(schedule):
        if kill_at is not None and when >= kill_at and victim.killed_at is None:
            _sleep_until(kill_at)
            sampler.wait_busy(2 * options.replicas, timeout=10.0)  # so that the victim likely holds claims
            load.ended[victim.number] = _Reading.of(victim)
            fleet.kill(victim)
            sampler.note_kill(victim.killed_at or time.time())
            _progress("replica 1 SIGKILLed")
        _sleep_until(when)
        created = time.time()
        tenant.lexi.add_task(description=f"Bench task {n} of {tenant.team}", task_id=f"{tenant.team}-task-{n}")
        load.tasks.append(TaskRecord(f"{tenant.team}-task-{n}", tenant.team, tenant.channel, created))
        load.held |= sampler.held()
        if load.held and not probed:  # a task for each workspace the dead replica held: its recovery is measured
            probed = True
            load.tasks += _probe(fleet, load.held)
            _progress(f"replica 1 held {len(load.held)} workspace(s) when it died: a probe task added to each")
    _sleep_until(t0 + seconds)
    for replica in fleet.running:
        load.ended.setdefault(replica.number, _Reading.of(replica))
    return load


def _probe(fleet: Fleet, held: set[str]) -> list[TaskRecord]:
    """Add a task to each workspace the killed replica held, now; their records."""
    probes = []
    for tenant in fleet.tenants:
        if tenant.team in held:
            task_id = f"{tenant.team}-probe"
            created = time.time()
            tenant.lexi.add_task(description=f"Probe after the kill, {tenant.team}", task_id=task_id)
            probes.append(TaskRecord(task_id, tenant.team, tenant.channel, created))
    return probes


def _progress(line: str) -> None:
    """Say how the run goes (on stderr: the report is stdout's)."""
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def _sleep_until(moment: float) -> None:
    """Sleep until time.time() reaches `moment`."""
    time.sleep(max(0.0, moment - time.time()))


def _posts(fleet: Fleet) -> dict[str, list[Post]]:
    """Every top-level chat.postMessage that carried a task's metadata, by task id."""
    posts: dict[str, list[Post]] = defaultdict(list)
    for call in fleet.slack.calls_to("chat.postMessage"):
        metadata = call.args.get("metadata")
        if isinstance(metadata, dict) and not call.args.get("thread_ts"):
            task_id = (metadata.get("event_payload") or {}).get("task_id")
            if task_id:
                posts[str(task_id)].append(Post(call.at, str(call.args.get("channel")), call.team, call.ok))
    return posts


def _budget(fleet: Fleet, seconds: float) -> tuple[list[str], float, int]:
    """Workspaces over their polling share for the run (or refused with 429), the highest share used, the 429s."""
    over, worst, limited = [], 0.0, 0
    for tenant in fleet.tenants:
        calls = tenant.lexi.calls
        refused = sum(1 for c in calls if c.status == 429)
        share = tenant.lexi.daily_limit * POLLING_SHARE * seconds / DAY
        ratio = len(calls) / max(share, 1.0)
        worst, limited = max(worst, ratio), limited + refused
        # The first poll comes before the planner knows the budget: one call of slack, and rounding.
        if refused or len(calls) > share + 2:
            over.append(tenant.team)
    return over, worst, limited


class Sampler:
    """Reads the registry every few seconds: each workspace's planned interval, and what a dead replica holds."""

    def __init__(self, url: str) -> None:
        """Read from the run's database."""
        self._engine = make_engine(url)
        self._gaps: dict[str, list[float]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._kill: float | None = None
        self._leased: list[set[str]] = []
        self._lock = threading.Lock()

    def wait_all_polled(self, count: int, timeout: float) -> bool:
        """Wait (bounded) until every one of `count` workspaces has been polled once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            query = select(func.count()).select_from(WORKSPACES).where(WORKSPACES.c.last_poll_at.is_not(None))
            with self._engine.connect() as conn:
                polled = conn.execute(query).scalar()
            if polled == count:
                return True
            time.sleep(1.0)
        return False

    def wait_busy(self, claims: int, timeout: float) -> None:
        """Wait (bounded) until at least `claims` workspaces are claimed by some replica at once (polls in flight)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._claimed(self._read(), time.time())) >= claims:
                return
            time.sleep(0.02)

    def _read(self) -> list[tuple[str, datetime | None, datetime | None]]:
        """Each workspace's id, last poll and next poll, as the registry has them now."""
        columns = WORKSPACES.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(columns.id, columns.last_poll_at, columns.next_poll_at)).all()
        return [(team, last, upcoming) for team, last, upcoming in rows]

    def _claimed(self, rows: list[tuple[str, datetime | None, datetime | None]], now: float) -> set[str]:
        """The workspaces claimed now: a claim moves next_poll_at a lease past when the poll was due (its plan)."""
        claimed = set()
        with self._lock:
            for team, last, upcoming in rows:
                gaps = self._gaps.get(team)
                if last is None or upcoming is None or not gaps or _aware(upcoming).timestamp() <= now:
                    continue
                if (_aware(upcoming) - _aware(last)).total_seconds() > statistics.median(gaps) + LEASE * 0.5:
                    claimed.add(team)
        return claimed

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(10)
        self._engine.dispose()

    def note_kill(self, at: float) -> None:
        """A replica was killed at `at`: look for the claims it left 5 and 10 s later."""
        with self._lock:
            self._kill = at

    def held(self) -> set[str]:
        """The workspaces still leased both 3 and 8 s after the kill: the dead one's claims (polls take < 1 s)."""
        with self._lock:
            if len(self._leased) < 2:
                return set()
            return self._leased[0] & self._leased[1]

    def planned(self, team: str, fallback: float) -> float:
        """A workspace's planned interval: the median of its sampled next_poll_at − last_poll_at, else `fallback`."""
        with self._lock:
            gaps = self._gaps.get(team)
            return statistics.median(gaps) if gaps else fallback

    def _loop(self) -> None:
        """Sample until stopped (every second while the claims a kill left are looked for)."""
        while not self._stop.wait(SAMPLE_EVERY if self._kill is None or len(self._leased) >= 2 else 1.0):
            self._sample()

    def _sample(self) -> None:
        """One reading of the registry: the plans of the workspaces polled since the last, and after a kill, claims."""
        rows = self._read()
        now = time.time()
        with self._lock:
            for team, last, upcoming in rows:
                # Recorded within the last sampling period: a plan (a workspace is not due again so soon, so not
                # claimed again since; a claim moves next_poll_at a lease past the plan).
                if last is not None and upcoming is not None and now - _aware(last).timestamp() < SAMPLE_EVERY:
                    self._gaps[team].append((_aware(upcoming) - _aware(last)).total_seconds())
            looking = self._kill is not None and len(self._leased) < 2
            due = self._kill is not None and now >= self._kill + (3, 8)[min(len(self._leased), 1)]
        if looking and due:
            leased = self._claimed(rows, now)
            with self._lock:
                self._leased.append(leased)


def _aware(moment: datetime) -> datetime:
    """A datetime with its time zone (SQLite gives naive UTC ones)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the report -------------------------------------------------------------------------------------


def report(result: Result) -> dict[str, Any]:
    """Print one run's tables; the figures the growth series compares."""
    o = result.options
    late = [x for t in result.tasks if not result.kill_affected(t) and (x := result.lateness(t)) is not None]
    over_target = [x for x in late if x > SLACK_SECONDS]
    affected = [t for t in result.tasks if result.kill_affected(t)]
    affected_late = [x for t in affected if (x := result.lateness(t)) is not None]
    planned = sorted(result.planned.values())
    cpu = sum(u.cpu for u in result.usage)
    window = result.window
    database = "PostgreSQL" if o.database_url.startswith("postgres") else "SQLite"
    print(
        f"\n## {o.workspaces} workspaces, {o.replicas} replica(s), {database}"
        f"{', replica 1 SIGKILLed halfway' if o.kill else ''}\n\n"
        f"POLL_INTERVAL {o.poll_interval:g} s; budgets planned for {o.intervals[0]:g}–{o.intervals[1]:g} s; "
        f"planned intervals read from the registry: min {planned[0]:.1f} s, median {statistics.median(planned):.1f} s, "
        f"max {planned[-1]:.1f} s; warm-up (every workspace polled once) {result.warmup:.0f} s; "
        f"{len(result.tasks)} tasks over {window:.0f} s",
        flush=True,
    )
    print_table(
        "Announcements (lateness = created → card − the workspace's planned interval; target ≤ 5 s)",
        ["tasks", "announced", "late > 5 s", "lateness p50", "p99", "max", "duplicates", "leaks"],
        [
            [
                len(result.tasks),
                len(result.tasks) - len(result.missing),
                len(over_target),
                f"{percentile(late, 50):.1f} s",
                f"{percentile(late, 99):.1f} s",
                f"{max(late, default=math.nan):.1f} s",
                len(result.duplicates),
                len(result.leaks),
            ]
        ],
    )
    if o.kill and result.killed_at is not None:
        killed_at = result.killed_at
        near = [
            x
            for t in result.tasks
            if not result.kill_affected(t)
            and killed_at - max(planned) - SLACK_SECONDS <= t.created <= killed_at + SLACK_SECONDS
            and (x := result.lateness(t)) is not None
            and x > SLACK_SECONDS
        ]
        worst = f" (max {max(near):.1f} s)" if near else ""
        print(
            f"Other workspaces' tasks created within an interval before the kill, late: {len(near)}{worst}", flush=True
        )
        print_table(
            f"The kill: workspaces held by replica 1 when it died (leased 3 and 8 s later), allowance interval + "
            f"lease ({LEASE:g} s) + 5 s",
            [
                "held workspaces",
                "first card after the kill",
                "their tasks before recovery",
                "announced",
                "max lateness",
                "within allowance",
            ],
            [
                [
                    len(result.held),
                    "never" if (back := result.recovered()) is None else f"{back:.1f} s",
                    len(affected),
                    len(affected_late),
                    f"{max(affected_late, default=math.nan):.1f} s",
                    "yes"
                    if all(x <= LEASE + SLACK_SECONDS for x in affected_late) and len(affected_late) == len(affected)
                    else "no",
                ]
            ],
        )
    print_table(
        "Budget (LeadLex calls per workspace against the polling share of its daily limit over the run)",
        ["workspaces over", "highest share used", "429s"],
        [[len(result.budget_over), f"{result.budget_ratio:.0%}", result.limited]],
    )
    rows = [
        [
            u.number,
            f"{u.cpu:.1f}",
            f"{u.cpu / u.wall:.0%}",
            f"{u.rss_start:.0f}",
            f"{u.rss_end:.0f}",
            f"{u.rss_end / o.workspaces * 1024:.0f}",
            u.files,
            "killed" if u.killed else "",
        ]
        for u in result.usage
    ]
    print_table(
        f"Replicas (CPU over the {window:.0f}-s task window, the killed one until its death; RSS at its start and end)",
        [
            "replica",
            "CPU s",
            "CPU % of a core",
            "RSS start MiB",
            "RSS end MiB",
            "RSS KiB per workspace",
            "open files",
            "",
        ],
        rows,
    )
    cpu_rate = sum(u.cpu / u.wall for u in result.usage)
    per_ws = cpu_rate / o.workspaces * 60 * 1000
    print(
        f"All replicas: {cpu_rate:.0%} of a core, {per_ws:.1f} ms CPU per workspace per minute, "
        f"{result.polls / window:.1f} polls/s, {cpu / max(result.polls, 1) * 1000:.1f} ms CPU per poll "
        f"(all of the replicas' CPU, announcing included); RSS {sum(u.rss_end for u in result.usage):.0f} MiB in all",
        flush=True,
    )
    if result.missing:
        print(f"never announced: {', '.join(t.id for t in result.missing[:10])}", flush=True)
    if result.errors:
        print(f"the replicas logged {len(result.errors)} error line(s), e.g.: {result.errors[0][:300]}", flush=True)
    return {
        "workspaces": o.workspaces,
        "rss": statistics.mean(u.rss_end for u in result.usage if not u.killed),
        "cpu": cpu_rate,
        "per_ws": per_ws,
        "polls": result.polls / window,
        "late_p99": percentile(late, 99),
        "late_max": max(late, default=math.nan),
        "bad": len(result.missing) + len(result.duplicates) + len(result.leaks) + len(over_target),
    }


def growth(rows: Sequence[dict[str, Any]]) -> None:
    """Print how CPU and memory grow with the number of workspaces."""
    rows = sorted(rows, key=lambda r: int(r["workspaces"]))
    base = rows[0]
    print_table(
        "Growth",
        [
            "workspaces",
            "RSS per replica MiB",
            "KiB per added workspace",
            "CPU % (all replicas)",
            "ms CPU / workspace / min",
            "polls/s",
            "lateness p99",
            "max",
            "misses",
        ],
        [
            [
                r["workspaces"],
                f"{r['rss']:.0f}",
                "—" if r is base else f"{(r['rss'] - base['rss']) * 1024 / (r['workspaces'] - base['workspaces']):.0f}",
                f"{r['cpu']:.0%}",
                f"{r['per_ws']:.1f}",
                f"{r['polls']:.1f}",
                f"{r['late_p99']:.1f} s",
                f"{r['late_max']:.1f} s",
                r["bad"],
            ]
            for r in rows
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, run each size, and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workspaces", type=int, default=1000, help="installed, connected workspaces (default 1000)")
    parser.add_argument("--sizes", help="a growth series instead, e.g. 10,100,1000 (one run each)")
    parser.add_argument("--replicas", type=int, default=3, help="lexi-bot run processes (default 3; SQLite: 1)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL", ""),
        help="PostgreSQL URL (default TEST_DATABASE_URL; empty: SQLite)",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes over which tasks arrive (default 5)")
    parser.add_argument("--kill", action="store_true", help="SIGKILL replica 1 halfway (--sizes: in the largest run)")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="POLL_INTERVAL (default 30)")
    parser.add_argument(
        "--intervals", default="30,60", help="the budgets' planned intervals, min,max s (default 30,60)"
    )
    parser.add_argument("--tasks-per-workspace", type=int, default=1, help="new tasks per workspace (default 1)")
    parser.add_argument("--lexi-latency", type=float, default=0.2, help="seconds each LeadLex answer takes (0.2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))  # stop the replicas, drop the database
    low, high = (float(x) for x in args.intervals.split(","))
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [args.workspaces]
    print(f"machine: {machine()}", flush=True)
    rows = []
    for size in sizes:
        options = Options(
            workspaces=size,
            replicas=args.replicas,
            database_url=args.database_url,
            minutes=args.minutes,
            kill=args.kill and size == max(sizes),
            poll_interval=args.poll_interval,
            intervals=(low, high),
            tasks_per_workspace=args.tasks_per_workspace,
            lexi_latency=args.lexi_latency,
            seed=args.seed,
        )
        rows.append(report(run(options)))
    if len(rows) > 1:
        growth(rows)


if __name__ == "__main__":
    main()
