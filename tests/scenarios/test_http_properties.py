"""Issue 11, property-based: whatever arrives on the two request endpoints, the bot answers < 500 and keeps serving."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.dev.standin import payloads
from tests.support.harness import SIGNING_SECRET, WEBHOOK_SECRET, BotHarness

ENDPOINTS = ("/slack/events", "/lexi/webhooks")
#: Field names and type values Slack and LeadLex use, so generated objects reach deep into the handlers.
KEYS = (
    "type",
    "event",
    "event_id",
    "actions",
    "user",
    "team",
    "enterprise",
    "channel",
    "view",
    "container",
    "message",
    "command",
    "text",
    "payload",
    "challenge",
    "authorizations",
    "trigger_id",
    "response_url",
    "api_app_id",
    "token",
    "state",
    "data",
    "task",
    "id",
    "status",
    "timestamp",
    "created_at",
    "value",
)
TYPES = (
    "event_callback",
    "url_verification",
    "block_actions",
    "view_submission",
    "view_closed",
    "shortcut",
    "app_home_opened",
    "member_joined_channel",
    "task.updated",
    "task.created",
    "app_rate_limited",
)

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20), st.sampled_from(TYPES)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=25,
)
_json_bytes = _json.map(lambda value: json.dumps(value).encode())
_form_payload = _json.map(lambda value: urlencode({"payload": json.dumps(value)}).encode())
_form = st.dictionaries(st.sampled_from(KEYS), st.text(max_size=20), max_size=5).map(lambda d: urlencode(d).encode())
_deep = st.integers(min_value=500, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
_bodies = st.one_of(st.binary(max_size=512), _json_bytes, _form_payload, _form, _deep)
_content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data",
            "application/json; charset=utf-16",
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.strip),
)


def _headers(endpoint: str, body: bytes, content_type: str, *, signed: bool) -> dict[str, Any]:
    """The request's headers: its content type and, when `signed`, a valid signature for the endpoint."""
    headers: dict[str, Any] = {"Content-Type": content_type} if content_type else {}
    if signed and endpoint == "/slack/events":
        headers.update(payloads.sign(SIGNING_SECRET, body))
    elif signed:
        headers["X-LeadLex-Signature"] = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["X-LeadLex-Timestamp"] = datetime.now(UTC).isoformat()
    return headers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(ENDPOINTS), body=_bodies, content_type=_content_types, signed=st.booleans())
def test_any_request_is_answered_below_500(
    hooked: BotHarness, endpoint: str, body: bytes, content_type: str, *, signed: bool
) -> None:
    """Arbitrary bytes, JSON and content types, signed or not: every answer is < 500, unsigned ones are 401."""
    response = hooked.http.post(
        f"{hooked.url}{endpoint}", content=body, headers=_headers(endpoint, body, content_type, signed=signed)
    )
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    if not signed:
        assert response.status_code == 401


def test_the_bot_keeps_serving_after_the_fuzzing(hooked: BotHarness) -> None:
    """After a burst of hostile requests on both endpoints, /healthz and a signed command still answer."""
    for endpoint in ENDPOINTS:
        for body in (b"\xff" * 100, b"[" * 10_000, b"null", b"payload=%5B%5D"):
            assert (
                hooked.post(body, "application/json").status_code < 500
                if endpoint == "/slack/events"
                else hooked.http.post(f"{hooked.url}{endpoint}", content=body).status_code < 500
            )
    assert hooked.http.get(f"{hooked.url}/healthz").status_code == 200
    assert hooked.command("help").status_code == 200
