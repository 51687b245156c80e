"""The gate hands Bolt the payload it parsed (bot.slack.gate.bolt_request): exactly the request Bolt would make."""

from __future__ import annotations

from typing import Any

import pytest
from slack_bolt.request import BoltRequest

from bot.dev.standin import payloads
from bot.slack.gate import _content_type, bolt_request, parse


def _bodies() -> list[tuple[str, bytes, str]]:
    """Every kind of body Slack sends the bot: a click, a modal, a slash command, events (JSON), hostile text."""
    note = '<!channel> & 100% "quoted" ünïcode + spaces;=&x='
    return [
        ("click", *payloads.encode_interactive(payloads.build_block_action(action_id="approve", value="t-1"))),
        (
            "modal",
            *payloads.encode_interactive(
                payloads.build_view_submission(
                    callback_id="dismiss", values={"reason": {"reason": note}}, private_metadata='{"task": "t-1"}'
                )
            ),
        ),
        ("command", *payloads.encode_command(payloads.build_slash_command(text=f"dismiss t-1 {note}"))),
        ("empty command", *payloads.encode_command(payloads.build_slash_command(text=""))),
        (
            "home",
            *payloads.encode_event(payloads.build_app_home_opened(enterprise_id="E1", is_enterprise_install=True)),
        ),
        (
            "assistant",
            *payloads.encode_event(
                payloads.build_assistant_thread_started(user="UALICE", channel="D1", thread_ts="1.2")
            ),
        ),
    ]


def _as_bolt_makes_it(request: BoltRequest) -> dict[str, Any]:
    return {
        "raw_body": request.raw_body,
        "body": request.body,
        "context": dict(request.context),
        "query": request.query,
        "headers": request.headers,
        "content_type": request.content_type,
        "mode": request.mode,
        "lazy_only": request.lazy_only,
        "lazy_function_name": request.lazy_function_name,
    }


@pytest.mark.parametrize(("kind", "body", "content_type"), _bodies(), ids=[kind for kind, _b, _c in _bodies()])
def test_the_gates_request_is_the_one_bolt_makes(kind: str, body: bytes, content_type: str) -> None:  # noqa: ARG001
    """Body, context (team, user, channel, response_url …), headers and query: equal to BoltRequest(body=text)."""
    text = body.decode("utf-8")
    headers = {**payloads.signed_request("secret", body, content_type + "; charset=utf-8"), "x-extra": "1"}
    query = "a=1&b=two"
    ours = bolt_request(text, parse(text, _content_type(headers)), query, headers)
    bolts = BoltRequest(body=text, query=query, headers=dict(headers))
    assert _as_bolt_makes_it(ours) == _as_bolt_makes_it(bolts)
    assert ours.body  # not vacuous: the payload is there
    assert _as_bolt_makes_it(ours.to_copyable()) == _as_bolt_makes_it(bolts.to_copyable())


def test_a_command_whose_text_says_payload_is_a_command() -> None:
    """Bolt alone reads a form containing the word "payload" as an empty body; the gate hands it the command."""
    body, content_type = payloads.encode_command(payloads.build_slash_command(text="dismiss t-1 payload=wrong"))
    text = body.decode("utf-8")
    assert BoltRequest(body=text, headers={"content-type": content_type}).body == {}  # Bolt's own parse
    request = bolt_request(text, parse(text, content_type), "", {"content-type": content_type})
    assert (request.body["command"], request.body["text"]) == ("/lexi", "dismiss t-1 payload=wrong")
    assert request.context["user_id"] == "UALICE"
