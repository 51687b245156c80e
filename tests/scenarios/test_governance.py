"""Issue 5: who may decide what (users, user groups, channel members) and where each type is announced."""

from __future__ import annotations

from pathlib import Path

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import BotHarness, start_bot

POLICY = """\
defaults:
  approvers: [S0LEADS]
  dismissers: [channel_members]
types:
  campaign_start:
    channel: C0CAMPAIGN
    approvers: [UCAROL]
"""


def _bot(sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path) -> BotHarness:
    """A bot running the policy above; Alice leads sales, Bob and Carol are in the channel, Dave is not."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY)
    slack.add_channel("C0CAMPAIGN", "campaign-approvals")
    slack.set_usergroup("S0LEADS", ["UALICE"])
    slack.set_members("C0LEXI", ["UBOT", "UALICE", "UBOB", "UCAROL"])
    return start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))


def _approve_calls(sandbox: Sandbox, task_id: str) -> int:
    """How many approve calls LeadLex received for a task."""
    return len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve"))


def test_each_type_is_announced_in_its_channel(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Campaign starts go to their own channel; other types to the default one."""
    harness = _bot(sandbox, slack, database_url, tmp_path)
    try:
        search = sandbox.add_task("prospect_search", "Find CFOs")["id"]
        campaign = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 200})["id"]
        harness.poll()
        assert harness.store.get(search).channel == "C0LEXI"
        assert harness.store.get(campaign).channel == "C0CAMPAIGN"
        assert [m.metadata["event_payload"]["task_id"] for m in slack.messages("C0CAMPAIGN")] == [campaign]
    finally:
        harness.close()


def test_user_group_members_may_approve_and_others_are_told_who_may(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """A user-group approver approves; a channel member outside the group is told, privately, who may."""
    harness = _bot(sandbox, slack, database_url, tmp_path)
    try:
        task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
        harness.poll()
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        assert _approve_calls(sandbox, task_id) == 0
        (told,) = slack.ephemerals_for("UBOB")
        assert "Only members of <!subteam^S0LEADS> can approve" in told.text
        harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
        harness.settle()
        assert _approve_calls(sandbox, task_id) == 1
        assert any(e["event"] == "refused" and e["actor"] == "UBOB" for e in harness.store.audit_events())
    finally:
        harness.close()


def test_channel_members_may_dismiss_under_their_own_rule(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Dismissers may be 'members of the channel', a different rule from the approvers'."""
    harness = _bot(sandbox, slack, database_url, tmp_path)
    try:
        task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
        harness.poll()
        harness.click(blocks.DISMISS_ACTION, task_id, user="UBOB")  # Bob may dismiss: the modal opens
        harness.wait_for(lambda: slack.views)
        harness.click(blocks.DISMISS_ACTION, task_id, user="UDAVE")  # Dave is not in the channel
        # An ephemeral cannot reach someone outside the channel: the answer comes through the response URL.
        told = harness.wait_for(lambda: [r for r in slack.responses if "can dismiss" in str(r.body)])
        assert "members of <#C0LEXI> can dismiss" in told[0].body["text"]
        assert len(slack.views) == 1
    finally:
        harness.close()


def test_type_rules_override_the_defaults(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Only Carol approves campaign starts, even though Alice approves everything else."""
    harness = _bot(sandbox, slack, database_url, tmp_path)
    try:
        campaign = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 200})["id"]
        harness.poll()
        harness.click(blocks.APPROVE_ACTION, campaign, user="UALICE")
        harness.settle()
        assert _approve_calls(sandbox, campaign) == 0
        assert "Only <@UCAROL> can approve campaign start tasks" in slack.ephemerals_for("UALICE")[0].text
        harness.click(blocks.APPROVE_ACTION, campaign, user="UCAROL")
        harness.settle()
        assert _approve_calls(sandbox, campaign) == 1
    finally:
        harness.close()


def test_group_changes_apply_after_slack_says_so(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Memberships are cached, and a subteam_members_changed event makes the next check ask Slack again."""
    harness = _bot(sandbox, slack, database_url, tmp_path)
    try:
        task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
        harness.poll()
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        slack.set_usergroup("S0LEADS", ["UALICE", "UBOB"])  # Bob joins the group
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        assert _approve_calls(sandbox, task_id) == 0  # still cached
        event = {
            "token": "x",
            "team_id": "T0001",
            "api_app_id": "A0LEXI",
            "type": "event_callback",
            "event_id": "Ev1",
            "event_time": 1,
            "event": {"type": "subteam_members_changed", "subteam_id": "S0LEADS"},
        }
        assert harness.post(*payloads.encode_event(event)).status_code == 200
        harness.settle()
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        assert _approve_calls(sandbox, task_id) == 1
    finally:
        harness.close()


def test_membership_checks_fail_closed(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """When Slack cannot say who is in the group, nobody outside the named users may decide."""
    harness = _bot(sandbox, slack, database_url, tmp_path)
    try:
        task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
        harness.poll()
        slack.fail_next("usergroups.users.list", "missing_scope")
        harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
        harness.settle()
        assert _approve_calls(sandbox, task_id) == 0
    finally:
        harness.close()
