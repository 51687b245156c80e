"""Issue 11: a captured Slack request re-sent within its signing window, or an event Slack retries, works once."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from bot.db.store import DECISIONS
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime
from bot.slack import blocks
from tests.support.harness import CHANNEL, SIGNING_SECRET, BotHarness
from tests.support.socket_mode import SocketModeServer


def _send(bot: BotHarness, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST exactly these bytes and headers to /slack/events, as an attacker replaying a capture would."""
    response = bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    return response.status_code, response.text


def test_a_replayed_ask_calls_lexi_once(bot: BotHarness, sandbox: Sandbox) -> None:
    """The same signed `/lexi ask` sent three times makes one LeadLex chat call; the replays get an empty 200."""
    fields = payloads.build_slash_command(
        text="ask find CFOs in Berlin", user="UALICE", response_url=bot.slack.new_response_url()
    )
    body, content_type = payloads.encode_command(fields)
    headers = payloads.signed_request(SIGNING_SECRET, body, content_type)
    first = _send(bot, body, headers)
    assert first[0] == 200 and first[1]
    bot.settle()
    assert [_send(bot, body, headers) for _ in range(2)] == [(200, ""), (200, "")]
    bot.settle()
    assert len(sandbox.calls_to("POST", "/v1/lexi/chat")) == 1


def _captured_click(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> tuple[str, bytes, dict[str, str]]:
    """A new task announced, and Alice's signed Approve click on its card as captured on the wire."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales")["id"]
    bot.poll()
    payload = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION,
        value=task_id,
        user="UALICE",
        channel=CHANNEL,
        message_ts=bot.store.get(task_id).message_ts,
        trigger_id=slack.new_trigger_id("UALICE"),
        response_url=slack.new_response_url(),
    )
    body, content_type = payloads.encode_interactive(payload)
    return task_id, body, payloads.signed_request(SIGNING_SECRET, body, content_type)


def test_a_replayed_approve_click_decides_once_and_answers_nothing(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A captured Approve click re-sent gets an empty 200: one decision, no second answer or audit entry."""
    task_id, body, headers = _captured_click(bot, sandbox, slack)
    assert _send(bot, body, headers)[0] == 200
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    audit, responses, ephemerals = len(bot.store.audit_events()), len(slack.responses), len(slack.ephemerals)
    assert _send(bot, body, headers) == (200, "")
    bot.settle()
    assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve")) == 1
    assert (len(bot.store.audit_events()), len(slack.responses), len(slack.ephemerals)) == (
        audit,
        responses,
        ephemerals,
    )


def test_a_click_replayed_while_it_is_decided_journals_nothing(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """The replay arrives while the first click's decision is still in flight: one journal entry, no second answer.

    The click's replay key is remembered in the same write as its decision (not in a write of its own first).
    """
    task_id, body, headers = _captured_click(bot, sandbox, slack)
    answers = [_send(bot, body, headers) for _ in range(3)]  # back to back: the first is not carried out yet
    bot.settle()
    assert answers[0][0] == 200 and answers[1:] == [(200, ""), (200, "")]
    decisions = DECISIONS.c
    with bot.store.engine.connect() as conn:
        journaled = conn.scalar(select(func.count()).select_from(DECISIONS).where(decisions.task_id == task_id))
    assert journaled == 1
    assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve")) == 1
    assert sandbox.task(task_id)["status"] == "approved"
    assert slack.ephemerals == [] and slack.responses == []


def _publishes(slack: SlackStandIn, user: str) -> int:
    """How many times `user`'s Home was published."""
    return sum(1 for call in slack.calls_to("views.publish") if call.args.get("user_id") == user)


def test_a_retried_event_is_handled_once(bot: BotHarness, slack: SlackStandIn) -> None:
    """Slack's retry of an event (same event_id, new signature, X-Slack-Retry-Num) does not repeat its work."""
    body, content_type = payloads.encode_event(payloads.build_app_home_opened(user="UALICE"))
    now = int(time.time())
    assert _send(bot, body, payloads.signed_request(SIGNING_SECRET, body, content_type, now))[0] == 200
    bot.wait_for(lambda: _publishes(slack, "UALICE") == 1)
    retry = {
        **payloads.signed_request(SIGNING_SECRET, body, content_type, now + 1),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    assert _send(bot, body, retry) == (200, "")
    # A later, different event is handled after the retry would have been; then the retry's absence shows.
    marker, _ = payloads.encode_event(payloads.build_app_home_opened(user="UBOB"))
    assert bot.post(marker, content_type).status_code == 200
    bot.wait_for(lambda: _publishes(slack, "UBOB") == 1)
    bot.settle()
    assert _publishes(slack, "UALICE") == 1


def test_a_retried_event_is_handled_once_in_socket_mode(
    socket_bot: tuple[Runtime, SocketModeServer],
    slack: SlackStandIn,
) -> None:
    """Over Socket Mode (no signature) Slack's redelivery of an event_id is acknowledged and not handled again."""
    runtime, server = socket_bot
    event = payloads.build_app_home_opened(user="UALICE")
    server.wait_ack(server.send("events_api", event))
    slack.wait_for(lambda: _publishes(slack, "UALICE") == 1)
    server.wait_ack(server.send("events_api", event))  # a redelivery: Slack sets retry_attempt, same event_id
    server.wait_ack(server.send("events_api", payloads.build_app_home_opened(user="UBOB")))
    slack.wait_for(lambda: _publishes(slack, "UBOB") == 1)
    assert runtime.drain(10)
    assert _publishes(slack, "UALICE") == 1


def test_url_verification_answers_every_time(bot: BotHarness) -> None:
    """Slack's URL check is answered with its challenge, however often it is sent (it has no side effects)."""
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"}).encode()
    headers = payloads.signed_request(SIGNING_SECRET, body, "application/json")
    for _ in range(2):
        status, text = _send(bot, body, headers)
        assert status == 200 and "c-123" in text
