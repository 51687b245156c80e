"""Issue 5: reminders with growing gaps, and expiry that says "expired — not decided" (with a controllable clock)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.reminders import reminder_due
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, BotHarness, start_bot

POLICY = """\
types:
  prospect_search:
    remind_after: 1h
    remind_max: 2
  list_operation:
    expire_after: 2d
  campaign_start:
    expire_after: 1d
    dismiss_on_expiry: true
  contact_update:
    remind_after: 2s
"""
HOUR = 3600.0


@pytest.fixture
def timed(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> Iterator[tuple[BotHarness, list[float]]]:
    """A bot with the policy above whose reminder clock the test moves."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY)
    harness = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path), LEXI_APPROVERS="UALICE")
    now = [time.time()]
    assert harness.runtime.poller.reminders is not None
    harness.runtime.poller.reminders.clock = lambda: now[0]
    try:
        yield harness, now
    finally:
        harness.close()


def _thread(bot: BotHarness, slack: SlackStandIn, task_id: str) -> list[str]:
    """The texts of the replies under a task's card."""
    ts = bot.store.get(task_id).message_ts
    return [m.text for m in slack.replies(CHANNEL, ts) if m.ts != ts]


def test_reminder_schedule_doubles_its_gaps() -> None:
    """Reminders fall due after T, 3T, 7T: each wait twice the one before."""
    assert [reminder_due(HOUR, n) / HOUR for n in range(4)] == [1, 3, 7, 15]


def test_waiting_tasks_are_reminded_with_growing_gaps_up_to_the_maximum(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A waiting search is re-surfaced in its thread, mentioning the approvers, at 1 h and 3 h, then no more."""
    bot, now = timed
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    bot.poll()
    start = bot.store.get(task_id).announced_at.timestamp()
    counts = []
    for hours in (0.5, 1.0, 2.0, 3.0, 8.0, 20.0):
        now[0] = start + hours * HOUR
        bot.poll()
        counts.append(len(_thread(bot, slack, task_id)))
    assert counts == [0, 1, 1, 2, 2, 2]
    assert all("<@UALICE>" in text and "Still waiting" in text for text in _thread(bot, slack, task_id))
    assert bot.store.count_audit("reminder", task_id=task_id) == 2


def test_reminders_under_a_minute_say_the_policys_own_duration(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """With `remind_after: 2s` the reminder and its audit say "after 2s", never a rounded-up minute."""
    bot, now = timed
    task_id = sandbox.add_task("contact_update", "Fix titles")["id"]
    bot.poll()
    now[0] = bot.store.get(task_id).announced_at.timestamp() + 2.4
    bot.poll()
    texts = _thread(bot, slack, task_id)
    assert len(texts) == 1 and "Still waiting for a decision after 2s —" in texts[0], texts
    details = [e["detail"] for e in bot.store.audit_events() if e["task_id"] == task_id and e["event"] == "reminder"]
    assert details == ["1 of 3 after 2s"]


def test_expired_tasks_say_so_and_are_not_dismissed_unless_configured(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Past its expiry a list operation's card says "expired — not decided"; LeadLex is not asked to dismiss it."""
    bot, now = timed
    task_id = sandbox.add_task("list_operation", "Merge lists", {"record_count": 10})["id"]
    bot.poll()
    now[0] += 2 * 24 * HOUR + 60
    bot.poll()
    card = json.dumps(slack.message(CHANNEL, bot.store.get(task_id).message_ts).blocks, ensure_ascii=False)
    assert "Expired — not decided" in card and "Dismissed" not in card and "lexi_approve" not in card
    assert sandbox.task(task_id)["status"] == "pending"
    assert sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/dismiss") == []
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    assert "expired" in slack.ephemerals_for("UALICE")[-1].text


def test_expiry_can_dismiss_in_leadlex_with_the_reason(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """When configured, an expired campaign is dismissed in LeadLex with the reason, and the card still says expired."""
    bot, now = timed
    task_id = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 50})["id"]
    bot.poll()
    now[0] += 24 * HOUR + 60
    bot.poll()
    assert sandbox.task(task_id)["status"] == "dismissed"
    assert "expired" in sandbox.task(task_id)["dismiss_reason"]
    card = json.dumps(slack.message(CHANNEL, bot.store.get(task_id).message_ts).blocks, ensure_ascii=False)
    assert "Expired — not decided" in card and "Dismissed by" not in card
    bot.poll()
    assert bot.store.get(task_id).state == "expired"  # the poller never turns it into "dismissed"
