"""Shared benchmark plumbing: a bot on loopback, percentiles, tables, charts and the machine's description."""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import create_engine, make_url, text

from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.client import LexiClient

SIGNING_SECRET = "bench-signing-secret-0123456789"
CHANNEL = "C0LEXI"
WEBHOOK_EVENTS = ["task.created", "task.updated", "task.approved", "task.dismissed"]
#: Limits so large that the budget never shapes polling (the budget has its own benchmark, simulated_day).
UNLIMITED: dict[str, Any] = {"daily_limit": 10_000_000, "minute_limit": 1_000_000}


# --- the machine --------------------------------------------------------------------------------


def machine() -> str:
    """One line naming the CPU count, CPU model, Python version and OS that ran a benchmark."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores (nproc), {model}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory (VmRSS) in MiB; this process's by default."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def thread_count(pid: int | str = "self") -> int:
    """A process's threads (/proc/PID/status), 0 when it cannot be read."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


# --- statistics and tables ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation, as numpy's default; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    """Seconds shown as milliseconds."""
    return "—" if math.isnan(seconds) else f"{seconds * 1000:,.1f} ms"


def secs(seconds: float) -> str:
    """Seconds shown with a unit that suits their size."""
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (it reads well in a terminal too)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a titled Markdown table."""
    print(f"\n### {title}\n\n{table(headers, rows)}\n", flush=True)


# --- charts -------------------------------------------------------------------------------------


def pyplot() -> Any | None:
    """Matplotlib's pyplot (headless), or None with a message saying how to install it."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')", flush=True)
        return None
    return plt


def save_chart(fig: Any, path: str) -> None:
    """Write a figure as PNG, creating its folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart written to {path}", flush=True)


# --- command line -------------------------------------------------------------------------------


_Number = TypeVar("_Number", int, float)


def positive(kind: Callable[[str], _Number]) -> Callable[[str], _Number]:
    """An argparse type: `kind(text)`, refused (a usage error, not a traceback later) unless above zero."""

    def parse(text: str) -> _Number:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above zero, not {text!r}")
        return value

    return parse


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every benchmark takes: --chart PATH and --quick; also prints the machine and configures logs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--chart", metavar="PNG", help="write a chart to this PNG file (needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="a small, fast run (a smoke test)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the bot's warnings")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.ERROR,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    print(f"machine: {machine()}", flush=True)
    return args


@contextmanager
def fresh_database(postgres: str | None) -> Iterator[str | None]:
    """A new, empty PostgreSQL database on the server of `postgres` (dropped afterwards); None: SQLite."""
    if postgres is None:
        yield None
        return
    url = make_url(postgres)
    name = f"lexi_sbs_{os.getpid()}_{time.monotonic_ns()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.005) -> bool:
    """Poll `predicate` until it is truthy or `timeout` seconds pass; whether it became truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def posts_by_task(slack: SlackStandIn) -> dict[str, list[float]]:
    """When each task's announcement reached chat.postMessage (a list: more than one is a duplicate)."""
    posts: dict[str, list[float]] = defaultdict(list)
    for call in slack.calls_to("chat.postMessage"):
        metadata = call.args.get("metadata")
        if call.ok and isinstance(metadata, dict) and not call.args.get("thread_ts"):
            task_id = (metadata.get("event_payload") or {}).get("task_id")
            if task_id:
                posts[str(task_id)].append(call.at)
    return posts


# --- a running bot ------------------------------------------------------------------------------


