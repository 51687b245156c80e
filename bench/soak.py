"""Soak: the bot under random faults, kills and restarts for a while, checked that nothing is lost or doubled.

`python -m bench.soak [--minutes 10] [--database-url URL] [--seed N]`. The bot runs as a subprocess
(bench.botproc, polling every second, Slack's 1 post/s pacing), restarted after every stop. Meanwhile:

- tasks arrive in LeadLex (the sandbox) every 0.5–2 s, and a clicker approves announced tasks (signed clicks);
- LeadLex answers at random with 5xx, 429 (Retry-After) or slowly (3 s for a few seconds); Slack (the stand-in)
  answers chat.postMessage / chat.update with 429s;
- every 10–40 s the bot is stopped: SIGKILL, SIGKILL right after a click was acknowledged, or SIGTERM.

At the end the faults stop, one last bot runs until everything settled (bounded), and the soak counts:
tasks lost (never announced), posted twice, decided twice (LeadLex changed twice, or two "decided" audit rows),
acknowledged decisions lost (the click got its 200 but the task is still pending in LeadLex; those the card
handed back with a note are shown apart), and the bot's RSS over time.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    CHANNEL,
    SIGNING_SECRET,
    UNLIMITED,
    _free_port,
    _wait_http,
    machine,
    print_table,
    pyplot,
    rss_mb,
    save_chart,
    wait_until,
)
from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Report:
    """What a soak counted."""

    seconds: float
    tasks: int = 0
    clicks_acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    posted_twice: list[str] = field(default_factory=list)
    decided_twice: list[str] = field(default_factory=list)
    acknowledged_lost: list[str] = field(default_factory=list)
    handed_back: list[str] = field(default_factory=list)
    stops: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[float, int, float]] = field(default_factory=list)  # (seconds since start, pid, MiB)
    settled: bool = False
    stuck: dict[str, int] = field(default_factory=dict)  # claims still open at the end

    def zero_counts(self) -> dict[str, int]:
        """The counts that must be zero."""
        return {
            "tasks lost": len(self.lost),
            "posted twice": len(self.posted_twice),
            "decided twice": len(self.decided_twice),
            "acknowledged decisions lost": len(self.acknowledged_lost),
        }


class BotProcess:
    """The bot as a child process on a fresh port each start; stopped by SIGKILL or SIGTERM."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self._env, self._workdir = env, workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def start(self) -> bool:
        """Start a new process and wait (bounded) until /healthz answers; False if it did not."""
        port = _free_port()
        self.starts += 1
        log = (self._workdir / f"bot-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.botproc", "--port", str(port), "--post-interval", "1"],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=ROOT,
        )
        log.close()
        self.url = f"http://127.0.0.1:{port}"
        return _wait_http(f"{self.url}/healthz", self.process, 60)

    def stop(self, how: str) -> None:
        """SIGKILL or SIGTERM (bounded wait; a SIGTERM that does not end it in 40 s becomes a SIGKILL)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        try:
            process.wait(timeout=10 if how == "kill" else 40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def errors(self) -> list[str]:
        """Error lines of every start's log."""
        lines = []
        for path in sorted(self._workdir.glob("bot-*.log")):
            lines += [
                line
                for line in path.read_text(errors="replace").splitlines()
                if " ERROR " in line or "Traceback" in line
            ]
        return lines


