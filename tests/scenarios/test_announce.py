"""Behaviours 1 and 2: announce each pending task once, through restarts, crashes and bursts."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import timedelta

from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, BotHarness, start_bot


def _task_ids_posted(slack: SlackStandIn) -> list[str]:
    """The task id in the metadata of every top-level message in the channel, in post order."""
    return [
        message.metadata["event_payload"]["task_id"]
        for message in slack.messages(CHANNEL)
        if message.thread_ts is None and message.metadata
    ]


def _text_of(blocks_: list[dict]) -> str:
    """All text in a list of blocks, flattened (for assertions)."""
    return json.dumps(blocks_, ensure_ascii=False)


def test_each_pending_task_is_announced_once(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Every pending task of every type gets one message with buttons, text fallback and its id as metadata."""
    ids = [
        sandbox.add_task(
            "prospect_search", "Find VPs of Sales", {"query": {"person_titles": ["VP of Sales"]}, "per_page": 25}
        )["id"],
        sandbox.add_task(
            "campaign_start", "Start campaign 'Q1 Fintech'", {"campaign_id": "cmp_1", "contact_count": 150}
        )["id"],
        sandbox.add_task("contact_update", "Mark 42 contacts as customers", {"contact_count": 42})["id"],
        sandbox.add_task("list_operation", "Merge lists", {"operation": "merge", "record_count": 310})["id"],
        sandbox.add_task("meeting_booking", "Book a demo", {"when": "tomorrow"})["id"],
    ]
    sandbox.add_task("prospect_search", "Already decided", status="approved")
    bot.poll()
    assert sorted(_task_ids_posted(slack)) == sorted(ids)
    for message in slack.messages(CHANNEL):
        assert message.text  # the notification fallback
        actions = [b for b in message.blocks if b["type"] == "actions"]
        (buttons,) = actions
        styles = {e["action_id"]: e.get("style") for e in buttons["elements"]}
        assert styles == {blocks.APPROVE_ACTION: "primary", blocks.DISMISS_ACTION: "danger"}
    bot.poll()
    assert len(_task_ids_posted(slack)) == 5
    for task_id in ids:
        row = bot.store.get(task_id)
        assert row.state == "pending" and row.message_ts is not None and row.channel == CHANNEL


def test_restart_does_not_repost(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """A new bot process on the same database posts nothing that was already announced."""
    sandbox.add_task("prospect_search", "Find CFOs")
    first = start_bot(sandbox, slack, database_url)
    try:
        first.poll()
    finally:
        first.close()
    assert len(_task_ids_posted(slack)) == 1
    second = start_bot(sandbox, slack, database_url)
    try:
        second.poll()
        second.poll()
    finally:
        second.close()
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_crash_between_post_and_record_does_not_duplicate(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """If Slack accepted a post but the bot died before recording it, the next bot finds it by metadata."""
    task_id = sandbox.add_task("campaign_start", "Start campaign", {"contact_count": 120})["id"]
    release = slack.hold_next("chat.postMessage")
    crashed = start_bot(sandbox, slack, database_url)
    stuck = threading.Thread(target=crashed.poll, daemon=True)
    stuck.start()
    try:
        slack.wait_for(lambda: len(slack.messages(CHANNEL)) == 1)  # Slack stored the post, the bot has no ts
        assert crashed.store.get(task_id).message_ts is None
        # The process is now "dead" (PostgreSQL ends its session, freeing the poller lock): a new one starts
        # on the same database, after the claim went stale.
        crashed.runtime.leadership.release()
        successor = start_bot(sandbox, slack, database_url, claim_timeout=timedelta(0))
        try:
            successor.poll()
            row = successor.store.get(task_id)
            assert row.state == "pending"
            assert row.message_ts == slack.messages(CHANNEL)[0].ts
            assert _task_ids_posted(slack) == [task_id]
        finally:
            successor.close()
    finally:
        release.set()
        stuck.join(timeout=10)
        crashed.close()
    assert _task_ids_posted(slack) == [task_id]


def test_refused_post_is_retried_on_the_next_poll(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A post Slack refuses is released and tried again, so the task is not lost."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    slack.fail_next("chat.postMessage", "internal_error")
    bot.poll()
    assert _task_ids_posted(slack) == []
    assert bot.store.get(task_id) is None
    bot.poll()
    assert _task_ids_posted(slack) == [task_id]


def test_burst_with_rate_limits_arrives_complete_without_duplicates(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """A burst of tasks, with Slack answering ratelimited along the way, is posted completely, once each."""
    ids = [sandbox.add_task("prospect_search", f"Search {i}")["id"] for i in range(40)]
    slack.fail_next("chat.postMessage", "ratelimited", times=2, retry_after=1)
    harness = start_bot(sandbox, slack, database_url, post_interval=0.01)
    try:
        harness.poll()
    finally:
        harness.close()
    posted = _task_ids_posted(slack)
    assert sorted(posted) == sorted(ids)
    assert len(posted) == len(set(posted))
    assert sum(1 for c in slack.calls_to("chat.postMessage") if c.error == "ratelimited") == 2


def test_posts_into_one_channel_are_paced(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """Consecutive posts into the channel are spaced by the pacing interval."""
    for i in range(4):
        sandbox.add_task("prospect_search", f"Search {i}")
    harness = start_bot(sandbox, slack, database_url, post_interval=0.25)
    try:
        harness.poll()
    finally:
        harness.close()
    times = [c.at for c in slack.calls_to("chat.postMessage")]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.2, gaps


def test_announcements_are_in_creation_order(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Older tasks are posted first, so the channel reads in the order Lexi prepared the work."""
    late = sandbox.add_task("prospect_search", "late", created_at="2026-11-23T10:00:00Z")["id"]
    early = sandbox.add_task("prospect_search", "early", created_at="2026-11-23T08:00:00Z")["id"]
    bot.poll()
    assert _task_ids_posted(slack) == [early, late]