@dataclass
class Stack:
    """A sandbox and a Slack stand-in in this process, and the real bot in its own process, on 127.0.0.1."""

    sandbox: Sandbox
    slack: SlackStandIn
    url: str
    store: Store
    process: subprocess.Popen[bytes]
    log_path: Path
    announced: list[str] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30, trust_env=False))

    def post_signed(self, body: bytes, content_type: str, client: httpx.Client | None = None) -> httpx.Response:
        """POST a request to the bot's /slack/events, signed as Slack signs it."""
        headers = payloads.signed_request(SIGNING_SECRET, body, content_type)
        return (client or self.http).post(f"{self.url}/slack/events", content=body, headers=headers)

    def rss_mb(self) -> float:
        """The bot process's resident memory (VmRSS) in MiB."""
        return rss_mb(self.process.pid)

    def threads(self) -> int:
        """The bot process's thread count."""
        return thread_count(self.process.pid)

    def close(self) -> None:
        """Stop the bot (SIGTERM, as a platform would; bounded), then the peers; show the bot's errors."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.store.close()
        self.http.close()
        self.sandbox.stop()
        self.slack.stop()
        errors = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if " ERROR " in line or "Traceback" in line
        ]
        if errors:
            print(f"the bot logged {len(errors)} error line(s), e.g.: {errors[0][:300]}", flush=True)


def _register_webhook(sandbox: Sandbox) -> tuple[str, str]:
    """Register a webhook with a placeholder URL, as `lexi-bot webhooks register` would; (id, secret)."""
    sandbox.allow_private_webhooks = True
    client = LexiClient(sandbox.url, sandbox.api_key)
    try:
        hook = client.create_webhook("http://127.0.0.1:9/lexi/webhooks", WEBHOOK_EVENTS)
    finally:
        client.close()
    return str(hook["id"]), str(hook["secret"])


def _announce(sandbox: Sandbox, slack: SlackStandIn, store: Store, count: int) -> list[str]:
    """Add `count` tasks to the sandbox and announce them with the bot's Announcer, pacing off; their ids."""
    from bot.core.announcer import Announcer
    from bot.lexi.models import Task
    from bot.slack.messenger import Messenger, make_web_client

    messenger = Messenger(make_web_client("xoxb-test-token", slack.api_url), store, post_interval=0.0)
    announcer = Announcer(store, messenger, CHANNEL)
    ids = []
    for _ in range(count):
        task = Task.from_api(sandbox.add_task())
        assert task is not None
        announcer.announce(task)
        ids.append(task.id)
    return ids


def _free_port() -> int:
    """A loopback port that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until `url` answers 200 (bounded); False when the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


@contextmanager
def running_bot(
    *,
    post_interval: float = 1.0,
    poll_interval: float = 5.0,
    webhooks: bool = False,
    sandbox_options: dict[str, Any] | None = None,
    database_url: str | None = None,
    before_start: Callable[[Sandbox], None] | None = None,
    announced: int = 0,
    sandbox_class: type[Sandbox] = Sandbox,
) -> Iterator[Stack]:
    """Start a sandbox, a stand-in and the bot process with its poller (SQLite in a temp dir unless given).

    `before_start` may add tasks to the sandbox before the bot's first poll; `announced` tasks are added and
    announced before the bot starts, by the bot's own Announcer in this process with pacing off (their ids in
    `Stack.announced`), so a benchmark can click them without waiting for Slack's pacing. The context is entered
    once the bot is ready (its first poll cycle succeeded).
    """
    workdir = Path(tempfile.mkdtemp(prefix="lexi-bench-"))
    sandbox = sandbox_class(**{"seed": False, **UNLIMITED, **(sandbox_options or {})}).start()
    slack = SlackStandIn().start()
    stack: Stack | None = None
    try:
        url = database_url or f"sqlite:///{workdir / 'bench.db'}"
        store = Store.from_url(url)
        migrate.upgrade(store.engine)
        env = {
            **os.environ,
            "LEXI_API_KEY": sandbox.api_key,
            "LEXI_API_URL": sandbox.url,
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_CHANNEL": CHANNEL,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": url,
            "POLL_INTERVAL": str(poll_interval),
            "LEXI_ENV_FILE": "/nonexistent",
        }
        env.pop("LEXI_WEBHOOK_SECRET", None)
        hook_id = None
        if webhooks:
            hook_id, env["LEXI_WEBHOOK_SECRET"] = _register_webhook(sandbox)
        if before_start is not None:
            before_start(sandbox)
        ids = _announce(sandbox, slack, store, announced) if announced else []
        port = _free_port()
        log_path = workdir / "bot.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.botproc", "--port", str(port), "--post-interval", str(post_interval)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("wb"),
            cwd=Path(__file__).resolve().parent.parent,
        )
        stack = Stack(sandbox, slack, f"http://127.0.0.1:{port}", store, process, log_path, announced=ids)
        if not _wait_http(f"{stack.url}/healthz", process, 60):
            raise RuntimeError(f"the bot did not start: {log_path.read_text(errors='replace')[-2000:]}")
        if hook_id is not None:
            answer = stack.http.patch(
                f"{sandbox.url}/v1/webhooks/{hook_id}",
                json={"url": f"{stack.url}/lexi/webhooks"},
                headers={"Authorization": f"Bearer {sandbox.api_key}"},
            )
            answer.raise_for_status()
        if not _wait_http(f"{stack.url}/readyz", process, 120):
            raise RuntimeError("the bot's first poll cycle did not succeed in time")
        yield stack
    finally:
        if stack is not None:
            stack.close()
        else:
            sandbox.stop()
            slack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
