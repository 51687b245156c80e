"""Side by side: lexi-bot against the simplest Bolt bot (bench/minimal_bot.py) on the same loopback harness.

200 signed Approve clicks, 20 in flight, LeadLex (the sandbox) taking 5 s per approval. For each bot: the ack
(the HTTP answer time of /slack/events, the sender's clock) and click → LeadLex approve call (the sandbox's
receive time of the approve call minus the send time of the click; one clock, one process). lexi-bot is measured
twice: alone, and while 100 new tasks are being announced through webhooks (Slack's pacing: one post a second).
The minimal bot announces nothing, so its one measurement is the reference for both. Each batch runs ROUNDS
times on fresh, already announced tasks; tables give medians over rounds and the ratio lexi / minimal.

The floor: the minimal bot plus the one write the issue requires before the ack (`minimal_bot.py --record`), on
SQLite and (with --postgres) PostgreSQL. It does nothing else lexi-bot does (no replay key, no permission check, no
card): it is what obeying that rule costs by itself, written the way a newcomer would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, text

from bench.common import (
    CHANNEL,
    SIGNING_SECRET,
    UNLIMITED,
    _free_port,
    _wait_http,
    fresh_database,
    ms,
    parse_args,
    percentile,
    positive,
    print_table,
    pyplot,
    running_bot,
    save_chart,
    wait_until,
)
from bot.dev.sandbox import Reply, Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks

#: Seconds LeadLex takes to answer an approval.
APPROVE_DELAY = 5.0
CONCURRENCY = 20
CORES = os.cpu_count() or 1
CLICKS = 200
NEW_TASKS = 100
ROUNDS = 3
#: The minimal bot plus the one durable write before the ack that the issue requires (bench/minimal_bot.py --record).
FLOOR = "minimal + durable write"


class TimedSandbox(Sandbox):
    """The sandbox, slow on approvals only, noting when each approve call arrived (before it waits)."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.approve_delay = APPROVE_DELAY
        self.received: dict[str, list[float]] = {}
        self._received_lock = threading.Lock()

    def _respond(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Note an approve call's arrival, wait `approve_delay`, then answer as the sandbox does."""
        if method == "POST" and target.rstrip("/").endswith("/approve"):
            arrived = time.time()
            task_id = target.rstrip("/").split("/")[-2]
            with self._received_lock:
                self.received.setdefault(task_id, []).append(arrived)
            self._stopping.wait(self.approve_delay)
        return super()._respond(method, target, headers, body)


@dataclass
class Batch:
    """One round of clicks on one bot: ack times, click → approve-call times, statuses, duplicates."""

    label: str
    acks: list[float] = field(default_factory=list)
    to_call: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    missing: int = 0
    duplicates: int = 0
    cpu: float = 0.0  # CPU seconds the bot's process spent on the round, until every decision settled
    #: CPU seconds the bot spent until every approve call had arrived (LeadLex has answered none yet): the work the
    #: clicks in flight compete for, two cores shared with the database, the stand-ins and the client.
    cpu_to_calls: float = 0.0
    #: While the client was sending (first click to last answer): its seconds, and the CPU seconds the whole machine
    #: was busy (the bot, the database, the stand-ins, the client). Busy near all cores all along, the clicks in flight
    #: queue for CPU, and the ack follows the machine's CPU per click.
    sending: float = 0.0
    machine_busy: float = 0.0


def analyzed(engine: Engine) -> None:
    """Give PostgreSQL's planner statistics of the tables as they are now (ANALYZE); nothing on SQLite.

    A production server's autovacuum analyzes a table once a tenth of it has changed. This machine's server runs
    without autovacuum, and a table never analyzed leaves the planner guessing: it looked a task up by its primary
    key through another index on the workspace, reading every task of the workspace (500 rows a lookup at 600 tasks).
    The README's Troubleshooting says what to do on such a server; the benchmark measures a server as deployed.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _click(task_id: str, slack: SlackStandIn, ts: str | None) -> tuple[bytes, str]:
    """A signed-when-sent Approve click on a task's card."""
    payload = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION,
        value=task_id,
        user="UALICE",
        channel=CHANNEL,
        message_ts=ts,
        trigger_id=slack.new_trigger_id("UALICE"),
        response_url=slack.new_response_url(),
    )
    return payloads.encode_interactive(payload)


