"""Issue 4, budget: the poller and the client plan their LeadLex calls against the real plans' limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.client import LexiClient
from bot.slack import blocks
from tests.support.harness import start_bot


@pytest.fixture
def starter() -> Iterator[Sandbox]:
    """A sandbox with a Starter plan's limits: 100 calls a day, 10 a minute."""
    with Sandbox(seed=False, daily_limit=100, minute_limit=10) as server:
        yield server


def test_starter_plan_stretches_polling_and_says_so_once(
    starter: Sandbox, slack: SlackStandIn, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On a Starter plan a 60 s POLL_INTERVAL becomes about 29 minutes, logged once with the reason."""
    harness = start_bot(starter, slack, database_url, POLL_INTERVAL="60")
    try:
        with caplog.at_level(logging.INFO, logger="bot.core.poller"):
            delays = [harness.poll() for _ in range(3)]
    finally:
        harness.close()
    assert all(1_500 < d < 2_000 for d in delays), delays
    stretched = [r for r in caplog.records if "instead of 60.0s" in r.getMessage()]
    assert len(stretched) == 1 and "keeping 20 for decisions" in stretched[0].getMessage()


def test_polling_stops_at_the_reserve(starter: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """With only the reserve left, the poller waits for the daily reset and decisions keep their calls."""
    harness = start_bot(starter, slack, database_url, POLL_INTERVAL="60")
    try:
        starter.set_remaining(15)
        delay = harness.poll()
        budget = harness.runtime.lexi.budget
        assert budget.reset is not None and delay >= budget.reset - time.time() - 5  # sleeps until the reset
        assert budget.remaining >= 10
    finally:
        harness.close()


def test_webhooks_idle_poll_only_to_reconcile(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """With webhooks on and nothing waiting, the next cycle is the hourly reconcile."""
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET="whsec_" + "a" * 40, POLL_INTERVAL="60")
    try:
        assert 3_500 <= harness.poll() <= 3_600
        assert len(sandbox.calls_to("GET", "/v1/lexi/tasks")) == 1
    finally:
        harness.close()


def test_webhooks_sync_lists_only_what_approved_tasks_wait_for(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """Between reconciles, only completed and failed are listed, and only while a task waits for them."""
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET="whsec_" + "a" * 40, POLL_INTERVAL="60")
    try:
        task_id = sandbox.add_task()["id"]
        harness.poll()  # the first cycle reconciles and announces
        harness.click(blocks.APPROVE_ACTION, task_id)
        harness.settle()
        sandbox.reset_calls()
        assert harness.runtime.poller._plan() <= 60  # noqa: SLF001 - a task waits for completion
        harness.poll()
        listed = sorted(c.path for c in sandbox.calls_to("GET", "/v1/lexi/tasks"))
        assert listed == ["/v1/lexi/tasks?status=completed", "/v1/lexi/tasks?status=failed"]
        sandbox.complete(task_id)
        harness.poll()
        assert harness.store.get(task_id).state == "completed"
        sandbox.reset_calls()
        assert harness.poll() > 3_000  # nothing waits any more: sleep until the reconcile
        assert sandbox.calls_to("GET", "/v1/lexi/tasks") == []
    finally:
        harness.close()


def test_client_paces_itself_to_the_per_minute_limit() -> None:
    """Twenty calls on a 10-a-minute plan wait for free slots instead of drawing a 429."""
    now = [1_800_000_000.0]  # one simulated clock for the client and LeadLex
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with Sandbox(seed=False, daily_limit=100, minute_limit=10, clock=lambda: now[0]) as starter:
        client = LexiClient(starter.url, starter.api_key, clock=lambda: now[0], sleep=sleep, max_wait=120)
        for _ in range(20):
            client.list_tasks()
            now[0] += 1.0
        assert len(sleeps) >= 1 and all(0 < s <= 60 for s in sleeps)
        assert [c.status for c in starter.calls] == [200] * 20


def test_an_approval_wakes_the_poller_to_follow_completion(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """With webhooks on and the poller asleep until the hourly reconcile, approval brings completion within seconds."""
    import threading

    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET="whsec_" + "a" * 40, POLL_INTERVAL="1")
    stop = threading.Event()
    runner = threading.Thread(target=harness.runtime.poller.run, args=(stop, harness.runtime.leadership), daemon=True)
    try:
        task_id = sandbox.add_task()["id"]
        runner.start()
        harness.wait_for(lambda: harness.store.get(task_id) and harness.store.get(task_id).message_ts)
        harness.wait_for(lambda: harness.runtime.poller.last_delay > 3_000)  # asleep until the reconcile
        harness.click(blocks.APPROVE_ACTION, task_id)
        harness.settle()
        sandbox.complete(task_id)
        harness.wait_for(lambda: harness.store.get(task_id).state == "completed", timeout=10)
    finally:
        stop.set()
        runner.join(timeout=5)
        harness.close()