class DecisionLedger(Sandbox):
    """The sandbox, counting per task the decision calls that changed LeadLex's state (2xx answers)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.decisions: Counter[str] = Counter()

    def _respond(self, method: str, target: str, headers: Any, body: bytes) -> Any:
        """Answer as the sandbox does; count a successful approve or dismiss."""
        reply = super()._respond(method, target, headers, body)
        path = target.split("?", 1)[0].rstrip("/")
        if method == "POST" and path.endswith(("/approve", "/dismiss")) and 200 <= reply.status < 300:
            self.decisions[path.split("/")[-2]] += 1
        return reply


def _cards(slack: SlackStandIn) -> Counter[str]:
    """How many top-level cards each task has in the channel."""
    return Counter(
        m.metadata["event_payload"]["task_id"]
        for m in slack.messages(CHANNEL)
        if m.thread_ts is None and m.metadata and "event_payload" in m.metadata
    )


def _click(url: str, slack: SlackStandIn, task_id: str, ts: str, client: httpx.Client) -> int:
    """A signed Approve click on a card; the HTTP status (0 when the bot did not answer)."""
    payload = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION,
        value=task_id,
        user="UALICE",
        channel=CHANNEL,
        message_ts=ts,
        trigger_id=slack.new_trigger_id("UALICE"),
        response_url=slack.new_response_url(),
    )
    body, content_type = payloads.encode_interactive(payload)
    try:
        answer = client.post(
            f"{url}/slack/events", content=body, headers=payloads.signed_request(SIGNING_SECRET, body, content_type)
        )
    except httpx.HTTPError:
        return 0
    return answer.status_code


class _Soak:
    """One soak's shared state (the peers, the bot process, the report) and the workers that drive it."""

    def __init__(self, seconds: float, *, database_url: str | None, seed: int, kill_after_ack: float) -> None:
        """Start LeadLex and Slack stand-ins and migrate the database; the bot itself starts in `run`."""
        self.rng = random.Random(seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="lexi-soak-"))
        self.sandbox = DecisionLedger(seed=False, **UNLIMITED).start()
        self.slack = SlackStandIn().start()
        url = database_url or f"sqlite:///{self.workdir / 'soak.db'}"
        self.store = Store.from_url(url)
        migrate.upgrade(self.store.engine)
        env = {
            **os.environ,
            "LEXI_API_KEY": self.sandbox.api_key,
            "LEXI_API_URL": self.sandbox.url,
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_CHANNEL": CHANNEL,
            "SLACK_API_URL": self.slack.api_url,
            "DATABASE_URL": url,
            "POLL_INTERVAL": "1",
            "LEXI_ENV_FILE": "/nonexistent",
            "BENCH_BOT_LOG_LEVEL": "WARNING",
        }
        env.pop("LEXI_WEBHOOK_SECRET", None)
        self.bot = BotProcess(env, self.workdir)
        self.report = Report(seconds)
        self.kill_after_ack = kill_after_ack
        self.stopping = threading.Event()
        self.kill_now = threading.Event()
        self.sampled = threading.Event()  # set when RSS sampling ends (after the settling)
        self.acked: dict[str, float] = {}
        self.began = time.monotonic()

    def feed(self) -> None:
        """New tasks in LeadLex every 0.5–2 s."""
        while not self.stopping.wait(self.rng.uniform(0.5, 2.0)):
            self.sandbox.add_task()

    def click(self) -> None:
        """Approve announced tasks nobody clicked yet; sometimes ask for a SIGKILL right after the ack."""
        clicked: set[str] = set()
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self.stopping.wait(self.rng.uniform(0.2, 1.0)):
                pending = {t["id"] for t in self.sandbox.tasks("pending")}
                cards = {
                    m.metadata["event_payload"]["task_id"]: m.ts
                    for m in self.slack.messages(CHANNEL)
                    if m.thread_ts is None and m.metadata and "event_payload" in m.metadata
                }
                choices = sorted(t for t in cards if t in pending and t not in clicked)
                if not choices or not self.bot.url:
                    continue
                task_id = self.rng.choice(choices)
                if _click(self.bot.url, self.slack, task_id, cards[task_id], client) == 200:
                    clicked.add(task_id)
                    self.acked[task_id] = time.monotonic() - self.began
                    if self.rng.random() < self.kill_after_ack:
                        self.kill_now.set()

    def chaos(self) -> None:
        """Random LeadLex and Slack faults."""
        rng, sandbox = self.rng, self.sandbox
        while not self.stopping.wait(rng.uniform(2.0, 6.0)):
            kind = rng.choice(["leadlex 5xx", "leadlex 429", "leadlex slow", "slack 429"])
            self.report.faults[kind] += 1
            if kind == "leadlex 5xx":
                sandbox.fail_next(None, "/v1/lexi/tasks", status=rng.choice([500, 502, 503]), times=rng.randint(1, 3))
            elif kind == "leadlex 429":
                sandbox.fail_next(None, "/v1/lexi/tasks", status=429, retry_after=1, times=rng.randint(1, 2))
            elif kind == "leadlex slow":
                sandbox.latency = 3.0
                self.stopping.wait(rng.uniform(2.0, 6.0))
                sandbox.latency = 0.0
            else:
                self.slack.fail_next(rng.choice(["chat.postMessage", "chat.update"]), times=rng.randint(1, 3))

    def sample(self) -> None:
        """The bot's RSS every 2 s, until the end of the settling too."""
        while not self.sampled.wait(2.0):
            process = self.bot.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    self.report.rss.append((time.monotonic() - self.began, process.pid, rss_mb(process.pid)))

    def stop_and_restart(self, seconds: float, lifetime: tuple[float, float]) -> None:
        """Until `seconds` have passed, stop the bot after each random lifetime (or a click's kill) and restart it."""
        while time.monotonic() - self.began < seconds:
            life_ends = time.monotonic() + self.rng.uniform(*lifetime)
            while time.monotonic() < min(life_ends, self.began + seconds) and not self.kill_now.is_set():
                time.sleep(0.05)
            if time.monotonic() - self.began >= seconds:
                break
            how = "kill after an ack" if self.kill_now.is_set() else self.rng.choice(["kill", "term"])
            self.kill_now.clear()
            self.report.stops[how] += 1
            self.bot.stop("term" if how == "term" else "kill")
            if not self.bot.start():
                raise RuntimeError("the bot did not restart")

    def settle(self, workers: list[threading.Thread], settle: float, say: Callable[[str], None]) -> None:
        """Stop the faults and the workers, then wait (bounded) until everything settled; stop the last bot."""
        self.stopping.set()
        for thread in workers:
            thread.join(timeout=15)
        self.sandbox.latency = 0.0
        self.report.settled = wait_until(lambda: _settled(self.sandbox, self.slack, self.store), settle, interval=1.0)
        self.sampled.set()
        self.bot.stop("term")
        for line in self.bot.errors()[:3]:
            say(f"bot error line: {line[:300]}")

    def close(self) -> None:
        """Stop everything and count what went wrong."""
        self.stopping.set()
        self.sampled.set()
        self.bot.stop("kill")
        _count(self.report, self.sandbox, self.slack, self.store, self.acked)
        self.store.close()
        self.sandbox.stop()
        self.slack.stop()


