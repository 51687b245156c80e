"""Issue 16: direct messages to the bot and `@lexi-bot` mentions are answered as in the pane, in a thread under them.

Events go to the real Bolt app over HTTP, signed as Slack signs them; the Slack stand-in keeps the threads and the
assistant.threads calls (none outside the pane), and the LeadLex sandbox records the chat calls.
"""

from __future__ import annotations

import time

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import Message, SlackStandIn
from bot.slack import assistant
from bot.slack.command_parser import MESSAGE_MAX, TOO_LONG
from tests.support.harness import CHANNEL, BotHarness

CHAT = ("POST", "/v1/lexi/chat")
#: A channel the bot is in but does not announce tasks in.
SALES = "C0SALES"
PANE_METHODS = ("assistant.threads.setStatus", "assistant.threads.setTitle", "assistant.threads.setSuggestedPrompts")


def _dm(bot: BotHarness, text: str, *, thread: Message | None = None, **extra: str) -> Message:
    """Alice writes `text` in her DM with the bot (in `thread`, under her own message, when given).

    `extra` changes the event's fields: another `user`, a `bot_id`, a `subtype`.
    """
    channel = bot.slack.open_dm("UALICE")
    thread_ts = thread.ts if thread else None
    message = bot.slack.add_message(channel, text, thread_ts=thread_ts)
    fields: dict[str, str] = {"user": "UALICE", **extra}
    envelope = payloads.build_im_message(
        channel=channel,
        text=text,
        ts=message.ts,
        thread_ts=thread_ts,
        parent_user_id=thread.user if thread else None,
        **fields,
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    bot.settle()
    return message


def _mention(
    bot: BotHarness,
    text: str,
    *,
    user: str = "UALICE",
    thread: Message | None = None,
    bot_id: str | None = None,
    settle: bool = True,
) -> Message:
    """`user` writes `text` (mentioning the bot) in the sales channel, in `thread` when given."""
    thread_ts = thread.ts if thread else None
    message = bot.slack.add_message(SALES, text, user=user, thread_ts=thread_ts, bot_id=bot_id or "")
    envelope = payloads.build_app_mention(
        user=user, channel=SALES, text=text, ts=message.ts, thread_ts=thread_ts, bot_id=bot_id
    )
    assert bot.post(*payloads.encode_event(envelope)).status_code == 200
    if settle:
        bot.settle()
    return message


def _answers(slack: SlackStandIn, message: Message) -> list[str]:
    """What the bot said in the thread under (or of) `message`, oldest first."""
    root = message.thread_ts or message.ts
    return [m.text for m in slack.replies(message.channel, root) if m.user == slack.bot_user_id]


def _conversations(sandbox: Sandbox) -> list[str | None]:
    """The conversation id each chat request continued (None: a new conversation)."""
    return [call.body["context"].get("conversation_id") for call in sandbox.calls_to(*CHAT)]


def _no_pane_calls(slack: SlackStandIn) -> bool:
    """Whether the bot left the assistant pane's methods alone (Slack refuses them outside its threads)."""
    return all(slack.calls_to(method) == [] for method in PANE_METHODS)


@pytest.fixture(autouse=True)
def sales(slack: SlackStandIn) -> None:
    """A channel the bot was invited to, other than the approval channel: where people mention it."""
    slack.add_channel(SALES, "sales", member=True)


def test_a_dm_is_answered_in_a_thread_under_it(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A plain DM gets Lexi's answer in a thread under it, with no assistant-pane call."""
    message = _dm(bot, "who are you?")
    (call,) = sandbox.calls_to(*CHAT)
    assert call.body["message"] == "who are you?"
    (reply,) = _answers(slack, message)
    assert reply.startswith("*Lexi:* I'm Lexi")
    assert [m.text for m in slack.messages(message.channel) if m.thread_ts is None] == ["who are you?"]
    assert _no_pane_calls(slack)


def test_a_dm_thread_continues_its_conversation_and_a_new_dm_starts_one(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A reply in the thread under a DM continues its LeadLex conversation; a new top-level DM starts another."""
    first = _dm(bot, "hello")
    _dm(bot, "and again", thread=first)
    second = _dm(bot, "hi")
    opened, continued, other = _conversations(sandbox)
    assert opened is None and other is None and continued is not None
    assert len(_answers(slack, first)) == 2
    assert "(message 2 in this conversation)" in _answers(slack, first)[-1]
    assert "(message 1 in this conversation)" in _answers(slack, second)[-1]
    assert _no_pane_calls(slack)


def test_what_is_waiting_in_a_dm_is_answered_from_the_store(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A "what is waiting?" DM lists the pending task from the bot's records, with no chat call."""
    sandbox.add_task("prospect_search", "Find VPs <!channel> & CFOs")
    bot.poll()
    balance = sandbox.credits
    message = _dm(bot, "what is waiting for me?")
    assert sandbox.calls_to(*CHAT) == [] and sandbox.credits == balance
    (reply,) = _answers(slack, message)
    assert reply.startswith("*1 task waits for your approval:*") and f"/archives/{CHANNEL}/" in reply
    assert "&lt;!channel&gt; &amp; CFOs" in reply and "<!channel>" not in reply


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"bot_id": "B0OTHER"}, id="another bot"),
        pytest.param({"subtype": "bot_message", "bot_id": "B0OTHER"}, id="bot_message"),
        pytest.param({"subtype": "message_changed"}, id="an edit"),
        pytest.param({"user": "UBOT", "bot_id": "B0LEXI"}, id="the bot itself"),
    ],
)
def test_dms_from_bots_or_with_a_subtype_are_ignored(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, extra: dict[str, str]
) -> None:
    """Another bot's DM, the bot's own, or an edit gets no answer."""
    message = _dm(bot, "hello", **extra)
    assert sandbox.calls_to(*CHAT) == [] and _answers(slack, message) == []


