"""The gate in front of Bolt: a Slack request is verified on its raw bytes, then parsed and checked for shape.

Bolt verifies and parses too, but it decodes the body before verifying, trusts any JSON to be an object and
reads nested fields without checking their types, so a hostile body became a 500 with a traceback. Here a
request that is not provably Slack's answers 401 before anything is parsed, and one that is signed but is not
a payload Slack sends answers 400; only the rest reaches Bolt (which still verifies, as defence in depth).

In multi-workspace mode the gate also hands Bolt's OAuth flow the installer's browser GETs (the install page and
Slack's redirect back), which carry no Slack signature: the flow's single-use state, bound to a cookie, is what
proves them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from slack_bolt import App
from slack_bolt.context import BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

#: Deeper JSON than this is not a Slack payload (Slack's own nest about a dozen levels).
MAX_DEPTH = 64
#: A Unix time in seconds has 10 digits until the year 2286; this leaves room and refuses absurd lengths.
_MAX_TIMESTAMP_DIGITS = 12
#: A `team` on the install link preselects a workspace: a Slack team or enterprise id. Bolt pastes it into Slack's
#: authorize URL unescaped, so anything else (an `&` smuggling in parameters) is refused.
_TEAM_ID = re.compile(r"[TE][A-Z0-9]{2,30}")
#: For the fields Bolt and our listeners read without checking, the JSON types Slack sends.
_SHAPES: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "event": (dict,),
    "event_id": (str,),
    "authorizations": (list,),
    "enterprise": (str, dict, type(None)),
    "team": (str, dict, type(None)),
    "user": (str, dict, type(None)),
    "channel": (str, dict, type(None)),
    "actions": (list,),
    "view": (dict,),
    "container": (dict,),
    "message": (dict,),
    "state": (dict,),
}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, headers and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Refused(Exception):
    """A request refused before Bolt sees it, with its status and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object of sane depth, or Refused(400)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, "the body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise Refused(400, "the body is not a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise Refused(400, "the body nests too deeply")
    return value


def parse(text: str, content_type: str | None) -> dict[str, Any]:
    """The payload Bolt would parse from `text`, checked: an object whose fields have the types Slack sends."""
    if not text:
        raise Refused(400, "the body is empty")
    payload = _payload(text, content_type)
    _check_shape(payload)
    return payload


def _payload(text: str, content_type: str | None) -> dict[str, Any]:
    """The payload in a JSON body, a form's payload field, or a slash command's form; Refused(400) otherwise."""
    if content_type == "application/json" or text.startswith("{"):  # exactly Bolt's rule (parse_body)
        payload = _json_object(text)
        if not isinstance(payload.get("type"), str):
            raise Refused(400, "the body has no type")
    else:
        form = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" in form:  # an interaction: its payload is JSON
            payload = _json_object(form["payload"])
            if not isinstance(payload.get("type"), str):
                raise Refused(400, "the payload has no type")
        elif "command" in form or "ssl_check" in form:  # a slash command, even one whose text says "payload"
            payload = form  # (Bolt's own parse reads a form that merely contains the word "payload" as empty)
        else:
            raise Refused(400, "the form is neither an interaction nor a slash command")
    return payload


def _check_shape(payload: dict[str, Any]) -> None:
    """Refused(400) unless the fields Bolt and our listeners read have the types Slack sends."""
    for key, types in _SHAPES.items():
        if key in payload and not isinstance(payload[key], types):
            raise Refused(400, f"the field {key} has the wrong type")
    event = payload.get("event")
    if payload.get("type") == "event_callback" and not (isinstance(event, dict) and isinstance(event.get("type"), str)):
        raise Refused(400, "the event has no type")
    if any(not isinstance(item, dict) for key in ("authorizations", "actions") for item in payload.get(key) or []):
        raise Refused(400, "a list holds something other than objects")


def bolt_request(text: str, payload: dict[str, Any], query: str, headers: Mapping[str, str]) -> BoltRequest:
    """What `BoltRequest(body=text, ...)` makes, from the payload the gate parsed, without parsing the body again.

    A click's body is a form holding its payload as percent-encoded JSON: decoding it is a tenth of the click's CPU.
    `parse` follows Bolt's own rule (parse_body), so `payload` is the body Bolt would have parsed; the raw text stays
    for Bolt's signature check.
    """
    as_bolt_takes_them: dict[str, str | Sequence[str]] = dict(headers)
    request = BoltRequest(body="", query=query, headers=as_bolt_takes_them)
    request.raw_body = text
    request.body = payload
    request.context = build_context(BoltContext({}), payload)
    return request