def run(
    seconds: float,
    *,
    database_url: str | None = None,
    seed: int = 0,
    lifetime: tuple[float, float] = (10, 40),
    kill_after_ack: float = 0.05,
    settle: float = 240.0,
    say: Callable[[str], None] = print,
) -> Report:
    """Run one soak for `seconds` and count what went wrong.

    `lifetime`: how long each bot process lives (seconds, a random value in the range) unless a click asks for a
    SIGKILL right after its ack, which each acknowledged click does with probability `kill_after_ack`.
    """
    soak = _Soak(seconds, database_url=database_url, seed=seed, kill_after_ack=kill_after_ack)
    workers = (soak.feed, soak.click, soak.chaos, soak.sample)
    threads = [threading.Thread(target=f, daemon=True, name=f.__name__) for f in workers]
    report = soak.report
    try:
        if not soak.bot.start():
            raise RuntimeError("the bot did not start")
        for thread in threads:
            thread.start()
        soak.stop_and_restart(seconds, lifetime)
        say(f"soak: {seconds:.0f} s done ({dict(report.stops)} stops); settling with faults off")
        soak.settle(threads[:-1], settle, say)  # all but the sampler
    finally:
        soak.close()
    if not any(report.zero_counts().values()) and report.settled:
        shutil.rmtree(soak.workdir, ignore_errors=True)
    else:
        say(f"the bot's logs and database are kept in {soak.workdir}")
    return report


def _settled(sandbox: Sandbox, slack: SlackStandIn, store: Store) -> bool:
    """Every LeadLex task has a card, and no claim (announcing, deciding) is left open."""
    cards = _cards(slack)
    if any(t["id"] not in cards for t in sandbox.tasks()):
        return False
    return store.count_in_state("announcing") == 0 and store.count_in_state("deciding") == 0


def _count(report: Report, sandbox: DecisionLedger, slack: SlackStandIn, store: Store, acked: dict[str, float]) -> None:
    """Fill in the report's counts from LeadLex's, Slack's and the store's final state."""
    cards = _cards(slack)
    tasks = sandbox.tasks()
    report.tasks = len(tasks)
    report.clicks_acknowledged = len(acked)
    report.lost = sorted(t["id"] for t in tasks if t["id"] not in cards)
    report.posted_twice = sorted(t for t, n in cards.items() if n > 1)
    decided_rows = Counter(e["task_id"] for e in store.audit_events() if e["event"] == "decided")
    report.decided_twice = sorted(
        {t for t, n in sandbox.decisions.items() if n > 1} | {t for t, n in decided_rows.items() if n > 1}
    )
    status = {t["id"]: t.get("status") for t in tasks}
    for task_id in acked:
        if status.get(task_id) == "pending":
            row = store.get(task_id)
            # Only a decision LeadLex refused may come back with its buttons (the card says "Could not …");
            # one handed back because the process died ("interrupted") or never carried out is lost.
            refused = row is not None and row.state == "pending" and (row.note or "").startswith("Could not")
            (report.handed_back if refused else report.acknowledged_lost).append(task_id)
    report.stuck = {state: store.count_in_state(state) for state in ("announcing", "deciding")}


