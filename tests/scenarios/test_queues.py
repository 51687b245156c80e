"""Issue 12, separate queues: a click never waits behind announcements, and a long backlog is reported, not stale."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_webhooks import sign
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, BotHarness, start_bot

SECRET = "whsec-test-queues-0123456789"
#: Slack's pace for posts in one channel, as the bot keeps it in production.
REAL_PACE = 1.0


@pytest.fixture
def paced(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[BotHarness]:
    """A bot with webhooks on that posts at Slack's real pace (one message a second per channel)."""
    harness = start_bot(sandbox, slack, database_url, post_interval=REAL_PACE, LEXI_WEBHOOK_SECRET=SECRET)
    try:
        yield harness
    finally:
        harness.close()


def _deliver(harness: BotHarness, task: dict) -> httpx.Response:
    """POST one task.created delivery to the bot, signed as LeadLex signs it."""
    body = json.dumps(
        {
            "event": "task.created",
            "timestamp": datetime.now(UTC).isoformat(),
            "workspace_id": "ws",
            "data": {"task": task},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-LeadLex-Signature": sign(SECRET, body),
        "X-LeadLex-Delivery-ID": f"d-{task['id']}",
    }
    return harness.http.post(f"{harness.url}/lexi/webhooks", content=body, headers=headers)


def _task(task_id: str) -> dict:
    """A pending LeadLex task object."""
    return {
        "id": task_id,
        "type": "prospect_search",
        "status": "pending",
        "description": "Find CFOs",
        "created_at": "2026-11-23T09:00:00Z",
        "metadata": {"per_page": 10},
    }


def _posted(slack: SlackStandIn) -> list[str]:
    """Task ids of the channel's top-level cards, in post order (repeats included)."""
    return [
        m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.thread_ts is None and m.metadata
    ]


def _metric(text: str, name: str, labels: str) -> float:
    """The value of one sample in a Prometheus exposition."""
    prefix = f"{name}{{{labels}}} "
    return float(next(line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)))


@pytest.mark.parametrize("burst", [60, 100])
def test_an_approve_click_reaches_leadlex_before_a_webhook_burst_is_posted(
    paced: BotHarness, sandbox: Sandbox, slack: SlackStandIn, burst: int
) -> None:
    """With many new tasks at once and posts paced at 1/s, a click's approve call comes before a handful of posts."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    paced.poll()
    assert paced.store.get(task_id).message_ts is not None
    for n in range(burst):
        assert _deliver(paced, _task(f"burst-{n}")).status_code == 200
    assert paced.click(blocks.APPROVE_ACTION, task_id).status_code == 200
    path = f"/v1/lexi/tasks/{task_id}/approve"
    (approve,) = paced.wait_for(lambda: sandbox.calls_to("POST", path), timeout=20)
    posts = [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == CHANNEL]
    before = [c for c in posts if c.at < approve.at]
    assert len(before) <= 1 + 5, f"{len(before) - 1} announcements were posted before the approval reached LeadLex"
    assert paced.runtime.backlog()["announce"] > 0  # the burst still waits its turn


def test_a_poll_finding_thousands_of_new_tasks_finishes_and_reports_the_backlog(
    paced: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A poll that finds 2,000 new tasks queues them and completes; /readyz stays ready and shows the backlog."""
    for n in range(2000):
        sandbox.add_task("prospect_search", f"Find CFOs {n}")
    poller = paced.runtime.poller
    before = poller.last_success
    cycle = threading.Thread(target=paced.cycle, daemon=True)
    cycle.start()
    cycle.join(timeout=30)
    assert not cycle.is_alive(), "the poll cycle waited for the announcements"
    assert poller.last_success is not None and poller.last_success != before
    ready = paced.http.get(f"{paced.url}/readyz")
    assert ready.status_code == 200, ready.text
    report = ready.json()
    assert report["ready"] is True and report["poll"] == "ok"
    assert report["backlog"]["announce"] > 1000 and report["backlog"]["announce_by_channel"][CHANNEL] > 1000
    metrics = paced.http.get(f"{paced.url}/metrics").text
    assert _metric(metrics, "lexi_queue_backlog", 'queue="announce"') > 1000
    assert _metric(metrics, "lexi_queue_backlog", 'queue="decisions"') == 0
    assert len(_posted(slack)) < 100  # still being posted at Slack's pace
    poller.cycle()  # the next poll queues nothing twice
    assert paced.runtime.backlog()["announce"] <= 2000


