"""Benchmark 3: LeadLex calls the bot spends in one simulated day on each plan, against a fixed 60 s poller.

One simulated clock drives the sandbox (its daily and per-minute limits), the LexiClient (its pacing sleeps
advance the clock) and the poller: the loop runs `Poller.cycle()` and advances the clock by the delay it
returns, interleaved with scheduled events, until 86,400 s have passed. POLL_INTERVAL is the default 60 s;
the budget policy (20 % reserve for decisions) stretches it. Scenarios: idle, and 50 tasks a day at seeded
random times — people approve 70 %, dismiss 20 % and ignore 10 % of them 1–60 min after the announcement,
and approved tasks complete (or fail) 5–60 min later — each with webhooks off and on (on: each task is
announced by applying its `task.created` delivery at once; the poller only reconciles and follows approved
tasks to completion). Slack is the loopback stand-in with pacing off (Slack's clock is not simulated).
"""

from __future__ import annotations

import heapq
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import CHANNEL, parse_args, percentile, print_table, pyplot, save_chart
from bot.core.announcer import Announcer
from bot.core.budget import BudgetPolicy
from bot.core.decisions import Decider
from bot.core.poller import Poller
from bot.core.webhooks import WebhookReceiver
from bot.db import migrate
from bot.db.store import Store, utcnow
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_webhooks import iso
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.client import LexiClient
from bot.lexi.models import Task
from bot.slack.messenger import Messenger, make_web_client

