"""Issue 16: Lexi in Slack's AI assistant pane — greeting, prompts, answers in the thread, one conversation a thread.

Events go to the real Bolt app over HTTP, signed as Slack signs them; the Slack stand-in records the pane's status,
prompts and titles, and the LeadLex sandbox the chat calls.
"""

from __future__ import annotations

import logging
import time

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import Message, SlackStandIn
from bot.slack import assistant
from tests.support.harness import CHANNEL, BotHarness, start_bot

CHAT = ("POST", "/v1/lexi/chat")


def _open(bot: BotHarness, user: str = "UALICE", context_channel: str | None = CHANNEL) -> Message:
    """`user` opens the assistant pane: Slack starts a thread in their DM and sends assistant_thread_started."""
    parent = bot.slack.open_assistant_thread(user)
    envelope = payloads.build_assistant_thread_started(
        user=user, channel=parent.channel, thread_ts=parent.ts, context_channel=context_channel
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()
    return parent


def _send(bot: BotHarness, thread: Message, text: str, user: str = "UALICE", *, settle: bool = True) -> None:
    """`user` writes `text` in an assistant thread: the message is in Slack, and its event reaches the bot."""
    message = bot.slack.add_message(thread.channel, text, user=user, thread_ts=thread.ts)
    envelope = payloads.build_im_message(
        user=user, channel=thread.channel, text=text, ts=message.ts, thread_ts=thread.ts
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    if settle:
        bot.settle()


def _answers(slack: SlackStandIn, thread: Message) -> list[str]:
    """What the bot said in a thread, oldest first (the greeting included)."""
    return [m.text for m in slack.replies(thread.channel, thread.ts) if m.user == slack.bot_user_id]


def _updates(slack: SlackStandIn, thread: Message, kind: str) -> list[object]:
    """The statuses, prompts or titles the bot set on a thread, oldest first."""
    return [update.value for update in slack.thread_updates(thread.channel, thread.ts, kind)]


def _conversations(sandbox: Sandbox) -> list[str | None]:
    """The conversation id each chat request continued (None: a new conversation)."""
    return [call.body["context"].get("conversation_id") for call in sandbox.calls_to(*CHAT)]


def test_thread_started_greets_and_suggests_three_prompts(bot: BotHarness, slack: SlackStandIn) -> None:
    """Opening the pane posts the greeting in the new thread and sets the three suggested prompts."""
    thread = _open(bot)
    assert thread.channel == "DALICE"
    (greeting,) = _answers(slack, thread)
    assert greeting.startswith("Hi, I'm Lexi")
    (prompts,) = _updates(slack, thread, "prompts")
    assert prompts == [{"title": p, "message": p} for p in assistant.SUGGESTED_PROMPTS]
    assert len(prompts) == 3
    assert _updates(slack, thread, "status") == [] and _updates(slack, thread, "title") == []


def test_context_changed_is_kept_with_the_thread(bot: BotHarness, slack: SlackStandIn) -> None:
    """The channel the person looks at is kept in the greeting's metadata, and follows them to another channel."""
    thread = _open(bot)
    greeting = next(m for m in slack.replies(thread.channel, thread.ts) if m.user == slack.bot_user_id)
    assert greeting.metadata is not None
    assert greeting.metadata["event_payload"]["channel_id"] == CHANNEL
    envelope = payloads.build_assistant_thread_context_changed(
        user="UALICE", channel=thread.channel, thread_ts=thread.ts, context_channel="C0OTHER"
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()
    updated = slack.message(thread.channel, greeting.ts)
    assert updated is not None and updated.metadata is not None
    assert updated.metadata["event_payload"]["channel_id"] == "C0OTHER"
    assert updated.text == greeting.text


def test_a_context_slack_cannot_keep_is_logged_and_nothing_else(
    bot: BotHarness, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """When Slack refuses to read the thread, the context change is acknowledged and logged as a warning."""
    thread = _open(bot)
    slack.fail_next("conversations.replies", "channel_not_found")
    envelope = payloads.build_assistant_thread_context_changed(
        user="UALICE", channel=thread.channel, thread_ts=thread.ts, context_channel="C0OTHER"
    )
    with caplog.at_level(logging.WARNING):
        assert bot.post(*payloads.encode_event(envelope)).status_code == 200
        bot.settle()
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == ["WARNING"]
    assert "could not keep the context" in caplog.text and "channel_not_found" in caplog.text


def test_a_message_is_answered_in_the_thread_with_status_cleared_and_a_title(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A message shows "Lexi is thinking…", gets Lexi's answer in the thread, then the status is cleared."""
    thread = _open(bot)
    text = "hello there,\nwho are you and what can you do for my sales team today?"
    _send(bot, thread, text)
    assert len(sandbox.calls_to(*CHAT)) == 1
    _greeting, reply = _answers(slack, thread)
    assert reply.startswith("*Lexi:* I'm Lexi")
    assert _updates(slack, thread, "status") == ["Lexi is thinking…", ""]
    (title,) = _updates(slack, thread, "title")
    assert title == " ".join(text.split())[: assistant.TITLE_MAX - 1] + "…"  # one line, clipped


def test_the_thread_continues_its_conversation_and_another_thread_starts_one(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Messages in one thread continue the same LeadLex conversation; a new thread starts a new one."""
    first = _open(bot)
    _send(bot, first, "hello")
    _send(bot, first, "and again")
    second = _open(bot)
    _send(bot, second, "hi")
    opened, continued, other = _conversations(sandbox)
    assert opened is None and other is None and continued is not None
    assert "(message 2 in this conversation)" in _answers(slack, first)[-1]
    assert "(message 1 in this conversation)" in _answers(slack, second)[-1]
    assert _updates(slack, first, "title") == ["hello"]  # titled from the first message only
    assert _updates(slack, second, "title") == ["hi"]


def test_the_thread_conversation_survives_a_restart(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """The thread's conversation id lives in the database: after a restart its next message continues it."""
    first = start_bot(sandbox, slack, database_url)
    try:
        thread = _open(first)
        _send(first, thread, "hello")
    finally:
        first.close()
    second = start_bot(sandbox, slack, database_url)
    try:
        _send(second, thread, "still there?")
        assert "(message 2 in this conversation)" in _answers(slack, thread)[-1]
    finally:
        second.close()
    opened, continued = _conversations(sandbox)
    assert opened is None and continued is not None


def test_what_is_waiting_is_answered_from_the_store_without_a_chat_call(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """The queue question lists the pending tasks, escaped and linked to their cards, and costs no credits."""
    task_id = sandbox.add_task("prospect_search", "Find VPs <!channel> & CFOs")["id"]
    bot.poll()
    card_ts = bot.store.get(task_id).message_ts
    thread = _open(bot)
    balance = sandbox.credits
    _send(bot, thread, assistant.SUGGESTED_PROMPTS[0])
    assert sandbox.calls_to(*CHAT) == [] and sandbox.credits == balance
    reply = _answers(slack, thread)[-1]
    assert reply.startswith("*1 task waits for your approval:*")
    assert f"/archives/{CHANNEL}/p{card_ts.replace('.', '')}|" in reply
    assert "&lt;!channel&gt; &amp; CFOs" in reply and "<!channel>" not in reply
    assert _updates(slack, thread, "status") == ["Lexi is thinking…", ""]


def test_tasks_someone_may_not_decide_are_not_listed_as_theirs(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Someone outside the approval channel is told the waiting tasks are for other approvers, with no links."""
    slack.set_members(CHANNEL, ["UBOT", "UALICE", "UBOB"])
    sandbox.add_task("prospect_search", "Find CTOs")
    bot.poll()
    thread = _open(bot, user="UDAVE")
    _send(bot, thread, "what's waiting for me?", user="UDAVE")
    reply = _answers(slack, thread)[-1]
    assert reply.startswith("Nothing is waiting for your approval; 1 task waits for other approvers.")
    assert "/archives/" not in reply


def test_nothing_waiting_is_said_plainly(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """With no pending task, "what's pending?" says so, without asking Lexi."""
    thread = _open(bot)
    _send(bot, thread, "anything pending?")
    assert _answers(slack, thread)[-1] == "Nothing is waiting for approval right now."
    assert sandbox.calls_to(*CHAT) == []


def test_a_task_lexi_prepares_is_announced_and_linked_from_the_thread(bot: BotHarness, slack: SlackStandIn) -> None:
    """A request that makes Lexi prepare a task gets its card in the channel at once, linked from the answer."""
    thread = _open(bot)
    _send(bot, thread, assistant.SUGGESTED_PROMPTS[1])
    (card,) = slack.messages(CHANNEL)
    task_id = card.metadata["event_payload"]["task_id"] if card.metadata else ""
    assert bot.store.get(task_id).state == "pending"
    reply = _answers(slack, thread)[-2]  # then the card itself, in the thread (tests/scenarios/test_card_copies.py)
    assert reply.startswith("*Lexi:* I prepared") and f"/archives/{CHANNEL}/p{card.ts.replace('.', '')}|" in reply


def test_lexi_answers_are_escaped(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Lexi's words go into the thread escaped: an echoed <!here> never pings anyone."""
    thread = _open(bot)
    _send(bot, thread, "find CFOs <!here> in Germany")
    (call,) = sandbox.calls_to(*CHAT)
    assert call.body["message"] == "find CFOs <!here> in Germany"
    assert all("<!here>" not in text for text in _answers(slack, thread))


def test_out_of_credits_is_told_in_the_thread_and_the_status_cleared(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A 402 insufficient_credits is told in plain words in the thread; chat is called once; nothing spins."""
    sandbox.credits = 0
    thread = _open(bot)
    _send(bot, thread, "find CFOs in Germany")
    assert len(sandbox.calls_to(*CHAT)) == 1
    assert _answers(slack, thread)[-1] == (
        "LeadLex has no credits left for Lexi. Add credits to the LeadLex workspace, then ask again."
    )
    assert _updates(slack, thread, "status") == ["Lexi is thinking…", ""]


def test_a_chat_failure_is_told_and_not_retried(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A 503 from chat is not retried (it may have reached Lexi); the thread is told and the status cleared."""
    sandbox.fail_next(*CHAT, status=503, times=4)
    thread = _open(bot)
    _send(bot, thread, "find CFOs")
    assert len(sandbox.calls_to(*CHAT)) == 1
    assert _answers(slack, thread)[-1].startswith("Lexi did not answer in time.")
    assert _updates(slack, thread, "status") == ["Lexi is thinking…", ""]


@pytest.mark.slow
def test_the_event_is_acknowledged_before_lexi_answers(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """With Lexi taking 2 s, Slack's event is acknowledged at once and the status shows while the answer waits."""
    thread = _open(bot)
    sandbox.latency = 2.0
    try:
        started = time.monotonic()
        _send(bot, thread, "hello", settle=False)
        assert time.monotonic() - started < 1.5
        bot.wait_for(lambda: _updates(slack, thread, "status") == ["Lexi is thinking…"])
        assert len(_answers(slack, thread)) == 1  # the greeting only: Lexi has not answered yet
        bot.settle(timeout=30)
    finally:
        sandbox.latency = 0.0
    assert len(_answers(slack, thread)) == 2
    assert _updates(slack, thread, "status") == ["Lexi is thinking…", ""]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"bot_id": "B0OTHER"}, id="another bot"),
        pytest.param({"subtype": "bot_message", "bot_id": "B0OTHER"}, id="bot_message"),
        pytest.param({"subtype": "message_changed"}, id="an edit"),
        pytest.param({"user": "UBOT", "bot_id": "B0LEXI"}, id="the bot itself"),
    ],
)
def test_messages_from_bots_or_with_a_subtype_are_ignored(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, extra: dict[str, str]
) -> None:
    """Another bot's message, the bot's own, or an edit in an assistant thread gets no answer and no status."""
    thread = _open(bot)
    fields = {"user": "UALICE", **extra}
    ts = slack.add_message(thread.channel, "hello", thread_ts=thread.ts).ts
    envelope = payloads.build_im_message(channel=thread.channel, text="hello", ts=ts, thread_ts=thread.ts, **fields)
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()
    assert sandbox.calls_to(*CHAT) == []
    assert len(_answers(slack, thread)) == 1
    assert _updates(slack, thread, "status") == [] and _updates(slack, thread, "title") == []
