"""Issue 3: the App Home — published when opened and after each decision, with buttons that decide."""

from __future__ import annotations

import json
from typing import Any

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks, modals
from tests.support.harness import BotHarness, start_bot


def _open_home(bot: BotHarness, user: str = "UALICE", tab: str = "home") -> None:
    """Open the app's Home (or Messages) tab as `user`: Slack sends a signed app_home_opened event."""
    envelope = payloads.build_app_home_opened(user=user, tab=tab)
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200


def _home(slack: SlackStandIn, user: str = "UALICE") -> str:
    """The user's published Home view, as JSON ("" before any)."""
    view = slack.home_views.get(user)
    return json.dumps(view, ensure_ascii=False) if view else ""


def _home_buttons(slack: SlackStandIn, user: str = "UALICE") -> dict[str, list[dict[str, Any]]]:
    """The Approve / Dismiss buttons in the user's Home, by task id."""
    view = slack.home_views.get(user) or {}
    actions = [b["elements"] for b in view.get("blocks", []) if b["type"] == "actions"]
    return {elements[0]["value"]: elements for elements in actions}


def _click_home(bot: BotHarness, action_id: str, task_id: str, user: str = "UALICE") -> None:
    """Click a button in the Home tab: the payload carries the view, not a channel message or response_url."""
    view = bot.slack.home_views[user]
    payload = payloads.build_block_action(
        action_id=action_id,
        value=task_id,
        user=user,
        trigger_id=bot.slack.new_trigger_id(user),
        container={"type": "view", "view_id": view["id"]},
    )
    for key in ("channel", "message", "response_url"):
        payload.pop(key)
    payload["view"] = view
    assert bot.post(*payloads.encode_interactive(payload)).status_code == 200


def _announce(bot: BotHarness, sandbox: Sandbox, description: str, **kwargs: Any) -> str:
    """Add a pending task in LeadLex and let the bot announce it; return its id."""
    task_id = sandbox.add_task(kwargs.pop("type_", "prospect_search"), description, **kwargs)["id"]
    bot.poll()
    return task_id