DAY = 86_400.0
START = float(1_800_000_000 // 86_400 * 86_400)  # a midnight UTC, so the day matches LeadLex's daily reset
POLL_INTERVAL = 60.0
PLANS = {"Starter": (100, 10), "Pro": (1_000, 50), "Org": (10_000, 200)}


class SimClock:
    """A shared simulated clock: callable for the time, `sleep` advances it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        """The simulated Unix time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Let simulated time pass."""
        self.now += max(seconds, 0.0)


@dataclass(frozen=True)
class Plan:
    """What happens to one task: arrival (s into the day), reaction delay, action, completion delay, outcome."""

    arrive: float
    reaction: float
    action: str
    complete_after: float
    ok: bool


def schedule(tasks: int, seed: int = 3) -> list[Plan]:
    """The day's tasks, at seeded random times."""
    rng = random.Random(seed)
    plans = [
        Plan(
            rng.uniform(0, DAY),
            rng.uniform(60, 3600),
            rng.choices(["approve", "dismiss", "ignore"], [70, 20, 10])[0],
            rng.uniform(300, 3600),
            rng.random() > 0.1,
        )
        for _ in range(tasks)
    ]
    return sorted(plans, key=lambda p: p.arrive)


@dataclass
class DayResult:
    """LeadLex calls of one simulated day, by kind, with 429s and delays (simulated seconds)."""

    plan: str
    load: str
    mode: str
    cycles: int = 0
    polling: int = 0
    deciding: int = 0
    polling_429: int = 0
    deciding_429: int = 0
    decided: int = 0
    refused: int = 0
    announce_delays: list[float] = field(default_factory=list)
    completion_delays: list[float] = field(default_factory=list)


class _Day:
    """One simulated day of the real poller, client, store, announcer and decider against one sandbox."""

    def __init__(self, plan: str, tasks: int, *, webhooks: bool, workdir: Path) -> None:
        daily, minute = PLANS[plan]
        self.clock = SimClock(START)
        self.sandbox = Sandbox(seed=False, daily_limit=daily, minute_limit=minute, clock=self.clock).start()
        self.slack = SlackStandIn().start()
        self.store = Store.from_url(f"sqlite:///{workdir / f'{plan}-{tasks}-{webhooks}.db'}")
        migrate.upgrade(self.store.engine)
        self.lexi = LexiClient(self.sandbox.url, self.sandbox.api_key, clock=self.clock, sleep=self.clock.sleep)
        messenger = Messenger(make_web_client("xoxb-test-token", self.slack.api_url), self.store, post_interval=0.0)
        self.announcer = Announcer(self.store, messenger, CHANNEL)
        self.decider = Decider(self.store, self.lexi, messenger)
        self.poller = Poller(
            self.store,
            self.lexi,
            messenger,
            self.announcer,
            self.decider,
            interval=POLL_INTERVAL,
            policy=BudgetPolicy(),
            webhooks=webhooks,
            clock=self.clock,
        )
        self.receiver = (
            WebhookReceiver(
                "whsec_" + "b" * 40,
                self.store,
                self.announcer,
                messenger,
                submit=lambda fn, *a, **k: fn(*a, **k),
                clock=utcnow,
            )
            if webhooks
            else None
        )
        self.result = DayResult(plan, f"{tasks} tasks/day" if tasks else "idle", "on" if webhooks else "off")
        self.events: list[tuple[float, int, str, str, Plan | None]] = []
        self.unannounced: dict[str, tuple[float, Plan]] = {}
        self.running: dict[str, float] = {}  # completed in LeadLex, not yet seen by the bot
        self._seq = 0
        for item in schedule(tasks):
            self._at(START + item.arrive, "arrive", "", item)

    def close(self) -> None:
        """Release everything."""
        self.lexi.close()
        self.store.close()
        self.sandbox.stop()
        self.slack.stop()

    def _at(self, when: float, kind: str, task_id: str, item: Plan | None) -> None:
        """Schedule an event."""
        self._seq += 1
        heapq.heappush(self.events, (when, self._seq, kind, task_id, item))

    def _counted(self, action: Callable[[], object], kind: str) -> object:
        """Run an action and attribute the LeadLex calls (and 429s) it made to `kind`."""
        before = len(self.sandbox.calls)
        value = action()
        made = self.sandbox.calls[before:]
        limited = sum(1 for c in made if c.status == 429)
        if kind == "polling":
            self.result.polling += len(made)
            self.result.polling_429 += limited
        else:
            self.result.deciding += len(made)
            self.result.deciding_429 += limited
        return value

    def run(self) -> DayResult:
        """Advance through the day: poll cycles at the delays the poller asks for, and the scheduled events."""
        end, next_poll = START + DAY, START
        while True:
            next_event = self.events[0][0] if self.events else float("inf")
            when = min(next_poll, next_event)
            if when >= end:
                break
            self.clock.now = max(self.clock.now, when)
            if next_event <= next_poll:
                _, _, kind, task_id, item = heapq.heappop(self.events)
                self._handle(kind, task_id, item)
            else:
                delay = float(self._counted(self.poller.cycle, "polling"))  # type: ignore[arg-type]
                self.result.cycles += 1
                next_poll = self.clock.now + delay
            self._observe()
        return self.result

    def _handle(self, kind: str, task_id: str, item: Plan | None) -> None:
        """Apply one event: a task arrives, a person decides, LeadLex finishes a task."""
        assert item is not None
        if kind == "arrive":
            task = self.sandbox.add_task(created_at=iso(self.clock.now))
            self.unannounced[task["id"]] = (self.clock.now, item)
            if self.receiver is not None:
                parsed = Task.from_api(task)
                assert parsed is not None
                self.receiver.apply("task.created", parsed)
        elif kind == "decide":
            outcome = self._counted(
                lambda: self.decider.decide(
                    task_id,
                    action=item.action,
                    user="UALICE",
                    surface="button",
                    tell=lambda _text: None,
                    reason="not_relevant" if item.action == "dismiss" else None,
                ),
                "deciding",
            )
            if getattr(outcome, "decided", False):
                self.result.decided += 1
                if item.action == "approve":
                    self._at(self.clock.now + item.complete_after, "complete", task_id, item)
            else:
                self.result.refused += 1
        elif kind == "complete":
            self.sandbox.complete(task_id, ok=item.ok)
            self.running[task_id] = self.clock.now

    def _observe(self) -> None:
        """Note when the bot announced a task (and schedule its decision) and when it saw a task finish."""
        for task_id, (arrived, item) in list(self.unannounced.items()):
            row = self.store.get(task_id)
            if row is not None and row.message_ts is not None:
                del self.unannounced[task_id]
                self.result.announce_delays.append(self.clock.now - arrived)
                if item.action != "ignore":
                    self._at(self.clock.now + item.reaction, "decide", task_id, item)
        for task_id, finished in list(self.running.items()):
            row = self.store.get(task_id)
            if row is not None and row.state in ("completed", "failed"):
                del self.running[task_id]
                self.result.completion_delays.append(self.clock.now - finished)


def simulate(plan: str, tasks: int, *, webhooks: bool) -> DayResult:
    """Run one simulated day of the bot."""
    workdir = Path(tempfile.mkdtemp(prefix="lexi-day-"))
    day = _Day(plan, tasks, webhooks=webhooks, workdir=workdir)
    try:
        return day.run()
    finally:
        day.close()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class FixedResult:
    """A naive poller's day: one pending list every 60 s, and the same people deciding."""

    plan: str
    load: str
    sent: int
    limited: int
    first_429: float | None
    decisions: int
    decisions_limited: int


def fixed_poller(plan: str, tasks: int) -> FixedResult:
    """A fixed 60-second poller (1,440 calls a day) and the same decisions, against the plan's limits."""
    daily, minute = PLANS[plan]
    clock = SimClock(START)
    events = sorted(
        [(START + i * POLL_INTERVAL, "poll") for i in range(int(DAY // POLL_INTERVAL))]
        + [
            (START + (p.arrive // POLL_INTERVAL + 1) * POLL_INTERVAL + p.reaction, "decide")
            for p in schedule(tasks)
            if p.action != "ignore"
        ]
    )
    statuses: list[tuple[str, int, float]] = []
    with (
        Sandbox(seed=False, daily_limit=daily, minute_limit=minute, clock=clock) as sandbox,
        httpx.Client(
            base_url=sandbox.url, headers={"Authorization": f"Bearer {sandbox.api_key}"}, trust_env=False
        ) as client,
    ):
        for when, kind in events:
            if when >= START + DAY:
                continue
            clock.now = when
            if kind == "poll":
                status = client.get("/v1/lexi/tasks", params={"status": "pending"}).status_code
            else:  # what a decision's call meets: the task itself does not matter for the budget
                task_id = sandbox.add_task()["id"]
                status = client.post(f"/v1/lexi/tasks/{task_id}/approve").status_code
            statuses.append((kind, status, when))
    limited = [s for s in statuses if s[1] == 429]
    return FixedResult(
        plan,
        f"{tasks} tasks/day" if tasks else "idle",
        sum(1 for s in statuses if s[0] == "poll"),
        sum(1 for s in limited if s[0] == "poll"),
        min((s[2] for s in limited), default=None),
        sum(1 for s in statuses if s[0] == "decide"),
        sum(1 for s in limited if s[0] == "decide"),
    )


def _clock_time(moment: float | None) -> str:
    """Simulated Unix seconds as the day's HH:MM."""
    if moment is None:
        return "never"
    seconds = int(moment - START)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _minutes(values: list[float]) -> str:
    """Median and max of simulated delays, in minutes."""
    if not values:
        return "—"
    return f"{percentile(values, 50) / 60:.1f} / {max(values) / 60:.1f}"


def _chart(days: Sequence[DayResult], fixed: Sequence[FixedResult], path: str) -> None:
    """Per plan: calls a day by scenario (polling and decisions stacked), the fixed poller, and the limits."""
    plt = pyplot()
    if plt is None:
        return
    plans = [plan for plan in PLANS if any(d.plan == plan for d in days)]
    fig, axes = plt.subplots(1, len(plans), figsize=(4 * len(plans), 4.8), squeeze=False)
    axes = axes[0]
    for ax, plan in zip(axes, plans):
        mine = [d for d in days if d.plan == plan]
        naive = next(f for f in fixed if f.plan == plan and f.load == "idle")
        labels = [f"{'idle' if d.load == 'idle' else '50/day'}\nwh {d.mode}" for d in mine] + ["fixed\n60 s"]
        polling = [d.polling for d in mine] + [naive.sent - naive.limited]
        deciding = [d.deciding for d in mine] + [0]
        refused = [d.polling_429 + d.deciding_429 for d in mine] + [naive.limited]
        ax.bar(labels, polling, label="polling calls")
        ax.bar(labels, deciding, bottom=polling, label="decision calls")
        ax.bar(
            labels,
            refused,
            bottom=[p + d for p, d in zip(polling, deciding)],
            color="red",
            hatch="//",
            alpha=0.5,
            label="answered 429",
        )
        for x, total in enumerate(p + d + r for p, d, r in zip(polling, deciding, refused)):
            ax.text(x, total * 1.08, f"{total:,}", ha="center", fontsize=8)
        limit = PLANS[plan][0]
        ax.axhline(limit, color="red", linestyle="--", linewidth=1, label="daily limit")
        ax.axhline(limit / 2, color="orange", linestyle=":", linewidth=1, label="50 % of the limit")
        ax.set_yscale("log")
        ax.set_ylim(10, max(limit, naive.sent) * 3)
        ax.set_title(f"{plan} ({limit:,}/day, {PLANS[plan][1]}/min)")
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_ylabel("LeadLex calls in one simulated day (log)")
    axes[-1].legend(loc="upper left", fontsize=7)
    save_chart(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Simulate every plan and scenario, print the tables, and optionally chart them."""
    args = parse_args(__doc__ or "", argv)
    plans = ["Starter"] if args.quick else list(PLANS)
    loads = [0, 50]
    days = [simulate(plan, load, webhooks=webhooks) for plan in plans for load in loads for webhooks in (False, True)]
    fixed = [fixed_poller(plan, load) for plan in plans for load in loads]
    rows = [
        [
            d.plan,
            d.load,
            d.mode,
            d.cycles,
            d.polling,
            d.deciding,
            d.polling + d.deciding,
            f"{100 * d.polling / PLANS[d.plan][0]:.0f} %",
            d.polling_429 + d.deciding_429,
            f"{d.decided}/{d.decided + d.refused}",
            _minutes(d.announce_delays),
            _minutes(d.completion_delays),
        ]
        for d in days
    ]
    print_table(
        f"The bot in one simulated day (POLL_INTERVAL={POLL_INTERVAL:g} s, 20 % reserve)",
        [
            "plan",
            "load",
            "webhooks",
            "cycles",
            "polling calls",
            "decision calls",
            "total",
            "polling / daily limit",
            "429s",
            "decisions done",
            "announced after (min, p50 / max)",
            "completion seen after (min, p50 / max)",
        ],
        rows,
    )
    print_table(
        "A fixed 60-second poller (one pending list a minute) and the same decisions",
        [
            "plan",
            "load",
            "poll calls",
            "429s",
            "first 429 at",
            "decisions",
            "decisions refused (429)",
            "attempted / daily limit",
        ],
        [
            [
                f.plan,
                f.load,
                f.sent,
                f.limited,
                _clock_time(f.first_429),
                f.decisions,
                f.decisions_limited,
                f"{100 * (f.sent + f.decisions) / PLANS[f.plan][0]:.0f} %",
            ]
            for f in fixed
        ],
    )
    no_429 = all(d.polling_429 + d.deciding_429 == 0 for d in days)
    share = all(d.polling <= PLANS[d.plan][0] / 2 for d in days)
    idle_hooks = [d.polling + d.deciding for d in days if d.load == "idle" and d.mode == "on"]
    print(
        f"targets: zero 429s → {'met' if no_429 else 'MISSED'}; polling ≤ 50 % of the daily limit → "
        f"{'met' if share else 'MISSED'}; webhooks on and idle ≤ 24 calls/day → "
        f"{'met' if all(n <= 24 for n in idle_hooks) else 'MISSED'} ({', '.join(map(str, idle_hooks))})"
    )
    if args.chart:
        _chart(days, fixed, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
