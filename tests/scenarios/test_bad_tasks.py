"""Issue 11, one bad task never stops the bot: the poller survives anything, and /healthz says when it did not."""

from __future__ import annotations

import ctypes
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from tests.support.harness import CHANNEL, BotHarness

#: Deeper than Python's JSON decoder (and its recursion limit) can follow.
DEPTH = 5000
#: A valid timestamp whose offset pushes it before year 1 in UTC.
OVERFLOWING = "0001-01-01T00:00:00+14:00"


class _Killed(BaseException):
    """What the test raises inside the poller's thread to end it, as an interpreter-level kill would."""


def _deep(depth: int = DEPTH) -> Any:
    """A list nested `depth` levels deep."""
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _metric(body: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?") + r" ([0-9.e+-]+)"
    match = re.search(pattern, body)
    return float(match.group(1)) if match else 0.0


def _announced(slack: SlackStandIn) -> list[str]:
    """The task ids of the cards in the channel, in order."""
    return [m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.metadata and not m.thread_ts]


@pytest.fixture
def polling(bot: BotHarness) -> Iterator[threading.Thread]:
    """The bot's real poller thread, started as `lexi-bot run` starts it, and stopped after the test."""
    stop = threading.Event()
    thread = bot.runtime.start_poller(stop)
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=10)


def test_bad_tasks_never_stop_the_poller(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, polling: threading.Thread
) -> None:
    """A too-deep task and an overflowing date are shown plainly, counted once, and polling goes on for the rest."""
    good = sandbox.add_task(description="Find CFOs in Lyon")["id"]
    sandbox.add_raw_task(
        {
            "id": "deep-1",
            "type": "prospect_search",
            "status": "pending",
            "description": "Deep " + "d" * 5000,
            "metadata": {"filters": _deep()},
        }
    )
    overflow = sandbox.add_task(description="Overflowing date", created_at=OVERFLOWING)["id"]
    bot.wait_for(lambda: {good, "deep-1", overflow} <= set(_announced(slack)), timeout=20)
    deep_card = json.dumps(slack.message(CHANNEL, bot.store.get("deep-1").message_ts).blocks)
    assert "Deep ddd" in deep_card and "bottom" not in deep_card  # a plain card: metadata dropped
    later = sandbox.add_task(description="Added later")["id"]
    bot.wait_for(lambda: later in _announced(slack), timeout=20)
    assert polling.is_alive()
    metrics = bot.http.get(f"{bot.url}/metrics").text
    assert _metric(metrics, "lexi_tasks_unparseable_total", 'problem="too_deep"') == 1  # once, though listed often
    assert _metric(metrics, "lexi_tasks_unparseable_total", 'problem="created_at"') == 1
    health = bot.http.get(f"{bot.url}/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True


def test_poll_loop_survives_an_unexpected_error(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, polling: threading.Thread
) -> None:
    """A cycle that fails in an unforeseen way (its table gone mid-migration) is logged, and polling resumes."""
    first = sandbox.add_task()["id"]
    bot.wait_for(lambda: first in _announced(slack), timeout=20)
    with bot.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE tasks RENAME TO tasks_away"))
    try:
        bot.wait_for(
            lambda: _metric(bot.http.get(f"{bot.url}/metrics").text, "lexi_poll_cycle_failures_total") >= 1, timeout=20
        )
    finally:
        with bot.store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE tasks_away RENAME TO tasks"))
    later = sandbox.add_task()["id"]
    bot.wait_for(lambda: later in _announced(slack), timeout=30)
    assert polling.is_alive()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the kill is the point
def test_healthz_fails_when_the_poller_thread_died(bot: BotHarness, polling: threading.Thread) -> None:
    """A poller thread that ended while the bot runs makes /healthz (and /readyz) answer 503 naming it."""
    assert bot.http.get(f"{bot.url}/healthz").status_code == 200
    assert polling.ident is not None
    deadline = time.monotonic() + 10
    while polling.is_alive() and time.monotonic() < deadline:
        # Raised in the thread at its next bytecode; a library's cleanup may swallow one (psycopg cancels a query
        # on an interrupt), so it is raised again until the thread has ended (bounded).
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(polling.ident), ctypes.py_object(_Killed))
        polling.join(timeout=1)
    assert not polling.is_alive()
    response = bot.http.get(f"{bot.url}/healthz")
    assert response.status_code == 503
    assert response.json()["ok"] is False and response.json()["dead"] == ["poller"]
    ready = bot.http.get(f"{bot.url}/readyz")
    assert ready.status_code == 503 and ready.json()["parts"] == "stopped: poller"
