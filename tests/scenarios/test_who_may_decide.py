"""Issue 11: who may decide — by default the task's channel members, on every surface, quorums and claims included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks, modals
from tests.support.harness import CHANNEL, BotHarness, start_bot

#: Alice, Bob and Carol are in the approval channel; Dave is in the workspace but not in the channel.
MEMBERS = ["UBOT", "UALICE", "UBOB", "UCAROL"]


@pytest.fixture
def bot(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[BotHarness]:
    """A bot with no LEXI_APPROVERS and no policy, whose channel has the members above."""
    slack.set_members(CHANNEL, MEMBERS)
    harness = start_bot(sandbox, slack, database_url)
    try:
        yield harness
    finally:
        harness.close()


def _policy_bot(sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path, policy: str) -> BotHarness:
    """A bot running `policy`, with the channel members above."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(policy)
    slack.set_members(CHANNEL, MEMBERS)
    return start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))


def _announce(bot: BotHarness, sandbox: Sandbox, type_: str = "prospect_search", **metadata: Any) -> str:
    """Add a pending task in LeadLex and let the bot announce it; return its id."""
    task_id = sandbox.add_task(type_, f"A {type_}", metadata or None)["id"]
    bot.poll()
    assert bot.store.get(task_id).state == "pending"
    return task_id


def _decisions(sandbox: Sandbox, task_id: str) -> int:
    """Approve and dismiss calls LeadLex received for a task."""
    return sum(len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/{verb}")) for verb in ("approve", "dismiss"))


def _said_to(slack: SlackStandIn, user: str) -> str:
    """Everything said privately to `user` (ephemerals) or through response URLs, as one string."""
    ephemerals = [e.text for e in slack.ephemerals_for(user)]
    return json.dumps([ephemerals, [r.body for r in slack.responses]], ensure_ascii=False)


def _run(bot: BotHarness, text: str, user: str) -> list[dict[str, Any]]:
    """Run `/lexi <text>` as `user` and return the answers it sent."""
    before = len(bot.slack.responses)
    assert bot.command(text, user=user).status_code == 200
    bot.settle()
    return [r.body for r in bot.slack.responses[before:]]


def _buttons(blocks_: list[dict[str, Any]]) -> set[str]:
    """The task ids that have Approve / Dismiss buttons in these blocks."""
    return {b["elements"][0]["value"] for b in blocks_ if b["type"] == "actions"}


def _member_event(kind: str, user: str, channel: str = CHANNEL) -> tuple[bytes, str]:
    """A signed-to-be member_joined_channel / member_left_channel event."""
    return payloads.encode_event(
        {
            "token": "x",
            "team_id": "T0001",
            "api_app_id": "A0LEXI",
            "type": "event_callback",
            "event_id": f"Ev{kind}{user}",
            "event_time": 1,
            "event": {"type": kind, "user": user, "channel": channel, "channel_type": "C", "team": "T0001"},
        }
    )


def _submit_dismiss(bot: BotHarness, task_id: str, user: str, channel: str = CHANNEL) -> None:
    """Submit the dismiss form for `task_id` as `user`, as a forged or replayed view_submission would."""
    submission = payloads.build_view_submission(
        callback_id=modals.DISMISS_MODAL,
        private_metadata=json.dumps({"task_id": task_id, "channel": channel}),
        user=user,
        values={
            modals.REASON_BLOCK: {
                modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": {"value": "duplicate"}}
            }
        },
    )
    assert bot.post(*payloads.encode_interactive(submission)).status_code == 200
    bot.settle()


# --- the default is the channel, not the workspace -------------------------------------------------


def test_by_default_only_the_channels_members_may_click_approve(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Someone in the workspace but not in the task's channel is refused at the card; a member approves."""
    task_id = _announce(bot, sandbox)
    bot.click(blocks.APPROVE_ACTION, task_id, user="UDAVE")
    bot.settle()
    assert _decisions(sandbox, task_id) == 0 and bot.store.get(task_id).state == "pending"
    assert f"Only members of <#{CHANNEL}> can approve prospect search tasks" in _said_to(slack, "UDAVE")
    bot.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"


def test_by_default_a_non_member_cannot_decide_by_command(bot: BotHarness, sandbox: Sandbox) -> None:
    """`/lexi approve|dismiss <id>` from a DM by a non-member is refused, whether or not the task has a card yet."""
    announced = _announce(bot, sandbox)
    unannounced = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 20_000})["id"]
    for text in (f"approve {announced}", f"dismiss {announced}", f"approve {unannounced}"):
        (answer,) = _run(bot, text, user="UDAVE")
        assert f"members of <#{CHANNEL}>" in answer["text"], text
    assert _decisions(sandbox, announced) == 0 and _decisions(sandbox, unannounced) == 0
    assert bot.store.get(unannounced) is None  # a refused person does not get it announced either


