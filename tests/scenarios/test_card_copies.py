"""Issue 16: every card of a task, everywhere, in sync — approvers' DMs (`notify`) and the thread Lexi answered in.

The bot runs over HTTP against the Slack stand-in and the LeadLex sandbox; clicks are signed block_actions from the
DM or thread the copy is in, and go through the same permission check and single decision path as the channel's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy import update

from bot.core.policy import PolicyError, load_policy
from bot.db.store import CARD_COPIES
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import Message, SlackStandIn
from bot.lexi.models import read_task
from bot.slack import assistant
from tests.support.cards import card_text, cards_in, click_card, has_buttons
from tests.support.harness import CHANNEL, BotHarness, start_bot

#: Bob is named; Carol is an approver through the S0LEADS user group; Dave and Alice are neither.
POLICY = """\
defaults:
  approvers: [UBOB, S0LEADS]
  notify: approvers
types:
  campaign_start:
    notify: both
"""
BOB_DM, CAROL_DM = "DBOB", "DCAROL"  # the stand-in's DM ids: D + the user id without its U


def _start(sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path, **extra: object) -> BotHarness:
    """A bot with the policy above (Carol in S0LEADS)."""
    slack.set_usergroup("S0LEADS", ["UCAROL"])
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY)
    return start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path), **extra)  # type: ignore[arg-type]


@pytest.fixture
def notifying(sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path) -> Iterator[BotHarness]:
    """A bot sending cards to the approvers' DMs (campaign starts: to the channel too)."""
    harness = _start(sandbox, slack, database_url, tmp_path)
    try:
        yield harness
    finally:
        harness.close()


def _approve_calls(sandbox: Sandbox, task_id: str) -> int:
    """How many approve requests LeadLex received for a task."""
    return len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve"))