def test_every_task_is_announced_exactly_once_across_a_restart_mid_backlog(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """Stopped with most of a backlog unposted, the restarted bot posts the rest: each task exactly once."""
    ids = [sandbox.add_task("prospect_search", f"Find CFOs {n}")["id"] for n in range(150)]
    first = start_bot(sandbox, slack, database_url, post_interval=0.05)
    try:
        first.cycle()
        first.wait_for(lambda: len(_posted(slack)) >= 20, timeout=30)
    finally:
        first.close()
    assert len(_posted(slack)) < len(ids)  # stopped mid-backlog
    second = start_bot(sandbox, slack, database_url, post_interval=0.0)
    try:
        second.poll()
        posted = _posted(slack)
        assert sorted(posted) == sorted(ids)  # every task, none twice
        assert all(second.store.get(t).state == "pending" and second.store.get(t).message_ts for t in ids)
    finally:
        second.close()


def test_a_full_announcement_backlog_answers_new_tasks_503_so_leadlex_retries(
    paced: BotHarness, slack: SlackStandIn
) -> None:
    """With no room left to queue an announcement, a task.created delivery is refused 503 and nothing is kept."""
    backlog = paced.runtime.announcer.backlog
    assert backlog is not None
    backlog.limit = 0
    response = _deliver(paced, _task("full-1"))
    assert response.status_code == 503 and response.json()["error"]
    backlog.limit = 10
    assert _deliver(paced, _task("full-1")).status_code == 200  # LeadLex's retry is not taken for a replay
    paced.settle()
    assert _posted(slack) == ["full-1"]


def test_closing_drops_waiting_announcements_and_finishes_the_one_in_flight(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """Shutdown does not wait for a long backlog: queued tasks are left unrecorded, a post in flight is recorded."""
    harness = start_bot(sandbox, slack, database_url, post_interval=REAL_PACE, LEXI_WEBHOOK_SECRET=SECRET)
    try:
        for n in range(10):
            assert _deliver(harness, _task(f"stop-{n}")).status_code == 200
        harness.wait_for(lambda: _posted(slack), timeout=10)
    finally:
        harness.close()
    posted = set(_posted(slack))
    assert len(posted) < 10  # ten posts take ten seconds at Slack's pace: most were still waiting
    store = Store.from_url(database_url)
    try:
        for n in range(10):
            row = store.get(f"stop-{n}")
            if f"stop-{n}" in posted:
                assert row is not None and row.message_ts is not None and row.state == "pending"
            else:
                assert row is None  # no record: the next poll lists it again
    finally:
        store.close()


def _cycle_in_thread(harness: BotHarness) -> threading.Thread:
    """Run one poll cycle on a thread of its own and wait for it (bounded); the thread, finished or not."""
    cycle = threading.Thread(target=harness.cycle, daemon=True)
    cycle.start()
    cycle.join(timeout=15)
    return cycle


def test_a_thread_reply_slack_holds_never_holds_the_poll_cycle(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A completed task's card update and thread reply wait in the cards queue; the cycle finishes without them."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    bot.poll()
    bot.click(blocks.APPROVE_ACTION, task_id)
    bot.settle()
    sandbox.complete(task_id)
    release = slack.hold_next("chat.postMessage")
    try:
        before = bot.runtime.poller.last_success
        cycle = _cycle_in_thread(bot)
        assert not cycle.is_alive(), "the poll cycle waited for Slack to answer a thread reply"
        assert bot.runtime.poller.last_success != before
        assert bot.store.get(task_id).state == "completed"
    finally:
        release.set()
    bot.settle()
    replies = [m for m in slack.messages(CHANNEL) if m.thread_ts is not None]
    assert len(replies) == 1


def test_reminders_slack_holds_never_hold_the_poll_cycle(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Reminders run on a queue of their own: a reminder Slack is slow to take never holds the poll cycle."""
    policy = tmp_path / "lexi-bot.yml"
    policy.write_text("types:\n  prospect_search:\n    remind_after: 1h\n")
    harness = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(policy))
    try:
        task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
        harness.poll()
        reminders = harness.runtime.poller.reminders
        assert reminders is not None
        reminders.clock = lambda: harness.store.get(task_id).announced_at.timestamp() + 2 * 3600
        release = slack.hold_next("chat.postMessage")
        try:
            cycle = _cycle_in_thread(harness)
            assert not cycle.is_alive(), "the poll cycle waited for Slack to take a reminder"
            slack.wait_held()  # the reminder was on its way meanwhile
        finally:
            release.set()
        harness.settle()
        assert any("Still waiting" in m.text for m in slack.messages(CHANNEL) if m.thread_ts)
    finally:
        harness.close()


def test_a_refused_announcement_is_reported_once_and_in_readyz_until_a_post_succeeds(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Slack refusing posts for the setup is said once in the channel, shown in /readyz, and cleared by a post."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    for _ in range(3):
        slack.fail_next("chat.postMessage", "channel_not_found")
        bot.poll()
    notices = [m for m in slack.messages(CHANNEL) if "cannot work" in m.text]
    assert len(notices) == 1 and "channel_not_found" in notices[0].text
    report = bot.http.get(f"{bot.url}/readyz").json()
    assert report["ready"] is False and "channel_not_found" in report["slack"]
    bot.poll()
    assert task_id in _posted(slack)
    report = bot.http.get(f"{bot.url}/readyz").json()
    assert report["ready"] is True and report["slack"] == "ok"


class HeldApprovals(Sandbox):
    """The sandbox, holding every approve call until `release` is set, counting those that have arrived."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.release = threading.Event()
        self.arrived = 0
        self._count = threading.Lock()

    def _respond(self, method: str, target: str, headers: Any, body: bytes) -> Any:
        """Count an approve call, then wait for the release before answering as the sandbox does."""
        if method == "POST" and target.rstrip("/").endswith("/approve"):
            with self._count:
                self.arrived += 1
            self.release.wait(60)
        return super()._respond(method, target, headers, body)


def test_more_clicks_than_http_s_default_pool_all_reach_a_slow_leadlex_at_once(
    slack: SlackStandIn, database_url: str
) -> None:
    """104 approvals while LeadLex answers none: every call is in LeadLex before the first answer comes back.

    httpx allows 100 connections unless told otherwise, so the 101st click's call used to wait for a slow approval
    to come back (5 s in the side-by-side benchmark) before it was even sent.
    """
    clicks = 104  # more than httpx's default pool of 100
    with HeldApprovals(seed=False, daily_limit=10_000_000, minute_limit=100_000) as sandbox:
        harness = start_bot(sandbox, slack, database_url)
        try:
            task_ids = [sandbox.add_task("prospect_search", f"Find CFOs {n}")["id"] for n in range(clicks)]
            harness.poll()
            with ThreadPoolExecutor(20) as pool:
                statuses = list(pool.map(lambda t: harness.click(blocks.APPROVE_ACTION, t).status_code, task_ids))
            assert statuses == [200] * clicks
            try:
                harness.wait_for(lambda: sandbox.arrived >= clicks, timeout=30)
            except AssertionError:
                pytest.fail(f"only {sandbox.arrived} of {clicks} approve calls reached LeadLex while it held them")
        finally:
            sandbox.release.set()
            harness.close()
        assert {harness.store.get(t).state for t in task_ids} <= {"approved", "deciding"}


def test_decisions_beyond_the_listener_threads_slots_go_to_the_decisions_queue_and_all_reach_leadlex(
    slack: SlackStandIn, database_url: str
) -> None:
    """A click's decision runs in its listener's thread after the ack while a slot is free, else on its queue.

    With 4 slots and LeadLex holding every approval, all 12 calls still reach LeadLex, each once.
    """
    clicks, slots = 12, 4
    with HeldApprovals(seed=False, daily_limit=10_000_000, minute_limit=100_000) as sandbox:
        harness = start_bot(sandbox, slack, database_url)
        inline = harness.runtime.workers.inline
        inline.limit = slots
        try:
            task_ids = [sandbox.add_task("prospect_search", f"Find CFOs {n}")["id"] for n in range(clicks)]
            harness.poll()
            with ThreadPoolExecutor(clicks) as pool:
                statuses = list(pool.map(lambda t: harness.click(blocks.APPROVE_ACTION, t).status_code, task_ids))
            assert statuses == [200] * clicks
            harness.wait_for(lambda: sandbox.arrived == clicks, timeout=20)
            assert inline.running == slots
            assert harness.runtime.queues["decisions"].running == clicks - slots
            metrics = harness.http.get(f"{harness.url}/metrics").text
            assert _metric(metrics, "lexi_queue_running", 'queue="decisions-inline"') == slots
            assert _metric(metrics, "lexi_queue_running", 'queue="decisions"') == clicks - slots
        finally:
            sandbox.release.set()
        try:
            harness.settle()
            assert inline.running == 0
            assert {harness.store.get(t).state for t in task_ids} == {"approved"}
            approvals = [len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{t}/approve")) for t in task_ids]
            assert approvals == [1] * clicks
        finally:
            harness.close()
