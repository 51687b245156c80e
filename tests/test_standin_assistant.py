"""The Slack stand-in's assistant pane and DMs, driven by the real slack_sdk client over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.dev.standin import payloads
from bot.dev.standin.slack import Message, SlackStandIn

TOKEN = "xoxb-test-token"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A running stand-in."""
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> WebClient:
    """The real Web API client pointed at it."""
    return WebClient(token=TOKEN, base_url=slack.api_url)


@pytest.fixture
def thread(slack: SlackStandIn) -> Message:
    """An assistant thread Alice opened."""
    return slack.open_assistant_thread("UALICE")


def _refusal(client: WebClient, method: str, args: dict[str, Any]) -> tuple[str, list[str]]:
    """The error and messages Slack answers a call with (the call must be refused)."""
    with pytest.raises(SlackApiError) as refused:
        client.api_call(method, json=args)
    data = refused.value.response.data
    assert isinstance(data, dict)
    return data["error"], data.get("response_metadata", {}).get("messages", [])


def test_an_assistant_thread_starts_in_the_persons_dm_as_a_new_chat(client: WebClient, thread: Message) -> None:
    """Opening the pane makes a "New chat" (subtype assistant_app_thread) in the DM, which replies can go under."""
    assert thread.channel == "DALICE" and thread.subtype == "assistant_app_thread"
    client.chat_postMessage(channel=thread.channel, thread_ts=thread.ts, text="Hi")
    (parent, reply) = client.conversations_replies(channel=thread.channel, ts=thread.ts)["messages"]
    assert parent["subtype"] == "assistant_app_thread" and parent["text"] == "New chat"
    assert reply["text"] == "Hi" and "subtype" not in reply


def test_status_prompts_and_title_are_recorded_per_thread(
    slack: SlackStandIn, client: WebClient, thread: Message
) -> None:
    """Statuses (an empty one clears), suggested prompts and titles are kept in order for the thread."""
    client.assistant_threads_setStatus(channel_id=thread.channel, thread_ts=thread.ts, status="thinking…")
    client.assistant_threads_setStatus(channel_id=thread.channel, thread_ts=thread.ts, status="")
    prompts = [{"title": "Hi", "message": "Hello Lexi"}]
    client.assistant_threads_setSuggestedPrompts(channel_id=thread.channel, thread_ts=thread.ts, prompts=prompts)
    client.assistant_threads_setTitle(channel_id=thread.channel, thread_ts=thread.ts, title="Prospects")
    updates = slack.thread_updates(thread.channel, thread.ts)
    assert [(u.kind, u.value) for u in updates] == [
        ("status", "thinking…"),
        ("status", ""),
        ("prompts", prompts),
        ("title", "Prospects"),
    ]
    assert [u.value for u in slack.thread_updates(thread.channel, thread.ts, "title")] == ["Prospects"]


@pytest.mark.parametrize("missing", ["channel_id", "thread_ts"])
@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("assistant.threads.setStatus", {"status": "thinking…"}),
        ("assistant.threads.setSuggestedPrompts", {"prompts": [{"title": "a", "message": "b"}]}),
        ("assistant.threads.setTitle", {"title": "t"}),
    ],
)
def test_channel_id_and_thread_ts_are_required(
    client: WebClient, thread: Message, method: str, extra: dict[str, Any], missing: str
) -> None:
    """Each assistant.threads method refuses a call without channel_id or thread_ts, as Slack does."""
    args = {"channel_id": thread.channel, "thread_ts": thread.ts, **extra}
    del args[missing]
    assert _refusal(client, method, args) == ("invalid_arguments", [f"[ERROR] missing required field: {missing}"])


def test_bad_arguments_are_refused_and_nothing_recorded(
    slack: SlackStandIn, client: WebClient, thread: Message
) -> None:
    """An unknown thread, no status, no title, or too many or malformed prompts are refused; nothing is recorded."""
    where = {"channel_id": thread.channel, "thread_ts": thread.ts}
    assert _refusal(client, "assistant.threads.setStatus", {**where, "thread_ts": "1.000001", "status": "x"})[0] == (
        "channel_not_found"
    )
    assert _refusal(client, "assistant.threads.setStatus", where)[0] == "invalid_arguments"
    assert _refusal(client, "assistant.threads.setTitle", {**where, "title": ""})[0] == "invalid_arguments"
    five = [{"title": str(i), "message": str(i)} for i in range(5)]
    for prompts in (five, [], [{"title": "no message"}]):
        error, _ = _refusal(client, "assistant.threads.setSuggestedPrompts", {**where, "prompts": prompts})
        assert error == "invalid_arguments"
    assert slack.thread_updates(thread.channel, thread.ts) == []


def test_conversations_open_gives_each_person_one_dm(client: WebClient) -> None:
    """conversations.open answers the person's DM id, the same one again (no_op), and refuses an unknown user."""
    first = client.conversations_open(users="UBOB")
    assert first["channel"]["id"] == "DBOB" and "no_op" not in first.data
    again = client.conversations_open(users="UBOB")
    assert again["channel"]["id"] == "DBOB" and again["no_op"] is True
    with pytest.raises(SlackApiError) as refused:
        client.conversations_open(users="UNOBODY")
    assert refused.value.response["error"] == "user_not_found"
    client.chat_postMessage(channel="DBOB", text="hello Bob")


def test_assistant_payloads_are_shaped_as_slack_sends_them(thread: Message) -> None:
    """The builders give Bolt's Assistant what it matches: a started thread, a context change, a DM thread message."""
    started = payloads.build_assistant_thread_started(
        user="UALICE", channel=thread.channel, thread_ts=thread.ts, context_channel="C0LEXI"
    )
    assert started["type"] == "event_callback" and started["event"]["type"] == "assistant_thread_started"
    assert started["event"]["assistant_thread"]["context"]["channel_id"] == "C0LEXI"
    changed = payloads.build_assistant_thread_context_changed(user="UALICE", channel=thread.channel, thread_ts="1.2")
    assert changed["event"]["type"] == "assistant_thread_context_changed"
    assert changed["event"]["assistant_thread"]["context"] == {}
    message = payloads.build_im_message(user="UALICE", channel=thread.channel, text="hi", ts="3.4", thread_ts="1.2")
    event = message["event"]
    assert (event["type"], event["channel_type"], event["thread_ts"]) == ("message", "im", "1.2")
    assert "subtype" not in event and "bot_id" not in event