def test_notify_approvers_sends_the_card_to_each_approver_s_dm_and_not_the_channel(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Bob and Carol (through her user group) each get the card in their DM; the channel gets nothing."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    notifying.poll()
    row = notifying.store.get(task_id)
    assert row is not None and row.state == "pending"
    assert cards_in(slack, CHANNEL) == []
    (bob,), (carol,) = cards_in(slack, BOB_DM), cards_in(slack, CAROL_DM)
    assert has_buttons(bob) and has_buttons(carol)
    assert (row.channel, row.message_ts) == (BOB_DM, bob.ts)  # the record's card is the first approver's DM
    assert [(c.channel, c.kind, c.ts) for c in notifying.store.copies(task_id)] == [(CAROL_DM, "dm", carol.ts)]


def test_a_click_in_a_dm_decides_once_and_every_copy_shows_the_final_state(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Carol approves from her DM: one LeadLex call, and her card and Bob's both say who approved, without buttons."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    notifying.poll()
    (carol,) = cards_in(slack, CAROL_DM)
    assert click_card(notifying, carol, "UCAROL").status_code == 200
    notifying.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    assert _approve_calls(sandbox, task_id) == 1
    for dm in (BOB_DM, CAROL_DM):
        (card,) = cards_in(slack, dm)
        assert "Approved by <@UCAROL>" in card_text(card) and not has_buttons(card), dm
    assert all(c.rendered_version == notifying.store.get(task_id).version for c in notifying.store.copies(task_id))
    assert click_card(notifying, cards_in(slack, BOB_DM)[0], "UBOB").status_code == 200  # too late: decided once
    notifying.settle()
    assert _approve_calls(sandbox, task_id) == 1


def test_notify_both_posts_in_the_channel_and_the_dms_and_a_dm_click_updates_the_channel_card(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A campaign start (notify: both) is in the channel and in each approver's DM; Bob's click updates all three."""
    task_id = sandbox.add_task("campaign_start", "Start the Q3 fintech sequence")["id"]
    notifying.poll()
    (channel_card,), (bob,), (carol,) = (cards_in(slack, c) for c in (CHANNEL, BOB_DM, CAROL_DM))
    assert notifying.store.get(task_id).channel == CHANNEL
    assert click_card(notifying, bob, "UBOB").status_code == 200
    notifying.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    for card in (channel_card, bob, carol):
        now = slack.message(card.channel, card.ts)
        assert now is not None and "Approved by <@UBOB>" in card_text(now) and not has_buttons(now), card.channel


def test_someone_who_may_not_approve_cannot_decide_from_any_copy(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Dave (neither named nor in the group) clicks the channel card and each DM's: refused each time, nothing sent."""
    task_id = sandbox.add_task("campaign_start", "Start the Q3 fintech sequence")["id"]
    notifying.poll()
    cards = [*cards_in(slack, CHANNEL), *cards_in(slack, BOB_DM), *cards_in(slack, CAROL_DM)]
    assert len(cards) == 3
    for card in cards:
        assert click_card(notifying, card, "UDAVE").status_code == 200
        notifying.settle()
    assert sandbox.task(task_id)["status"] == "pending"
    assert _approve_calls(sandbox, task_id) == 0
    assert notifying.store.get(task_id).state == "pending"
    told = [e.text for e in slack.ephemerals_for("UDAVE")]  # in the channel, or through the DM click's response_url
    assert sum("Only <@UBOB>, members of <!subteam^S0LEADS> can approve" in t for t in told) == 3
    assert all(has_buttons(slack.message(c.channel, c.ts)) for c in cards)  # type: ignore[arg-type]


def test_a_retried_announcement_never_posts_a_copy_twice(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """A process died after Carol's copy went out, before the record's card: recovery posts Bob's card, not Carol's."""
    bot = _start(sandbox, slack, database_url, tmp_path, claim_timeout=timedelta(0))
    try:
        task, problem = read_task(sandbox.add_task("prospect_search", "Find VPs of Sales in fintech"))
        assert task is not None and problem is None
        assert bot.store.claim_announcement(task, CHANNEL)  # the dead process's claim …
        carol_dm = bot.runtime.messenger.open_dm("UCAROL")
        assert bot.runtime.messenger.post_copy(task.id, carol_dm, "dm") is not None  # … and the copy it posted
        assert bot.runtime.announcer.recover() == 1
        bot.settle()
        assert bot.runtime.announcer.recover() == 0
        assert bot.runtime.announcer.announce(task) is False
        bot.poll()
        assert len(cards_in(slack, BOB_DM)) == 1 and len(cards_in(slack, CAROL_DM)) == 1
        assert cards_in(slack, CHANNEL) == []
        row = bot.store.get(task.id)
        assert row is not None and (row.state, row.channel) == ("pending", BOB_DM)
        assert bot.runtime.messenger.post_copy(task.id, carol_dm, "dm") is None  # claimed: never posted again
        assert len(cards_in(slack, CAROL_DM)) == 1
    finally:
        bot.close()


def test_without_named_approvers_notify_approvers_falls_back_to_the_channel(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """`notify: approvers` with only channel members to decide: the card goes to the channel (and it is logged)."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text("defaults:\n  notify: approvers\n")
    bot = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
    try:
        task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
        bot.poll()
        assert len(cards_in(slack, CHANNEL)) == 1
        assert bot.store.get(task_id).channel == CHANNEL
        assert bot.store.copies(task_id) == []
    finally:
        bot.close()


def _open_thread(bot: BotHarness, user: str = "UALICE") -> Message:
    """`user` opens the assistant pane: a thread in their DM, announced to the bot."""
    parent = bot.slack.open_assistant_thread(user)
    envelope = payloads.build_assistant_thread_started(
        user=user, channel=parent.channel, thread_ts=parent.ts, context_channel=CHANNEL
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()
    return parent


def _send(bot: BotHarness, thread: Message, text: str, user: str = "UALICE") -> None:
    """`user` writes in an assistant thread."""
    message = bot.slack.add_message(thread.channel, text, user=user, thread_ts=thread.ts)
    envelope = payloads.build_im_message(
        user=user, channel=thread.channel, text=text, ts=message.ts, thread_ts=thread.ts
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()


def test_a_task_lexi_prepares_in_a_thread_gets_its_card_there_and_a_click_there_updates_the_channel(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """The card appears in the assistant thread after Lexi's answer; approving there updates the channel card too."""
    thread = _open_thread(bot)
    _send(bot, thread, assistant.SUGGESTED_PROMPTS[1])
    (channel_card,) = cards_in(slack, CHANNEL)
    task_id = channel_card.metadata["event_payload"]["task_id"] if channel_card.metadata else ""
    said = [m for m in slack.replies(thread.channel, thread.ts) if m.user == slack.bot_user_id]
    assert said[-2].text.startswith("*Lexi:* I prepared")  # the answer, then the card under it
    in_thread = said[-1]
    assert in_thread.metadata and in_thread.metadata["event_payload"]["task_id"] == task_id
    assert has_buttons(in_thread) and in_thread.thread_ts == thread.ts
    (copy,) = bot.store.copies(task_id)
    assert (copy.channel, copy.kind, copy.thread_ts, copy.ts) == (thread.channel, "thread", thread.ts, in_thread.ts)
    assert click_card(bot, in_thread, "UALICE").status_code == 200
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    assert _approve_calls(sandbox, task_id) == 1
    for card in (channel_card, in_thread):
        now = slack.message(card.channel, card.ts)
        assert now is not None and "Approved by <@UALICE>" in card_text(now) and not has_buttons(now), card.channel
    # The final state's thread reply stays on the channel card.
    assert not [m for m in slack.replies(thread.channel, thread.ts) if m.ts > in_thread.ts]


def test_a_bad_notify_value_is_a_policy_error_naming_its_line(tmp_path: Path) -> None:
    """`notify: everyone` is refused with its file and line, and the values allowed."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text("types:\n  prospect_search:\n    notify: everyone\n")
    with pytest.raises(PolicyError) as refused:
        load_policy(path, channel=CHANNEL)
    assert str(refused.value) == (
        "lexi-bot.yml line 3: types.prospect_search.notify must be one of channel, approvers, both, not 'everyone'"
    )


def test_a_task_prepared_in_a_mention_thread_is_in_the_thread_and_the_approvers_dms_all_in_sync(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A mention's task: its card in the thread and approvers' DMs; Alice may not approve there, Bob may; all follow."""
    slack.add_channel("C0SALES", "sales", member=True)
    text = f"<@{slack.bot_user_id}> {assistant.SUGGESTED_PROMPTS[1]}"
    mention = slack.add_message("C0SALES", text, user="UALICE")
    envelope = payloads.build_app_mention(user="UALICE", channel="C0SALES", text=text, ts=mention.ts)
    assert notifying.post(*payloads.encode_event(envelope)).status_code == 200
    notifying.settle()
    (in_thread,) = cards_in(slack, "C0SALES")
    assert in_thread.thread_ts == mention.ts
    task_id = in_thread.metadata["event_payload"]["task_id"] if in_thread.metadata else ""
    cards = [in_thread, *cards_in(slack, BOB_DM), *cards_in(slack, CAROL_DM)]
    assert len(cards) == 3 and cards_in(slack, CHANNEL) == []
    assert click_card(notifying, in_thread, "UALICE").status_code == 200
    notifying.settle()
    assert _approve_calls(sandbox, task_id) == 0 and notifying.store.get(task_id).state == "pending"
    assert click_card(notifying, in_thread, "UBOB").status_code == 200
    notifying.settle()
    assert sandbox.task(task_id)["status"] == "approved" and _approve_calls(sandbox, task_id) == 1
    for card in cards:
        now = slack.message(card.channel, card.ts)
        assert now is not None and "Approved by <@UBOB>" in card_text(now) and not has_buttons(now), card.channel


def test_channel_members_among_the_approvers_means_the_type_s_channel_even_on_a_dm_card(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """The record's card is in Bob's DM, yet `channel_members` still means the channel's members, not the DM's."""
    slack.set_members(CHANNEL, ["UALICE", "UBOB"])
    path = tmp_path / "lexi-bot.yml"
    path.write_text("defaults:\n  approvers: [UBOB, channel_members]\n  notify: approvers\n")
    bot = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
    try:
        task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
        bot.poll()
        (card,) = cards_in(slack, BOB_DM)  # channel_members names no one to message: Bob alone gets it
        assert bot.store.get(task_id).channel == BOB_DM and cards_in(slack, CHANNEL) == []
        assert click_card(bot, card, "UDAVE").status_code == 200  # not in the channel
        bot.settle()
        assert _approve_calls(sandbox, task_id) == 0
        assert "members of <#C0LEXI>" in slack.ephemerals_for("UDAVE")[-1].text
        assert click_card(bot, card, "UALICE").status_code == 200  # a member of the channel
        bot.settle()
        assert _approve_calls(sandbox, task_id) == 1
        assert "Approved by <@UALICE>" in card_text(slack.message(BOB_DM, card.ts))  # type: ignore[arg-type]
    finally:
        bot.close()


def test_a_copy_slack_does_not_update_is_retried_and_never_stops_the_decision(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Slack refuses to update Carol's copy: the decision and Bob's card go on; the next poll updates hers."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    notifying.poll()
    (bob,), (carol,) = cards_in(slack, BOB_DM), cards_in(slack, CAROL_DM)
    slack.fail_next("chat.update", "fatal_error", times=2, channel=CAROL_DM)  # "Approving…" and the outcome
    assert click_card(notifying, bob, "UBOB").status_code == 200
    notifying.settle()
    assert sandbox.task(task_id)["status"] == "approved" and _approve_calls(sandbox, task_id) == 1
    assert "Approved by <@UBOB>" in card_text(slack.message(BOB_DM, bob.ts))  # type: ignore[arg-type]
    assert has_buttons(slack.message(CAROL_DM, carol.ts))  # type: ignore[arg-type]
    assert [row.task_id for row in notifying.store.unrendered()] == [task_id]
    notifying.poll()
    now = slack.message(CAROL_DM, carol.ts)
    assert now is not None and "Approved by <@UBOB>" in card_text(now) and not has_buttons(now)
    assert notifying.store.unrendered() == []


def test_the_channel_digest_lists_a_task_whose_cards_went_to_the_approvers_dms_in_its_channel(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """`notify: approvers` with a channel digest: the task is listed in the channel's digest, linked to Bob's card."""
    slack.set_usergroup("S0LEADS", ["UCAROL"])
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY.replace("  notify: approvers\n", '  notify: approvers\n  digest: "09:00 UTC"\n'))
    bot = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
    try:
        assert bot.runtime.poller.digest is not None
        now = [datetime(2026, 12, 7, 8, 0, tzinfo=UTC)]
        bot.runtime.poller.digest.now = lambda: now[0]
        task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
        bot.poll()  # announced before nine
        now[0] = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
        bot.poll()
        (card,) = cards_in(slack, BOB_DM)
        digests = [m for m in slack.messages(CHANNEL) if m.text.startswith("*Daily digest")]
        assert len(digests) == 1 and f"/archives/{BOB_DM}/p{card.ts.replace('.', '')}|" in digests[0].text
        assert not [m for m in slack.messages(BOB_DM) if m.text.startswith("*Daily digest")]
        assert bot.store.get(task_id).channel == BOB_DM
    finally:
        bot.close()


def test_a_lost_database_is_rebuilt_from_the_cards_in_the_approvers_dms(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """Cards kept only in DMs (`notify: approvers`) are found again after the database is lost: none posted twice.

    One DM's card becomes the record's, the other's its copy, so a decision after the loss still updates both.
    """
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in Lisbon", {"per_page": 25})["id"]
    first = _start(sandbox, slack, f"sqlite:///{tmp_path / 'lost.db'}", tmp_path)
    try:
        first.poll()
        first.settle()
    finally:
        first.close()
    assert len(cards_in(slack, BOB_DM)) == 1 and len(cards_in(slack, CAROL_DM)) == 1 and cards_in(slack, CHANNEL) == []
    (tmp_path / "lost.db").unlink()  # the ephemeral disk is gone
    posts = len(slack.calls_to("chat.postMessage"))
    second = _start(sandbox, slack, f"sqlite:///{tmp_path / 'new.db'}", tmp_path)
    try:
        second.poll()
        second.poll()
        second.settle()
        assert len(slack.calls_to("chat.postMessage")) == posts  # nothing announced again
        row = second.store.get(task_id)
        assert row is not None and row.channel in (BOB_DM, CAROL_DM)
        assert [c.channel for c in second.store.copies(task_id)] == [{BOB_DM, CAROL_DM}.difference({row.channel}).pop()]
        (carols,) = cards_in(slack, CAROL_DM)
        assert click_card(second, carols, "UCAROL").status_code == 200
        second.settle()
    finally:
        second.close()
    assert _approve_calls(sandbox, task_id) == 1
    for dm in (BOB_DM, CAROL_DM):
        (card,) = cards_in(slack, dm)
        assert not has_buttons(card) and "Approved by <@UCAROL>" in card_text(card)


def test_a_reminder_reaches_every_approver_s_dm_card(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """With cards in DMs, a reminder is replied under each DM's card, not only under the record's."""
    slack.set_usergroup("S0LEADS", ["UCAROL"])
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY.replace("  notify: approvers\n", "  notify: approvers\n  remind_after: 1h\n"))
    bot = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
    try:
        reminders = bot.runtime.poller.reminders
        assert reminders is not None
        task_id = sandbox.add_task("prospect_search", "Find CFOs in Porto", {"per_page": 25})["id"]
        bot.poll()
        bot.settle()
        now = bot.store.get(task_id).announced_at.timestamp() + 3700
        reminders.clock = lambda: now
        bot.poll()
        bot.settle()
    finally:
        bot.close()
    for dm in (BOB_DM, CAROL_DM):
        (card,) = cards_in(slack, dm)
        replies = [m.text for m in slack.replies(dm, card.ts) if m.ts != card.ts]
        assert len(replies) == 1 and "Still waiting for a decision after 1h" in replies[0], (dm, replies)
    assert len([e for e in slack.calls_to("chat.postMessage") if e.args.get("thread_ts")]) == 2


def _lose_copy_record(bot: BotHarness, task_id: str, channel: str) -> None:
    """Make a copy look as a process that died left it: claimed an hour ago, its post never recorded."""
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    copies = CARD_COPIES.c
    with bot.store.engine.begin() as conn:
        conn.execute(
            update(CARD_COPIES)
            .where(copies.task_id == task_id, copies.channel == channel)
            .values(ts=None, claimed_at=an_hour_ago)
        )


def test_a_copy_whose_process_died_is_recorded_if_posted_and_posted_if_not(
    notifying: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A copy claimed by a process that died: found in the DM, it is recorded (never posted twice); else it is posted.

    Either way the copy then follows the decision like any other.
    """
    posted = sandbox.add_task("prospect_search", "Find CFOs in Lyon", {"per_page": 25})["id"]
    lost = sandbox.add_task("prospect_search", "Find CFOs in Nantes", {"per_page": 25})["id"]
    notifying.poll()
    notifying.settle()
    carols = {c.metadata["event_payload"]["task_id"]: c for c in cards_in(slack, CAROL_DM)}
    _lose_copy_record(notifying, posted, CAROL_DM)  # Slack took the post; the process died before recording it
    WebClient(token="xoxb-test-token", base_url=slack.api_url).chat_delete(channel=CAROL_DM, ts=carols[lost].ts)
    _lose_copy_record(notifying, lost, CAROL_DM)  # died before Slack answered: nothing is in her DM
    posts = len(slack.calls_to("chat.postMessage"))
    notifying.poll()
    notifying.settle()
    assert len(slack.calls_to("chat.postMessage")) == posts + 1  # the lost one only
    again = {c.metadata["event_payload"]["task_id"]: c for c in cards_in(slack, CAROL_DM)}
    assert set(again) == {posted, lost} and again[posted].ts == carols[posted].ts
    assert {(c.task_id, c.ts) for t in (posted, lost) for c in notifying.store.copies(t)} == {
        (posted, carols[posted].ts),
        (lost, again[lost].ts),
    }
    notifying.poll()
    assert len(slack.calls_to("chat.postMessage")) == posts + 1
    assert click_card(notifying, again[lost], "UCAROL").status_code == 200
    notifying.settle()
    (decided,) = [c for c in cards_in(slack, CAROL_DM) if c.metadata["event_payload"]["task_id"] == lost]
    assert "Approved by <@UCAROL>" in card_text(decided) and not has_buttons(decided)
