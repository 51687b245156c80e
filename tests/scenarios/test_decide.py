"""Behaviours 3 and 4: decide with one click, exactly once, and keep the card true to LeadLex."""

from __future__ import annotations

import json
import threading

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.models import read_task
from bot.slack import blocks, modals
from bot.slack.messenger import Messenger
from tests.support.harness import CHANNEL, BotHarness


def _announce(bot: BotHarness, sandbox: Sandbox, type_: str = "prospect_search", **kwargs: object) -> str:
    """Add a pending task in LeadLex and let the bot announce it; return its id."""
    task_id = sandbox.add_task(type_, "Find VPs of Sales in fintech", **kwargs)["id"]
    bot.poll()
    assert bot.store.get(task_id).message_ts is not None
    return task_id


def _card(bot: BotHarness, slack: SlackStandIn, task_id: str) -> tuple[str, list[dict]]:
    """The current text of a task's card as JSON, and its blocks."""
    message = slack.message(CHANNEL, bot.store.get(task_id).message_ts)
    return json.dumps(message.blocks, ensure_ascii=False), message.blocks


def _has_buttons(card_blocks: list[dict]) -> bool:
    """Whether a card still offers Approve / Dismiss."""
    return any(b["type"] == "actions" for b in card_blocks)


def _approve_calls(sandbox: Sandbox, task_id: str) -> int:
    """How many approve requests LeadLex received for a task."""
    return len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve"))