def rss_summary(report: Report) -> list[list[object]]:
    """RSS per bot process: first and last sample, how long it lived, the growth."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for at, pid, mb in report.rss:
        by_pid.setdefault(pid, []).append((at, mb))
    rows = []
    for n, all_samples in enumerate(by_pid.values(), start=1):
        (t0, _), (t1, last) = all_samples[0], all_samples[-1]
        warm = [sample for sample in all_samples if sample[0] >= t0 + 4] or all_samples[-1:]  # after start-up
        samples = [(t0, warm[0][1]), *warm]
        first = warm[0][1]
        rows.append(
            [
                n,
                f"{t0:.0f} s",
                f"{t1 - t0:.0f} s",
                f"{first:.1f}",
                f"{last:.1f}",
                f"{last - first:+.1f}",
                f"{max(mb for _, mb in samples):.1f}",
            ]
        )
    return rows


def _chart(report: Report, path: str) -> None:
    """The bot's RSS over the soak, one line per process (each stop starts a new one)."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(9, 4.2))
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for at, pid, mb in report.rss:
        by_pid.setdefault(pid, []).append((at, mb))
    for samples in by_pid.values():
        ax.plot([at / 60 for at, _ in samples], [mb for _, mb in samples], color="tab:blue", linewidth=1)
    ax.set_xlabel("minutes into the soak (a gap: the bot was stopped and restarted)")
    ax.set_ylabel("bot VmRSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Soak: RSS of each bot process ({sum(report.stops.values())} stops)")
    save_chart(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a soak and print its counts; non-zero exit when a count that must be zero is not."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kill-after-ack",
        type=float,
        default=0.05,
        metavar="P",
        help="probability that an acknowledged click is followed at once by a SIGKILL (default 0.05)",
    )
    parser.add_argument(
        "--lifetime",
        type=float,
        nargs=2,
        default=(20.0, 60.0),
        metavar=("MIN", "MAX"),
        help="seconds each bot process lives before a SIGKILL or SIGTERM (default 20 60)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--chart", metavar="PNG", help="chart the bot's RSS over time (needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="one minute (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 1.0
    print(f"machine: {machine()}", flush=True)
    report = run(
        args.minutes * 60,
        database_url=args.database_url,
        seed=args.seed,
        lifetime=tuple(args.lifetime),
        kill_after_ack=args.kill_after_ack,
        say=lambda text: print(text, flush=True),
    )
    print_table(
        f"Soak of {args.minutes:g} min ({'PostgreSQL' if args.database_url else 'SQLite'}, seed {args.seed})",
        ["measure", "count"],
        [
            ["tasks created", report.tasks],
            ["clicks acknowledged", report.clicks_acknowledged],
            *[[name, count] for name, count in report.zero_counts().items()],
            ["acknowledged, then handed back with a note", len(report.handed_back)],
            ["stops", ", ".join(f"{k} ×{v}" for k, v in sorted(report.stops.items()))],
            ["faults injected", ", ".join(f"{k} ×{v}" for k, v in sorted(report.faults.items()))],
            ["settled at the end", "yes" if report.settled else f"NO, claims left open: {report.stuck}"],
        ],
    )
    print_table(
        "Bot RSS per process (MiB; first = first sample ≥ 4 s after start)",
        ["process", "started", "lived", "first", "last", "growth", "max"],
        rss_summary(report),
    )
    if args.chart:
        _chart(report, args.chart)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seconds": report.seconds,
                    "counts": report.zero_counts(),
                    "lost": report.lost,
                    "posted_twice": report.posted_twice,
                    "decided_twice": report.decided_twice,
                    "acknowledged_lost": report.acknowledged_lost,
                    "handed_back": report.handed_back,
                    "stops": report.stops,
                    "faults": report.faults,
                    "rss": report.rss,
                    "stuck": report.stuck,
                },
                indent=1,
            )
        )
    return 0 if not any(report.zero_counts().values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
