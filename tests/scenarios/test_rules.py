"""Issue 5: quorum (distinct approvers, concurrent clicks) and auto-approval rules with a daily cap."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, BotHarness, start_bot

POLICY = """\
auto_approve_daily_cap: 2
types:
  prospect_search:
    auto_approve: {name: small-searches, max_count: 50}
    confirm_above: 100
  campaign_start:
    quorum:
      - above: 500
        approvals: 2
  contact_update:
    confirm_above: 100
"""


@pytest.fixture
def ruled(sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path) -> Iterator[BotHarness]:
    """A bot with the rules above."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY)
    harness = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
    try:
        yield harness
    finally:
        harness.close()


def _card(bot: BotHarness, slack: SlackStandIn, task_id: str) -> str:
    """A task's card as JSON text."""
    return json.dumps(slack.message(CHANNEL, bot.store.get(task_id).message_ts).blocks, ensure_ascii=False)


def _approve_calls(sandbox: Sandbox, task_id: str) -> int:
    """Approve calls LeadLex received for a task."""
    return len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve"))


def test_small_searches_are_auto_approved_and_still_announced(
    ruled: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A search within the rule's limit is announced, then approved by the rule, and the card says so."""
    small = sandbox.add_task("prospect_search", "Find 25 CFOs", {"per_page": 25})["id"]
    large = sandbox.add_task("prospect_search", "Find 200 CFOs", {"per_page": 200})["id"]
    ruled.poll()
    assert sandbox.task(small)["status"] == "approved" and _approve_calls(sandbox, small) == 1
    assert "Auto-approved by rule *small-searches*" in _card(ruled, slack, small)
    assert sandbox.task(large)["status"] == "pending" and "lexi_approve" in _card(ruled, slack, large)
    (decided,) = [e for e in ruled.store.audit_events() if e["task_id"] == small and e["event"] == "decided"]
    assert decided["surface"] == "rule" and decided["actor"] == "rule:small-searches"


def test_daily_cap_stops_a_runaway_loop(ruled: BotHarness, sandbox: Sandbox) -> None:
    """Past the day's cap of auto-approvals, tasks wait for people, and the trail says why."""
    ids = [sandbox.add_task("prospect_search", f"Find {i}", {"per_page": 10})["id"] for i in range(3)]
    ruled.poll()
    assert [sandbox.task(i)["status"] for i in ids].count("approved") == 2
    assert ruled.store.count_audit("auto_approve_capped") == 1


def test_quorum_needs_distinct_approvers(ruled: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A large campaign needs two people: one approval shows on the card, the same person twice does not count."""
    task_id = sandbox.add_task("campaign_start", "Start 'Win-back'", {"contact_count": 1200})["id"]
    ruled.poll()
    ruled.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    ruled.settle()
    assert _approve_calls(sandbox, task_id) == 0
    assert "1 of 2 approvals: <@UALICE>" in _card(ruled, slack, task_id)
    assert "1 of 2" in slack.ephemerals_for("UALICE")[-1].text
    ruled.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    ruled.settle()
    assert _approve_calls(sandbox, task_id) == 0
    assert "already approved" in slack.ephemerals_for("UALICE")[-1].text
    ruled.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
    ruled.settle()
    assert _approve_calls(sandbox, task_id) == 1
    assert "Approved by <@UBOB> (with <@UALICE>)" in _card(ruled, slack, task_id)


def test_small_campaigns_need_one_approval(ruled: BotHarness, sandbox: Sandbox) -> None:
    """Below the quorum's threshold one approval is enough."""
    task_id = sandbox.add_task("campaign_start", "Start 'Pilot'", {"contact_count": 120})["id"]
    ruled.poll()
    ruled.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    ruled.settle()
    assert sandbox.task(task_id)["status"] == "approved"


def test_concurrent_approvers_complete_the_quorum_with_one_call(ruled: BotHarness, sandbox: Sandbox) -> None:
    """Two approvers clicking at the same moment both count, and LeadLex gets exactly one call."""
    task_id = sandbox.add_task("campaign_start", "Start 'Win-back'", {"contact_count": 1200})["id"]
    ruled.poll()
    barrier = threading.Barrier(4)

    def click(user: str) -> None:
        barrier.wait(timeout=10)
        ruled.click(blocks.APPROVE_ACTION, task_id, user=user)

    threads = [threading.Thread(target=click, args=(u,)) for u in ("UALICE", "UBOB", "UALICE", "UBOB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    ruled.settle()
    assert _approve_calls(sandbox, task_id) == 1
    assert sandbox.task(task_id)["status"] == "approved"


def test_a_dismissal_ends_a_quorum_in_progress(ruled: BotHarness, sandbox: Sandbox) -> None:
    """One approval of two, then an allowed person dismisses by command: the task is dismissed."""
    task_id = sandbox.add_task("campaign_start", "Start 'Win-back'", {"contact_count": 1200})["id"]
    ruled.poll()
    ruled.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    ruled.settle()
    ruled.command(f"dismiss {task_id} duplicate", user="UCAROL")
    ruled.settle()
    assert sandbox.task(task_id)["status"] == "dismissed" and _approve_calls(sandbox, task_id) == 0


def test_bulk_safety_confirms_only_above_the_policy_size(
    ruled: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Contact updates within the size approve in one click; larger ones ask first, with the count."""
    small = sandbox.add_task("contact_update", "Tag 40 contacts", {"contact_count": 40})["id"]
    large = sandbox.add_task("contact_update", "Tag 4000 contacts", {"contact_count": 4000})["id"]
    ruled.poll()

    def approve_button(task_id: str) -> dict:
        message = slack.message(CHANNEL, ruled.store.get(task_id).message_ts)
        actions = next(b for b in message.blocks if b["type"] == "actions")
        return actions["elements"][0]

    assert "confirm" not in approve_button(small)
    assert "4,000 contacts" in approve_button(large)["confirm"]["text"]["text"]


def test_bulk_safety_applies_to_prospect_searches_too(ruled: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """`confirm_above` works for every type: a search for more results than the size asks first, with the count."""
    within = sandbox.add_task("prospect_search", "Find 80 CFOs", {"per_page": 80})["id"]
    above = sandbox.add_task("prospect_search", "Find 200 CFOs", {"per_page": 200})["id"]
    ruled.poll()

    def approve_button(task_id: str) -> dict:
        message = slack.message(CHANNEL, ruled.store.get(task_id).message_ts)
        actions = next(b for b in message.blocks if b["type"] == "actions")
        return actions["elements"][0]

    assert "confirm" not in approve_button(within)
    confirm = approve_button(above)["confirm"]
    assert "200 results" in confirm["text"]["text"] and "100" in confirm["text"]["text"], confirm


def test_bulk_safety_is_the_same_in_task_lists_and_the_home_tab(
    ruled: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """`/lexi tasks` and the Home tab ask for confirmation exactly where the card does: by the policy's size."""
    small = sandbox.add_task("contact_update", "Tag 40 contacts", {"contact_count": 40})["id"]
    search = sandbox.add_task("prospect_search", "Find 200 CFOs", {"per_page": 200})["id"]
    ruled.poll()
    before = len(slack.responses)
    assert ruled.command("tasks", user="UALICE").status_code == 200
    ruled.settle()
    (answer,) = [r.body for r in slack.responses[before:]]
    listed = {b["elements"][0]["value"]: b["elements"][0] for b in answer["blocks"] if b["type"] == "actions"}
    envelope = payloads.build_app_home_opened(user="UALICE", tab="home")
    assert ruled.post(*payloads.encode_event(envelope)).status_code == 200
    ruled.wait_for(lambda: slack.home_views.get("UALICE"))
    ruled.settle()
    view = slack.home_views["UALICE"]
    home = {b["elements"][0]["value"]: b["elements"][0] for b in view["blocks"] if b["type"] == "actions"}
    for approve in (listed, home):
        assert "confirm" not in approve[small], approve[small]
        assert "200 results" in approve[search]["confirm"]["text"]["text"]


def test_completing_approval_and_a_dismissal_at_once_make_one_leadlex_call(ruled: BotHarness, sandbox: Sandbox) -> None:
    """The approval that completes a quorum and a dismissal arrive together: exactly one of them reaches LeadLex."""
    task_id = sandbox.add_task("campaign_start", "Start 'Win-back'", {"contact_count": 1200})["id"]
    ruled.poll()
    ruled.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    ruled.settle()
    sandbox.latency = 0.2
    barrier = threading.Barrier(2)

    def approve() -> None:
        barrier.wait(timeout=10)
        ruled.click(blocks.APPROVE_ACTION, task_id, user="UBOB")

    def dismiss() -> None:
        barrier.wait(timeout=10)
        ruled.command(f"dismiss {task_id} duplicate", user="UCAROL")

    threads = [threading.Thread(target=approve), threading.Thread(target=dismiss)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    ruled.settle()
    sandbox.latency = 0.0
    decisions = _approve_calls(sandbox, task_id) + len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/dismiss"))
    assert decisions == 1
    assert ruled.store.get(task_id).state == sandbox.task(task_id)["status"]