def test_opening_home_publishes_pending_tasks_decisions_and_status(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Opening Home shows the pending tasks newest first with buttons, the latest decisions and the status."""
    older = _announce(bot, sandbox, "Find CFOs", created_at="2026-01-01T10:00:00Z")
    newer = _announce(
        bot,
        sandbox,
        "Start campaign 'Q1'",
        type_="campaign_start",
        metadata={"contact_count": 1240},
        created_at="2026-01-01T11:00:00Z",
    )
    decided = _announce(bot, sandbox, "Find <!here> CTOs")
    bot.click(blocks.APPROVE_ACTION, decided, user="UBOB")
    bot.settle()
    _open_home(bot)
    bot.wait_for(lambda: _home(slack))
    home = _home(slack)
    assert list(_home_buttons(slack)) == [newer, older]
    assert "1,240 contacts" in _home_buttons(slack)[newer][0]["confirm"]["text"]["text"]
    assert "Waiting for a decision (2)" in home and "Pending tasks: 2" in home
    assert "✅ Approved by <@UBOB>" in home and "Find &lt;!here&gt; CTOs" in home and "<!here>" not in home
    assert "Last successful poll: just now" in home and "Slack connection: HTTP" in home


def test_opening_home_calls_no_leadlex(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """The Home is built from the database alone: opening it costs no LeadLex call."""
    _announce(bot, sandbox, "Find CFOs")
    sandbox.reset_calls()
    _open_home(bot, user="UDAVE")
    bot.wait_for(lambda: _home(slack, "UDAVE"))
    bot.settle()
    assert sandbox.calls == []


def test_opening_the_messages_tab_publishes_nothing(bot: BotHarness, slack: SlackStandIn) -> None:
    """An app_home_opened event for the Messages tab does not publish a Home view."""
    _open_home(bot, tab="messages")
    bot.settle()
    _open_home(bot, user="UBOB")
    bot.wait_for(lambda: _home(slack, "UBOB"))
    bot.settle()
    assert [c.args["user_id"] for c in slack.calls_to("views.publish")] == ["UBOB"]


def test_home_is_refreshed_after_a_decision_by_its_owner(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """After Alice approves on the channel card, her Home no longer offers the task and lists her decision."""
    task_id = _announce(bot, sandbox, "Find CFOs")
    _open_home(bot)
    bot.wait_for(lambda: task_id in _home_buttons(slack))
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    home = _home(slack)
    assert _home_buttons(slack) == {} and "Nothing is waiting." in home
    assert "✅ Approved by <@UALICE>" in home


def test_home_is_refreshed_after_a_decision_by_command(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A decision made with /lexi dismiss also re-publishes the decider's Home, with the reason."""
    task_id = _announce(bot, sandbox, "Find CFOs")
    bot.command(f"dismiss {task_id} not_relevant", user="UCAROL")
    bot.settle()
    home = _home(slack, "UCAROL")
    assert "🚫 Dismissed by <@UCAROL>" in home and "Reason: Not relevant" in home


def test_home_buttons_approve_and_dismiss_through_the_card_listeners(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Approve in Home decides and updates the card; Dismiss in Home opens the reason form that dismisses."""
    approve_id = _announce(bot, sandbox, "Find CFOs")
    dismiss_id = _announce(bot, sandbox, "Find CTOs")
    _open_home(bot)
    bot.wait_for(lambda: len(_home_buttons(slack)) == 2)
    _click_home(bot, blocks.APPROVE_ACTION, approve_id)
    bot.settle()
    assert sandbox.task(approve_id)["status"] == "approved"
    assert list(_home_buttons(slack)) == [dismiss_id]
    _click_home(bot, blocks.DISMISS_ACTION, dismiss_id)
    bot.wait_for(lambda: slack.views)
    (opened,) = slack.views
    submission = payloads.build_view_submission(
        callback_id=modals.DISMISS_MODAL,
        private_metadata=opened.view["private_metadata"],
        values={
            modals.REASON_BLOCK: {
                modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": {"value": "not_relevant"}}
            }
        },
    )
    assert bot.post(*payloads.encode_interactive(submission)).status_code == 200
    bot.settle()
    assert sandbox.task(dismiss_id)["dismiss_reason"] == "not_relevant"
    assert _home_buttons(slack) == {} and "🚫 Dismissed by <@UALICE>" in _home(slack)


def test_home_of_a_non_approver_has_no_buttons(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """With LEXI_APPROVERS set, someone else's Home lists the tasks without buttons and names who decides."""
    harness = start_bot(sandbox, slack, database_url, LEXI_APPROVERS="UCAROL")
    try:
        _announce(harness, sandbox, "Find CFOs")
        _open_home(harness, user="UBOB")
        harness.wait_for(lambda: _home(slack, "UBOB"))
        assert _home_buttons(slack, "UBOB") == {} and "Only <@UCAROL>" in _home(slack, "UBOB")
        _open_home(harness, user="UCAROL")
        assert len(harness.wait_for(lambda: _home_buttons(slack, "UCAROL"))) == 1
        assert "Only <@UCAROL>" not in _home(slack, "UCAROL")
    finally:
        harness.close()


def test_home_with_many_tasks_stays_within_slacks_limit(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Sixty pending tasks and a dozen decisions fit in 100 blocks, with a visible count of what is cut."""
    ids = [sandbox.add_task("campaign_start", f"Campaign {i}", {"contact_count": 200 + i})["id"] for i in range(72)]
    bot.poll()
    for task_id in ids[:12]:
        bot.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
    bot.settle()
    _open_home(bot)
    bot.wait_for(lambda: _home(slack))
    view = slack.home_views["UALICE"]
    assert len(view["blocks"]) <= 100
    assert "…and 40 older not shown here" in _home(slack)
    assert _home(slack).count("✅ Approved by <@UBOB>") == 10


def test_open_homes_follow_every_decision_and_change_in_leadlex(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Bob's open Home shows Alice's decision, and a decision made in the LeadLex dashboard, without reopening."""
    clicked = _announce(bot, sandbox, "Find CFOs in Lisbon")
    outside = _announce(bot, sandbox, "Find CTOs in Porto")
    _open_home(bot, user="UBOB")  # Bolt acks events before the listener runs: wait for the publish itself
    bot.wait_for(lambda: "Find CFOs in Lisbon" in _home(slack, "UBOB"))
    bot.click(blocks.APPROVE_ACTION, clicked, user="UALICE")
    bot.settle()
    assert "<@UALICE>" in _home(slack, "UBOB")  # the decision list names Alice
    before = len([c for c in slack.calls_to("views.publish") if c.args.get("user_id") == "UBOB"])
    sandbox.set_status(outside, "dismissed")
    bot.poll()
    bot.settle()
    after = [c for c in slack.calls_to("views.publish") if c.args.get("user_id") == "UBOB"]
    published = _home(slack, "UBOB")
    assert len(after) > before and "Dismissed in LeadLex" in published
    assert published.count("Find CTOs in Porto") == 1  # listed among the decisions, no longer as pending


def test_a_burst_of_decisions_by_one_person_publishes_their_home_once(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Four approvals in quick succession re-publish the decider's Home once, showing all four (not once each)."""
    task_ids = [_announce(bot, sandbox, f"Find CFOs {n}") for n in range(4)]
    for task_id in task_ids:
        bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    publishes = [call for call in slack.calls_to("views.publish") if call.args.get("user_id") == "UALICE"]
    assert len(publishes) == 1
    assert _home(slack, "UALICE").count("Approved by <@UALICE>") == 4