def test_approve_updates_the_card_in_place(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Approve calls LeadLex once and rewrites the same message: buttons gone, who and when shown."""
    task_id = _announce(bot, sandbox)
    response = bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    assert response.status_code == 200
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    assert _approve_calls(sandbox, task_id) == 1
    text, card = _card(bot, slack, task_id)
    assert not _has_buttons(card)
    assert "Approved by <@UALICE>" in text and "<!date^" in text
    assert len(slack.messages(CHANNEL)) == 1  # updated, not reposted


def test_a_late_card_update_never_leaves_the_card_behind(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A card update from a record older than the card shows (late, here or in another replica) ends on the newest."""
    task_id = _announce(bot, sandbox)
    won, claimed = bot.store.claim_decision(task_id, actor="UALICE", action="approve", surface="button")
    assert won and claimed is not None
    finished = bot.store.finish_decision(task_id, "approved")
    assert finished is not None
    bot.runtime.messenger.sync_card(task_id, finished)
    assert "Approved by <@UALICE>" in _card(bot, slack, task_id)[0]
    updates = len(slack.calls_to("chat.update"))
    bot.runtime.messenger.sync_card(task_id, claimed)  # this process showed a later version: nothing to do
    assert len(slack.calls_to("chat.update")) == updates
    Messenger(bot.runtime.messenger.client, bot.store).sync_card(task_id, claimed)  # another replica's, late
    text, card = _card(bot, slack, task_id)
    assert "Approved by <@UALICE>" in text and "Approving" not in text and not _has_buttons(card)
    assert bot.store.get(task_id).rendered_version == finished.version


def test_ack_comes_before_slow_leadlex_and_card_shows_progress(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """The click is acknowledged while LeadLex is still working, and the card says who is approving."""
    task_id = _announce(bot, sandbox)
    sandbox.latency = 1.5
    response = bot.click(blocks.APPROVE_ACTION, task_id)
    assert response.status_code == 200
    assert sandbox.task(task_id)["status"] == "pending"  # LeadLex has not finished when Slack got its ack
    bot.wait_for(lambda: "Approving" in _card(bot, slack, task_id)[0])
    text, card = _card(bot, slack, task_id)
    assert "<@UALICE>" in text and not _has_buttons(card)
    bot.settle()
    sandbox.latency = 0.0
    assert "Approved by <@UALICE>" in _card(bot, slack, task_id)[0]


def test_concurrent_clicks_make_one_leadlex_call(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Two people and one person clicking five times, all at once: one approve call; the rest are told."""
    task_id = _announce(bot, sandbox)
    sandbox.latency = 0.3
    users = ["UALICE"] * 5 + ["UBOB", "UCAROL"]
    barrier = threading.Barrier(len(users))
    statuses: list[int] = []

    def click(user: str) -> None:
        barrier.wait(timeout=10)
        statuses.append(bot.click(blocks.APPROVE_ACTION, task_id, user=user).status_code)

    threads = [threading.Thread(target=click, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    bot.settle()
    sandbox.latency = 0.0
    assert statuses == [200] * len(users)
    assert _approve_calls(sandbox, task_id) == 1
    row = bot.store.get(task_id)
    assert row.state == "approved"
    told = slack.ephemerals
    assert len(told) == len(users) - 1
    assert all(f"<@{row.actor}>" in e.text for e in told)


def test_dismiss_opens_a_reason_modal_and_dismisses_on_submit(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Dismiss opens the reason form; submitting it dismisses with the code and note, and the card says why."""
    task_id = _announce(bot, sandbox)
    assert bot.click(blocks.DISMISS_ACTION, task_id, user="UBOB").status_code == 200
    bot.wait_for(lambda: slack.views)
    (opened,) = slack.views
    view = opened.view
    assert view["callback_id"] == modals.DISMISS_MODAL
    assert sandbox.task(task_id)["status"] == "pending"  # nothing happens until the form is submitted
    submission = payloads.build_view_submission(
        callback_id=modals.DISMISS_MODAL,
        private_metadata=view["private_metadata"],
        user="UBOB",
        values={
            modals.REASON_BLOCK: {
                modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": {"value": "duplicate"}}
            },
            modals.NOTE_BLOCK: {modals.NOTE_INPUT: {"type": "plain_text_input", "value": "same as yesterday's"}},
        },
    )
    response = bot.post(*payloads.encode_interactive(submission))
    assert response.status_code == 200
    bot.settle()
    task = sandbox.task(task_id)
    assert task["status"] == "dismissed"
    assert task.get("dismiss_reason") == "duplicate: same as yesterday's"
    text, card = _card(bot, slack, task_id)
    assert not _has_buttons(card)
    assert "Dismissed by <@UBOB>" in text and "Duplicate" in text


def test_modal_without_a_reason_is_refused_in_the_form(bot: BotHarness, sandbox: Sandbox) -> None:
    """Submitting the dismiss form without a reason keeps it open with an error; the task is untouched."""
    task_id = _announce(bot, sandbox)
    submission = payloads.build_view_submission(
        callback_id=modals.DISMISS_MODAL,
        private_metadata=json.dumps({"task_id": task_id, "channel": CHANNEL}),
        values={modals.REASON_BLOCK: {modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": None}}},
    )
    response = bot.post(*payloads.encode_interactive(submission))
    assert response.json()["response_action"] == "errors"
    bot.settle()
    assert sandbox.task(task_id)["status"] == "pending"


def test_cancelled_modal_changes_nothing(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Closing the dismiss form leaves the task pending and the card untouched."""
    task_id = _announce(bot, sandbox)
    bot.click(blocks.DISMISS_ACTION, task_id)
    bot.wait_for(lambda: slack.views)
    before = _card(bot, slack, task_id)[0]
    closed = payloads.build_view_closed(
        callback_id=modals.DISMISS_MODAL, private_metadata=json.dumps({"task_id": task_id})
    )
    assert bot.post(*payloads.encode_interactive(closed)).status_code in (200, 404)
    bot.settle()
    assert sandbox.task(task_id)["status"] == "pending"
    assert _card(bot, slack, task_id)[0] == before


def test_failed_decision_brings_the_buttons_back_with_the_reason(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """When LeadLex keeps failing, the card offers the buttons again and says why; the clicker is told."""
    task_id = _announce(bot, sandbox)
    sandbox.fail_next("POST", f"/v1/lexi/tasks/{task_id}/approve", status=503, times=4)  # every attempt fails
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    assert _approve_calls(sandbox, task_id) == 4  # retried with backoff, then given up
    text, card = _card(bot, slack, task_id)
    assert _has_buttons(card)
    assert "Could not approve" in text
    assert bot.store.get(task_id).state == "pending"
    assert any("Could not approve" in e.text for e in slack.ephemerals_for("UALICE"))
    bot.click(blocks.APPROVE_ACTION, task_id, user="UBOB")  # LeadLex is back: a new click works
    bot.settle()
    assert bot.store.get(task_id).state == "approved"
    assert "Approved by <@UBOB>" in _card(bot, slack, task_id)[0]


def test_decision_made_in_leadlex_updates_the_card_and_threads_completion(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Approved in the LeadLex dashboard, then completed: the card follows and one thread reply says so."""
    task_id = _announce(bot, sandbox)
    sandbox.set_status(task_id, "approved")
    bot.poll()
    text, card = _card(bot, slack, task_id)
    assert not _has_buttons(card) and "Approved in LeadLex" in text
    sandbox.complete(task_id, ok=True)
    bot.poll()
    bot.poll()
    assert bot.store.get(task_id).state == "completed"
    ts = bot.store.get(task_id).message_ts
    replies = [m for m in slack.replies(CHANNEL, ts) if m.ts != ts]
    assert len(replies) == 1 and "omplete" in replies[0].text


def test_failure_in_leadlex_is_shown_and_threaded(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A task approved in Slack that then fails in LeadLex says so on the card and in the thread."""
    task_id = _announce(bot, sandbox)
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    sandbox.complete(task_id, ok=False)
    bot.poll()
    row = bot.store.get(task_id)
    assert row.state == "failed" and row.actor == "UALICE"
    text, _ = _card(bot, slack, task_id)
    assert "<@UALICE>" in text and "ailed" in text
    replies = [m for m in slack.replies(CHANNEL, row.message_ts) if m.ts != row.message_ts]
    assert len(replies) == 1 and "ailed" in replies[0].text


def test_click_on_a_task_decided_elsewhere_shows_the_real_state(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A click on a task already dismissed in LeadLex (400) updates the card and tells the clicker."""
    task_id = _announce(bot, sandbox)
    sandbox.set_status(task_id, "dismissed")
    bot.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")
    bot.settle()
    assert sandbox.task(task_id)["status"] == "dismissed"
    text, card = _card(bot, slack, task_id)
    assert not _has_buttons(card) and "Dismissed in LeadLex" in text
    assert any("already dismissed" in e.text for e in slack.ephemerals_for("UCAROL"))


def test_click_on_a_vanished_task_marks_it_gone(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A click on a task LeadLex no longer has (404) marks the card and tells the clicker."""
    task_id = _announce(bot, sandbox)
    sandbox.remove_task(task_id)
    bot.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")
    bot.settle()
    text, card = _card(bot, slack, task_id)
    assert not _has_buttons(card) and "no longer exists" in text
    assert any("removed" in e.text for e in slack.ephemerals_for("UCAROL"))


def test_late_click_is_told_who_decided(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A click after the decision makes no LeadLex call and tells the person who decided."""
    task_id = _announce(bot, sandbox)
    bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    bot.settle()
    bot.click(blocks.DISMISS_ACTION, task_id, user="UBOB")
    bot.wait_for(lambda: slack.ephemerals_for("UBOB"))
    bot.settle()
    assert slack.views == []  # no modal for a decided task
    assert any("already approved by <@UALICE>" in e.text for e in slack.ephemerals_for("UBOB"))
    assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/dismiss")) == 0


def test_only_approvers_may_decide(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """With LEXI_APPROVERS set, anyone else is told privately who may decide, and the task is untouched."""
    from tests.support.harness import start_bot

    harness = start_bot(sandbox, slack, database_url, LEXI_APPROVERS="UALICE, UCAROL")
    try:
        task_id = _announce(harness, sandbox)
        harness.click(blocks.APPROVE_ACTION, task_id, user="UBOB")
        harness.click(blocks.DISMISS_ACTION, task_id, user="UBOB")
        harness.wait_for(lambda: len(slack.ephemerals_for("UBOB")) == 2)
        harness.settle()
        assert all("Only <@UALICE>, <@UCAROL>" in e.text for e in slack.ephemerals_for("UBOB"))
        assert slack.views == [] and _approve_calls(sandbox, task_id) == 0
        assert harness.store.get(task_id).state == "pending"
        harness.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")
        harness.settle()
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        harness.close()


def _posted_not_recorded(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> tuple[str, str]:
    """A task whose card is in the channel while the bot has not recorded it yet (its post's answer is on its way)."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    task, problem = read_task(sandbox.task(task_id))
    assert task is not None and problem is None
    assert bot.store.claim_announcement(task, CHANNEL)
    message = slack.add_message(CHANNEL, "Lexi needs approval", user=slack.bot_user_id, bot_id=slack.bot_id)
    return task_id, message.ts


def test_a_click_on_a_card_posted_a_moment_before_it_was_recorded_is_carried_out(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Approve and Dismiss on a card whose post the bot has not recorded yet wait for the record, then decide.

    Slack shows a card as soon as it is posted; the bot records it when the post's answer comes back. A click in
    between used to be answered "This task is still waiting for a decision." and dropped.
    """
    approved, approved_ts = _posted_not_recorded(bot, sandbox, slack)
    assert bot.click(blocks.APPROVE_ACTION, approved).status_code == 200
    dismissed, dismissed_ts = _posted_not_recorded(bot, sandbox, slack)
    assert bot.click(blocks.DISMISS_ACTION, dismissed, user="UBOB").status_code == 200
    bot.wait_for(lambda: slack.views)  # the dismiss form opens: the card is out, its record on the way
    (opened,) = slack.views
    threading.Event().wait(0.3)
    for task_id, ts in ((approved, approved_ts), (dismissed, dismissed_ts)):
        bot.store.record_message(task_id, CHANNEL, ts, rendered_version=bot.store.get(task_id).version)
    submission = payloads.build_view_submission(
        callback_id=modals.DISMISS_MODAL,
        private_metadata=opened.view["private_metadata"],
        user="UBOB",
        values={
            modals.REASON_BLOCK: {
                modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": {"value": "duplicate"}}
            }
        },
    )
    assert bot.post(*payloads.encode_interactive(submission)).status_code == 200
    bot.settle()
    assert sandbox.task(approved)["status"] == "approved"
    assert _approve_calls(sandbox, approved) == 1
    assert sandbox.task(dismissed)["status"] == "dismissed"
    assert not [e for e in slack.ephemerals if "still waiting for a decision" in e.text]