def test_a_mention_is_answered_in_a_thread_under_it_without_the_mention(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A mention in a channel other than the approval one is answered in a thread; Lexi never sees the mention."""
    message = _mention(bot, "<@UBOT> who are you?")
    (call,) = sandbox.calls_to(*CHAT)
    assert call.body["message"] == "who are you?"
    (reply,) = _answers(slack, message)
    assert reply.startswith("*Lexi:* I'm Lexi")
    assert [m.text for m in slack.messages(SALES) if m.thread_ts is None] == ["<@UBOT> who are you?"]
    assert _no_pane_calls(slack)


def test_a_mention_in_a_thread_is_answered_there_in_its_conversation(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A second mention in the thread of the first continues the same conversation, answered in that thread."""
    first = _mention(bot, "<@UBOT> hello")
    _mention(bot, "<@UBOT|lexi-bot>: and again", thread=first)
    opened, continued = _conversations(sandbox)
    assert opened is None and continued is not None
    assert sandbox.calls_to(*CHAT)[-1].body["message"] == "and again"
    assert "(message 2 in this conversation)" in _answers(slack, first)[-1]


def test_a_bare_mention_is_greeted_in_a_thread(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A mention with nothing more gets the greeting in a thread, and costs no chat call."""
    message = _mention(bot, "<@UBOT>")
    assert _answers(slack, message) == [assistant.GREETING]
    assert sandbox.calls_to(*CHAT) == []


def test_mention_answers_are_escaped(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Lexi's words go into the channel's thread escaped: an echoed <!channel> never pings anyone."""
    message = _mention(bot, "<@UBOT> find CFOs <!channel> in Germany")
    (call,) = sandbox.calls_to(*CHAT)
    assert call.body["message"] == "find CFOs <!channel> in Germany"
    reply, *card = _answers(slack, message)  # a task Lexi prepared: its card follows her answer in the thread
    assert "<!channel>" not in reply and "&lt;!channel&gt;" in reply
    assert len(card) == 1


def test_a_mention_by_a_bot_is_ignored(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Another app's bot mentioning lexi-bot gets no answer (two bots must not talk to each other forever)."""
    message = _mention(bot, "<@UBOT> hello", user="UOTHERBOT", bot_id="B0OTHER")
    assert sandbox.calls_to(*CHAT) == [] and _answers(slack, message) == []


@pytest.mark.parametrize("where", ["dm", "mention"])
def test_out_of_credits_is_told_in_the_thread(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, where: str
) -> None:
    """A 402 insufficient_credits is told in plain words in the thread under the DM or mention; chat is called once."""
    sandbox.credits = 0
    message = _dm(bot, "find CFOs") if where == "dm" else _mention(bot, "<@UBOT> find CFOs")
    assert len(sandbox.calls_to(*CHAT)) == 1
    assert _answers(slack, message) == [
        "LeadLex has no credits left for Lexi. Add credits to the LeadLex workspace, then ask again."
    ]
    assert _no_pane_calls(slack)


@pytest.mark.slow
def test_a_mention_is_acknowledged_before_lexi_answers(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """With Lexi taking 2 s, Slack's app_mention event is acknowledged at once; the answer follows in the thread."""
    sandbox.latency = 2.0
    try:
        started = time.monotonic()
        message = _mention(bot, "<@UBOT> hello", settle=False)
        assert time.monotonic() - started < 1.5
        assert _answers(slack, message) == []
        bot.settle(timeout=30)
    finally:
        sandbox.latency = 0.0
    assert len(_answers(slack, message)) == 1


def test_a_message_too_long_for_lexi_is_refused_in_its_thread(bot: BotHarness, sandbox: Sandbox) -> None:
    """A DM or a mention longer than `/lexi ask` allows is answered with the same limit; nothing reaches Lexi."""
    dm = _dm(bot, "x" * (MESSAGE_MAX + 1))
    mention = _mention(bot, f"<@{bot.slack.bot_user_id}> " + "y" * (MESSAGE_MAX + 1))
    assert _answers(bot.slack, dm) == [TOO_LONG]
    assert _answers(bot.slack, mention) == [TOO_LONG]
    assert sandbox.calls_to(*CHAT) == []