def test_task_lists_and_home_give_buttons_only_to_channel_members(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """`/lexi tasks` and the Home tab show a non-member the tasks without buttons, and say who may decide."""
    task_id = _announce(bot, sandbox)
    (outsider,) = _run(bot, "tasks", user="UDAVE")
    (member,) = _run(bot, "tasks", user="UALICE")
    assert _buttons(outsider["blocks"]) == set() and f"members of <#{CHANNEL}>" in json.dumps(outsider)
    assert _buttons(member["blocks"]) == {task_id}
    for user in ("UDAVE", "UALICE"):
        envelope = payloads.build_app_home_opened(user=user)
        assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()
    assert _buttons(slack.home_views["UDAVE"]["blocks"]) == set()
    assert f"members of <#{CHANNEL}>" in json.dumps(slack.home_views["UDAVE"])
    assert _buttons(slack.home_views["UALICE"]["blocks"]) == {task_id}


def test_dismiss_form_is_checked_when_opened_and_when_submitted(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A non-member gets no dismiss form, and a forged submission naming the task dismisses nothing."""
    task_id = _announce(bot, sandbox)
    bot.click(blocks.DISMISS_ACTION, task_id, user="UDAVE")
    bot.wait_for(lambda: "can dismiss" in _said_to(slack, "UDAVE"))
    assert slack.views == []
    _submit_dismiss(bot, task_id, user="UDAVE", channel="C0ELSEWHERE")
    assert _decisions(sandbox, task_id) == 0 and bot.store.get(task_id).state == "pending"
    refused = [e for e in bot.store.audit_events() if e["event"] == "refused" and e["actor"] == "UDAVE"]
    assert len(refused) == 2


def test_channel_membership_is_cached_and_refreshed_by_member_events(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Joining the channel lets Dave decide once Slack says so (member_joined_channel), not before."""
    task_id = _announce(bot, sandbox)
    bot.click(blocks.APPROVE_ACTION, task_id, user="UDAVE")
    bot.settle()
    slack.set_members(CHANNEL, [*MEMBERS, "UDAVE"])
    bot.click(blocks.APPROVE_ACTION, task_id, user="UDAVE")
    bot.settle()
    assert _decisions(sandbox, task_id) == 0  # still cached
    assert bot.post(*_member_event("member_joined_channel", "UDAVE")).status_code == 200
    bot.settle()
    bot.click(blocks.APPROVE_ACTION, task_id, user="UDAVE")
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"


def test_when_slack_cannot_list_the_channel_nobody_decides_and_is_told_why(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """conversations.members failing closes the door, with a private answer distinct from a refusal."""
    task_id = _announce(bot, sandbox)
    slack.fail_next("conversations.members", "missing_scope")
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    assert _decisions(sandbox, task_id) == 0
    (told,) = slack.ephemerals_for("UALICE")
    assert told.text == (
        f"I could not check who may decide: Slack did not list the members of <#{CHANNEL}> "
        "(missing_scope). Try again in a moment."
    )
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")  # Slack answers again: Alice approves
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"


# --- a quorum counts only people who may still approve ----------------------------------------------

QUORUM = """\
types:
  campaign_start:
    quorum: 2
"""


def test_a_quorum_counts_only_people_who_are_still_in_the_channel(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Alice approves, then leaves the channel: Bob's approval is 1 of 2, not the second; Carol's completes it."""
    harness = _policy_bot(sandbox, slack, database_url, tmp_path, QUORUM)
    try:
        task_id = _announce(harness, sandbox, "campaign_start", contact_count=1200)
        harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
        harness.settle()
        slack.set_members(CHANNEL, ["UBOT", "UBOB", "UCAROL"])  # no member event: the completion asks Slack afresh
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        assert _decisions(sandbox, task_id) == 0 and harness.store.get(task_id).state == "pending"
        card = json.dumps(slack.message(CHANNEL, harness.store.get(task_id).message_ts).blocks)
        assert "1 of 2 approvals: <@UBOB>" in card and "UALICE" not in card
        assert "1 of 2" in slack.ephemerals_for("UBOB")[-1].text
        harness.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")
        harness.settle()
        assert sandbox.task(task_id)["status"] == "approved"
        assert "Approved by <@UCAROL> (with <@UBOB>)" in json.dumps(
            slack.message(CHANNEL, harness.store.get(task_id).message_ts).blocks
        )
    finally:
        harness.close()


def test_a_quorum_does_not_complete_when_slack_cannot_say_who_may_still_approve(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """If the completion check cannot list the channel, the task waits (approvals kept) and the clicker is told."""
    harness = _policy_bot(sandbox, slack, database_url, tmp_path, QUORUM)
    try:
        task_id = _announce(harness, sandbox, "campaign_start", contact_count=1200)
        harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
        harness.settle()
        slack.fail_next("conversations.members", "internal_error")
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        assert _decisions(sandbox, task_id) == 0
        assert "I could not check who may approve" in slack.ephemerals_for("UBOB")[-1].text
        assert harness.store.get(task_id).approvals["by"] == ["UALICE", "UBOB"]
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")  # Slack answers again: the quorum completes
        harness.settle()
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        harness.close()


def test_a_quorum_counts_only_people_still_in_the_approver_group(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """An approval by someone later removed from the approver group does not complete the quorum."""
    policy = "defaults:\n  approvers: [S0LEADS]\n" + QUORUM
    slack.set_usergroup("S0LEADS", ["UALICE", "UBOB", "UCAROL"])
    harness = _policy_bot(sandbox, slack, database_url, tmp_path, policy)
    try:
        task_id = _announce(harness, sandbox, "campaign_start", contact_count=1200)
        harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
        harness.settle()
        slack.set_usergroup("S0LEADS", ["UBOB", "UCAROL"])
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.settle()
        assert _decisions(sandbox, task_id) == 0
        assert harness.store.get(task_id).approvals["by"] == ["UBOB"]
        harness.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")
        harness.settle()
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        harness.close()


def test_a_membership_not_known_at_the_click_is_checked_before_the_task_is_claimed(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Before the ack only what the bot already knows can claim a task.

    A group Slack must be asked about is asked after the ack, and the task stays pending until it answers; once
    known, the next click claims before its ack.
    """
    slack.set_usergroup("S0LEADS", ["UALICE"])
    harness = _policy_bot(sandbox, slack, database_url, tmp_path, "defaults:\n  approvers: [S0LEADS]\n")
    try:
        first = _announce(harness, sandbox)
        release = slack.hold_next("usergroups.users.list")
        try:
            assert harness.click(blocks.APPROVE_ACTION, first, user="UALICE").status_code == 200
            slack.wait_held()
            assert harness.store.get(first).state == "pending" and _decisions(sandbox, first) == 0
        finally:
            release.set()
        harness.settle()
        assert sandbox.task(first)["status"] == "approved"

        second = _announce(harness, sandbox)
        asked = len([c for c in slack.calls if c.method == "usergroups.users.list"])
        assert harness.click(blocks.APPROVE_ACTION, second, user="UALICE").status_code == 200
        assert harness.store.get(second).state != "pending"  # claimed by the write before the ack
        harness.settle()
        assert sandbox.task(second)["status"] == "approved" and _decisions(sandbox, second) == 1
        assert len([c for c in slack.calls if c.method == "usergroups.users.list"]) == asked
    finally:
        harness.close()


# --- permissions are checked against the task actually claimed --------------------------------------

TYPED = """\
defaults:
  approvers: [channel_members]
types:
  campaign_start:
    approvers: [UCAROL]
"""


def test_a_task_recorded_after_the_check_is_not_claimed_on_a_guess(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """A click on a task the bot had no record of is not decided once the record appears mid-check."""
    harness = _policy_bot(sandbox, slack, database_url, tmp_path, TYPED)
    try:
        task_id = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 20_000})["id"]
        release = slack.hold_next("conversations.members")
        harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")  # Alice may approve other types only
        # Either the check asks Slack (and is held there), or the bot answers at once that it has no record.
        harness.wait_for(
            lambda: (
                any(c.method == "conversations.members" for c in slack.calls)
                or "no record" in _said_to(slack, "UALICE")
            )
        )
        harness.poll()  # meanwhile the task is announced: its record appears, pending
        release.set()
        harness.settle()
        assert _decisions(sandbox, task_id) == 0
        assert harness.store.get(task_id).state == "pending" and sandbox.task(task_id)["status"] == "pending"
    finally:
        harness.close()


def test_a_type_approver_cannot_decide_another_type_by_command(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """`/lexi approve` checks the task's own type before anything happens, even before it has a card."""
    harness = _policy_bot(sandbox, slack, database_url, tmp_path, TYPED)
    try:
        task_id = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 20_000})["id"]
        (answer,) = _run(harness, f"approve {task_id}", user="UALICE")
        assert answer["text"] == "Only <@UCAROL> can approve campaign start tasks. Ask one of them."
        assert _decisions(sandbox, task_id) == 0 and harness.store.get(task_id) is None
        (answer,) = _run(harness, f"approve {task_id}", user="UCAROL")
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        harness.close()


def test_a_restored_card_of_unknown_type_needs_someone_who_may_decide_every_type(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """A card rebuilt from the channel before LeadLex said what it is cannot be approved under the loosest rule."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(TYPED)
    slack.set_members(CHANNEL, MEMBERS)
    task_id = sandbox.add_task("campaign_start", "Start 'Q1'", {"contact_count": 20_000})["id"]
    first = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'lost.db'}", LEXI_POLICY_FILE=str(path))
    try:
        first.poll()
    finally:
        first.close()
    (tmp_path / "lost.db").unlink()  # the database is lost; the card is still in the channel
    second = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'new.db'}", LEXI_POLICY_FILE=str(path))
    try:
        sandbox.fail_next("GET", "/v1/lexi/tasks", status=401, code="invalid_api_key")
        second.poll()  # the card is restored, but LeadLex does not list the tasks: its type stays unknown
        assert second.store.get(task_id).task.type == "unknown"
        second.click(blocks.APPROVE_ACTION, task_id, user="UALICE")  # Alice may approve other types only
        second.settle()
        assert _decisions(sandbox, task_id) == 0
        assert "do not know this task's type yet" in _said_to(slack, "UALICE")
        second.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")  # Carol may approve every type
        second.settle()
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        second.close()


def test_clicks_that_miss_the_membership_cache_together_ask_slack_once(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Five clicks arriving while the channel's members are being read wait for that one answer, then all decide."""
    task_ids = [sandbox.add_task("prospect_search", f"Find CFOs {n}")["id"] for n in range(5)]
    bot.poll()
    before = sum(1 for call in slack.calls if call.method == "conversations.members")
    release = slack.hold_next("conversations.members")
    bot.click(blocks.APPROVE_ACTION, task_ids[0], user="UALICE")
    slack.wait_held()  # the first check is asking Slack
    for task_id in task_ids[1:]:
        bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    release.set()
    bot.settle()
    assert sum(1 for call in slack.calls if call.method == "conversations.members") - before == 1
    assert [sandbox.task(task_id)["status"] for task_id in task_ids] == ["approved"] * 5


def test_clicks_waiting_for_a_membership_slack_refuses_are_all_refused(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """When the one read of the channel's members fails, every click that waited for it fails closed too."""
    task_ids = [sandbox.add_task("prospect_search", f"Find CFOs {n}")["id"] for n in range(3)]
    bot.poll()
    slack.fail_next("conversations.members", "internal_error")
    release = slack.hold_next("conversations.members")
    bot.click(blocks.APPROVE_ACTION, task_ids[0], user="UALICE")
    slack.wait_held()
    for task_id in task_ids[1:]:
        bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    release.set()
    bot.settle()
    assert [sandbox.task(task_id)["status"] for task_id in task_ids] == ["pending"] * 3
    assert sum(1 for call in slack.calls if call.method == "conversations.members") == 1