def fire(
    url: str, sandbox: TimedSandbox, slack: SlackStandIn, task_ids: list[str], *, cards: dict[str, str], label: str
) -> Batch:
    """Send one Approve click per task, CONCURRENCY at a time; wait (bounded) for every approve call.

    The clicks go from a client process of its own (bench/clicker.py), not this one's stand-ins' interpreter.
    """
    batch = Batch(label)
    clicks = []
    for task_id in task_ids:
        body, content_type = _click(task_id, slack, cards.get(task_id))
        clicks.append([task_id, body.decode("utf-8"), content_type])
    job = {"url": url, "secret": SIGNING_SECRET, "concurrency": CONCURRENCY, "clicks": clicks}
    done = subprocess.run(
        [sys.executable, "-m", "bench.clicker"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the clicking client failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    answers = report["answers"]
    batch.sending, batch.machine_busy = report["seconds"], report["machine_busy"]
    sent = {task_id: at for task_id, at, _seconds, _status in answers}
    batch.acks = [seconds for _task_id, _at, seconds, _status in answers]
    batch.statuses = Counter(status for _task_id, _at, _seconds, status in answers)
    wait_until(lambda: all(t in sandbox.received for t in task_ids), 120, interval=0.1)
    for task_id in task_ids:
        arrivals = sandbox.received.get(task_id, [])
        if not arrivals:
            batch.missing += 1
            continue
        batch.duplicates += len(arrivals) - 1
        batch.to_call.append(arrivals[0] - sent[task_id])
    return batch


def _cards(slack: SlackStandIn) -> dict[str, str]:
    """The ts of each task's card."""
    return {
        m.metadata["event_payload"]["task_id"]: m.ts
        for m in slack.messages(CHANNEL)
        if m.thread_ts is None and m.metadata
    }


def _posted_more(slack: SlackStandIn, than: int) -> bool:
    """Whether the channel holds more than `than` cards."""
    return len(_cards(slack)) > than


def run_lexi(count: int, rounds: int, *, webhooks: bool, new_tasks: int, postgres: str | None = None) -> list[Batch]:
    """lexi-bot in its own process on SQLite (or a fresh PostgreSQL database), announcing at 1 post/s.

    With webhooks, `new_tasks` arrive before each round and are announced while the clicks come.
    """
    with lexi_contender(count, rounds, webhooks=webhooks, new_tasks=new_tasks, postgres=postgres) as play:
        return [play() for _ in range(rounds)]


@contextlib.contextmanager
def lexi_contender(
    count: int, rounds: int, *, webhooks: bool, new_tasks: int, postgres: str | None = None, analyze: bool = True
) -> Iterator[Callable[[], Batch]]:
    """lexi-bot running, ready for `rounds` rounds of `count` clicks: yields what plays the next round.

    `analyze`: on PostgreSQL, ANALYZE the database once its tasks are announced, as autovacuum would have by then
    (see `analyzed`).
    """
    label = f"lexi-bot, {new_tasks} tasks being announced" if webhooks else "lexi-bot"
    if postgres is not None:
        label += " (PostgreSQL)"
    with (
        fresh_database(postgres) as database_url,
        running_bot(
            database_url=database_url,
            post_interval=1.0,
            poll_interval=60,
            webhooks=webhooks,
            announced=count * rounds,
            sandbox_class=TimedSandbox,
        ) as stack,
    ):
        sandbox = stack.sandbox
        assert isinstance(sandbox, TimedSandbox)
        if analyze:
            analyzed(stack.store.engine)
        cards = _cards(stack.slack)
        played = 0

        def play() -> Batch:
            nonlocal played
            round_, played = played, played + 1
            posted = len(_cards(stack.slack))
            if webhooks:
                for _ in range(new_tasks):
                    sandbox.add_task()
                wait_until(partial(_posted_more, stack.slack, posted), 30)  # the announcing has begun
            task_ids = stack.announced[round_ * count : (round_ + 1) * count]
            cpu = cpu_seconds(stack.process.pid)
            batch = fire(stack.url, sandbox, stack.slack, task_ids, cards=cards, label=label)
            batch.cpu_to_calls = cpu_seconds(stack.process.pid) - cpu
            wait_until(lambda: stack.store.count_in_state("deciding") == 0, 300, interval=0.2)
            batch.cpu = cpu_seconds(stack.process.pid) - cpu
            if webhooks:  # let the announcing finish before the next round's tasks arrive
                wait_until(partial(_posted_more, stack.slack, posted + new_tasks - 1), 300, interval=0.5)
            return batch

        yield play


def run_minimal(
    count: int, rounds: int, executor_threads: int | None = None, *, record: str | None = None, label: str = ""
) -> list[Batch]:
    """The minimal Bolt bot in its own process; its clicks need no cards.

    `record`: "sqlite" (a file of its own) or a PostgreSQL URL (a fresh database): the floor, which writes each
    click durably before the ack (bench/minimal_bot.py --record).
    """
    with minimal_contender(count, executor_threads, record=record, label=label) as play:
        return [play() for _ in range(rounds)]


@contextlib.contextmanager
def minimal_contender(
    count: int,
    executor_threads: int | None = None,
    *,
    record: str | None = None,
    label: str = "",
    driver_sql: bool = False,
) -> Iterator[Callable[[], Batch]]:
    """The minimal Bolt bot (or the floor, with `record`) running: yields what plays its next round of `count`.

    `driver_sql`: the floor writes with `exec_driver_sql` (minimal_bot.py --driver-sql), SQLAlchemy's leanest call.
    """
    port = _free_port()
    command = [sys.executable, "-m", "bench.minimal_bot", "--port", str(port)]
    if driver_sql:
        command.append("--driver-sql")
    label = label or "minimal Bolt bot"
    if executor_threads is not None:
        command += ["--executor-threads", str(executor_threads)]
        label += f" ({executor_threads} executor threads)"
    with contextlib.ExitStack() as resources:
        if record == "sqlite":
            folder = resources.enter_context(tempfile.TemporaryDirectory(prefix="lexi-floor-"))
            command += ["--record", f"sqlite:///{folder}/floor.db"]
        elif record is not None:
            command += ["--record", resources.enter_context(fresh_database(record)) or ""]
        sandbox = TimedSandbox(seed=False, **UNLIMITED).start()
        resources.callback(sandbox.stop)
        slack = SlackStandIn().start()
        resources.callback(slack.stop)
        env = {
            **os.environ,
            "LEXI_API_URL": sandbox.url,
            "LEXI_API_KEY": sandbox.api_key,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "SLACK_BOT_TOKEN": "xoxb-test-token",
        }
        log = resources.enter_context(tempfile.TemporaryFile())
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=Path(__file__).resolve().parent.parent
        )
        resources.callback(process.wait, timeout=20)
        resources.callback(process.terminate)
        if not _wait_http(f"http://127.0.0.1:{port}/healthz", process, 60):
            log.seek(0)
            raise RuntimeError(f"the minimal bot did not start: {log.read()[-2000:].decode(errors='replace')}")

        def play() -> Batch:
            task_ids = [sandbox.add_task()["id"] for _ in range(count)]
            cpu = cpu_seconds(process.pid)
            batch = fire(f"http://127.0.0.1:{port}", sandbox, slack, task_ids, cards={}, label=label)
            batch.cpu_to_calls = cpu_seconds(process.pid) - cpu
            wait_until(lambda: not sandbox.tasks("pending"), 120, interval=0.2)
            batch.cpu = cpu_seconds(process.pid) - cpu
            return batch

        yield play


def run_interleaved(
    contenders: Sequence[contextlib.AbstractContextManager[Callable[[], Batch]]], rounds: int
) -> dict[str, list[Batch]]:
    """Every contender running at once, their rounds taken in turn (the order rotating each round).

    Run one after another, each bot meets a different stretch of the host's noise: on a shared 2-core VM a
    p99 moves by 2× between consecutive runs. Taken in turn, round r of every bot falls within the same few
    seconds, so `round_ratios` can compare each round with its neighbour's.
    """
    groups: dict[str, list[Batch]] = {}
    with contextlib.ExitStack() as running:
        plays = [running.enter_context(contender) for contender in contenders]
        for round_ in range(rounds):
            shift = round_ % len(plays)
            for play in plays[shift:] + plays[:shift]:
                batch = play()
                groups.setdefault(batch.label, []).append(batch)
    return groups


def round_ratios(groups: dict[str, list[Batch]], reference: str) -> list[list[object]]:
    """Per bot: the median over rounds of each round's ratio to the reference's round of the same turn.

    With the rounds interleaved (run_interleaved) this is the ratio least moved by the host's noise; the spread
    (lowest and highest round) says how much it still moves.
    """
    out: list[list[object]] = []
    ref = groups[reference]
    for label, batches in groups.items():
        if label == reference:
            continue
        ack = [percentile(b.acks, 99) / percentile(r.acks, 99) for b, r in zip(batches, ref, strict=False)]
        call = [percentile(b.to_call, 50) / percentile(r.to_call, 50) for b, r in zip(batches, ref, strict=False)]
        out.append(
            [
                label,
                len(ack),
                f"{statistics.median(ack):.2f}× ({min(ack):.2f}–{max(ack):.2f})",
                f"{statistics.median(call):.2f}× ({min(call):.2f}–{max(call):.2f})",
            ]
        )
    return out


def _median(batches: Sequence[Batch], values: str, q: float) -> float:
    """The median over rounds of one percentile of one measure."""
    return statistics.median(percentile(getattr(b, values), q) for b in batches)


def rows(groups: dict[str, list[Batch]], reference: str) -> list[list[object]]:
    """One row per bot (and load): medians over rounds, with ratios to the reference bot."""
    ref = groups[reference]
    out: list[list[object]] = []
    for label, batches in groups.items():
        ack99, call50, call99 = (
            _median(batches, "acks", 99),
            _median(batches, "to_call", 50),
            _median(batches, "to_call", 99),
        )
        statuses: Counter[int] = sum((b.statuses for b in batches), Counter())
        out.append(
            [
                label,
                len(batches),
                ms(_median(batches, "acks", 50)),
                ms(ack99),
                f"{ack99 / _median(ref, 'acks', 99):.2f}×",
                ms(call50),
                f"{call50 / _median(ref, 'to_call', 50):.2f}×",
                ms(call99),
                ms(max(max(b.to_call, default=float("nan")) for b in batches)),
                sum(b.missing for b in batches),
                sum(b.duplicates for b in batches),
                ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())),
                ms(statistics.median(b.cpu / max(len(b.acks), 1) for b in batches)),
                ms(statistics.median(b.cpu_to_calls / max(len(b.acks), 1) for b in batches)),
                ms(statistics.median(b.machine_busy / max(len(b.acks), 1) for b in batches)),
                _busy(batches),
            ]
        )
    return out