class SlackGate:
    """Verifies, parses and hands a Slack request to Bolt; anything else gets a 4xx with a short JSON reason."""

    def __init__(self, app: App, signing_secret: str | None) -> None:
        self._app = app
        # Without a secret nothing can be proven to be Slack's: every request is refused (fail closed).
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def verified(self, body: bytes, headers: dict[str, str]) -> str:
        """The body as text when its Slack signature and timestamp (within 5 minutes) hold; else Refused(401)."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        # The verifier would raise on a non-numeric timestamp, a non-ASCII signature or bytes that are not UTF-8
        # (Slack signs UTF-8 text, so such a body cannot carry its signature).
        if self._verifier is None or not (
            timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS and signature.isascii()
        ):
            raise Refused(401, "invalid or missing Slack signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(401, "invalid or missing Slack signature") from None
        if not self._verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            raise Refused(401, "invalid or expired Slack signature")
        return text

    def handle(self, body: bytes, headers: dict[str, str], query: str) -> Answer:
        """Answer one POST to /slack/events."""
        try:
            text = self.verified(body, headers)
            payload = parse(text, _content_type(headers))
            try:
                request = bolt_request(text, payload, query, headers)
            except Exception as exc:  # noqa: BLE001 - whatever Bolt cannot make a request of is malformed
                log.info("refused a Slack request Bolt cannot read (%s)", type(exc).__name__)
                raise Refused(400, "the body is not a Slack payload") from None
        except Refused as refused:
            if refused.status == HTTPStatus.UNAUTHORIZED:
                log.info("refused a Slack request: %s", refused.reason)
            return _refusal(refused)
        return _answer_of(self._app.dispatch(request))

    def install(self, headers: dict[str, str], query: str) -> Answer:
        """Answer GET /slack/install (multi-workspace mode): Bolt's "Add to Slack" page with a new state."""
        teams = parse_qs(query).get("team", [])
        if not all(_TEAM_ID.fullmatch(team) for team in teams):
            return _text(400, "The team parameter is not a Slack workspace id.")
        return self._oauth(lambda flow, request: flow.handle_installation(request), headers, query)

    def oauth_redirect(self, headers: dict[str, str], query: str) -> Answer:
        """Answer GET /slack/oauth_redirect (multi-workspace mode): Bolt finishes the install, or says why not."""
        return self._oauth(lambda flow, request: flow.handle_callback(request), headers, query)

    def _oauth(self, step: Callable[[Any, BoltRequest], BoltResponse], headers: dict[str, str], query: str) -> Answer:
        """Run one step of Bolt's OAuth flow on a browser GET; 404 without the flow, 503 when it breaks."""
        flow = self._app.oauth_flow
        if flow is None:
            return _text(404, "Not Found")
        try:
            response = step(flow, BoltRequest(body="", query=query, headers=dict(headers)))
        except Exception as exc:  # noqa: BLE001 - whatever broke, the installer gets a 503 page
            # The database or Slack failed mid-install: no traceback to the browser, and only the error's type to
            # the log (a database error's text can quote the statement's parameters, a bot token among them).
            log.warning("an install step failed (%s)", type(exc).__name__)
            return _text(503, "lexi-bot could not handle this installation step right now. Please try again.")
        return _answer_of(response)


def _answer_of(response: BoltResponse) -> Answer:
    """Bolt's response as our Answer (every value of a repeated header kept; the length is the front's)."""
    answer_headers = [
        (name, value)
        for name, values in response.headers.items()
        for value in values
        if name.lower() != "content-length"
    ]
    payload = response.body.encode("utf-8") if isinstance(response.body, str) else bytes(response.body or b"")
    return Answer(response.status, answer_headers, payload)


def _text(status: int, text: str) -> Answer:
    """A plain-text answer for a person's browser."""
    return Answer(status, [("Content-Type", "text/plain; charset=utf-8")], text.encode("utf-8"))


def _content_type(headers: dict[str, str]) -> str | None:
    """The media type as Bolt reads it (the part before any `;`)."""
    value = headers.get("content-type")
    return value.split(";")[0] if value else None


def _refusal(refused: Refused) -> Answer:
    """A 4xx with a short JSON reason, never a traceback."""
    body = json.dumps({"ok": False, "error": refused.reason}).encode()
    return Answer(refused.status, [("Content-Type", "application/json")], body)