def _busy(batches: Sequence[Batch]) -> str:
    """How busy the machine's cores were while the client sent, median over rounds ("—" when not reported)."""
    shares = [b.machine_busy / b.sending / CORES for b in batches if b.sending > 0]
    return f"{statistics.median(shares):.0%}" if shares else "—"


def _chart(groups: dict[str, list[Batch]], path: str) -> None:
    """CDFs of ack and click → call for every bot, log scale."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, values, title in ((axes[0], "acks", "ack (HTTP answer)"), (axes[1], "to_call", "click → approve call")):
        for label, batches in groups.items():
            ordered = sorted(v for b in batches for v in getattr(b, values))
            ax.plot(
                [v * 1000 for v in ordered], [100 * (i + 1) / len(ordered) for i in range(len(ordered))], label=label
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"{title} (ms, log scale)")
        ax.set_ylabel("percent of clicks")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{CLICKS} Approve clicks, {CONCURRENCY} in flight, LeadLex {APPROVE_DELAY:g} s per approval")
    save_chart(fig, path)


HEADERS = [
    "bot",
    "rounds",
    "ack p50",
    "ack p99",
    "ack p99 ratio",
    "click→call p50",
    "p50 ratio",
    "click→call p99",
    "click→call max",
    "calls missing",
    "duplicate calls",
    "HTTP status",
    "bot CPU per click",
    "of it until the calls",
    "machine CPU per click while sending",
    "cores busy while sending",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both bots, print the side-by-side table, optionally chart it."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--postgres", metavar="URL", help="also measure lexi-bot on a fresh database of this server")
    extra.add_argument(
        "--interleave",
        metavar="ROUNDS",
        type=positive(int),
        help="run the bots at once and take their rounds in turn, ROUNDS each (no announcing load); "
        "adds each bot's per-round ratio to the minimal bot",
    )
    known, rest = extra.parse_known_args(argv)
    args = parse_args(__doc__ or "", rest)
    count = 40 if args.quick else CLICKS
    if known.interleave:
        return _main_interleaved(count, known.interleave, known.postgres, args.chart)
    rounds = 1 if args.quick else ROUNDS
    new_tasks = 20 if args.quick else NEW_TASKS
    groups: dict[str, list[Batch]] = {}
    for batches in (
        run_minimal(count, rounds),
        run_minimal(count, rounds, record="sqlite", label=FLOOR + " (SQLite)"),
        run_lexi(count, rounds, webhooks=False, new_tasks=0),
        run_lexi(count, rounds, webhooks=True, new_tasks=new_tasks),
        *(
            [
                run_minimal(count, rounds, record=known.postgres, label=FLOOR + " (PostgreSQL)"),
                run_lexi(count, rounds, webhooks=False, new_tasks=0, postgres=known.postgres),
                run_lexi(count, rounds, webhooks=True, new_tasks=new_tasks, postgres=known.postgres),
            ]
            if known.postgres
            else []
        ),
    ):
        groups[batches[0].label] = batches
    if not args.quick:
        default = run_minimal(count, 1, executor_threads=5)  # Bolt's default pool, for the record
        groups[default[0].label] = default
    print_table(
        f"Side by side: {count} Approve clicks, {CONCURRENCY} in flight, LeadLex {APPROVE_DELAY:g} s per approval "
        f"(medians over rounds; ratios to the minimal bot)",
        HEADERS,
        rows(groups, "minimal Bolt bot"),
    )
    if args.chart:
        _chart(groups, args.chart)
    return 0


def _main_interleaved(count: int, rounds: int, postgres: str | None, chart: str | None) -> int:
    """`--interleave`: every bot up at once, rounds in turn; the usual table, then the per-round ratios."""
    contenders: list[contextlib.AbstractContextManager[Callable[[], Batch]]] = [
        minimal_contender(count),
        minimal_contender(count, record="sqlite", label=FLOOR + " (SQLite)"),
        lexi_contender(count, rounds, webhooks=False, new_tasks=0),
    ]
    if postgres:
        contenders += [
            minimal_contender(count, record=postgres, label=FLOOR + " (PostgreSQL)"),
            minimal_contender(count, record=postgres, label=FLOOR + ", driver SQL (PostgreSQL)", driver_sql=True),
            lexi_contender(count, rounds, webhooks=False, new_tasks=0, postgres=postgres),
        ]
    groups = run_interleaved(contenders, rounds)
    title = f"{count} Approve clicks, {CONCURRENCY} in flight, LeadLex {APPROVE_DELAY:g} s per approval"
    print_table(f"Interleaved side by side: {title} (medians over rounds)", HEADERS, rows(groups, "minimal Bolt bot"))
    print_table(
        "Per-round ratios to the minimal bot's round of the same turn: median (lowest–highest)",
        ["bot", "rounds", "ack p99 ratio", "click→call p50 ratio"],
        round_ratios(groups, "minimal Bolt bot"),
    )
    if chart:
        _chart(groups, chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
