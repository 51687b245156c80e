"""What Slack sends *to* an app (clicks, modal submissions, slash commands, events), signed as Slack signs.

Build a payload with a `build_*` function, encode it with the matching `encode_*`, and send the body with the
headers from `signed_request`; Bolt's signature check accepts them like real Slack traffic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

#: The ids the stand-in's app uses (see `bot.dev.standin.webapi.Workspace`).
API_APP_ID = "A0LEXI"
BOT_ID = "B0LEXI"
#: Slack's deprecated verification token, still present in every payload.
VERIFICATION_TOKEN = "verification-token"
#: Placeholders for a trigger_id and a response URL when a test does not need working ones; the URL points at
#: a closed loopback port so that a stray post fails fast instead of leaving the machine.
DEFAULT_TRIGGER_ID = "13345224609.738474920.8088930838d88f008e0"
DEFAULT_RESPONSE_URL = "http://127.0.0.1:9/response/placeholder"

_FORM = "application/x-www-form-urlencoded"


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Return the X-Slack-Request-Timestamp and X-Slack-Signature headers Slack would send with `body`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{stamp}:".encode() + body
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def signed_request(signing_secret: str, body: bytes, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    """Return every header to send with `body`: its Content-Type and Slack's signature headers."""
    return {"Content-Type": content_type, **sign(signing_secret, body, timestamp)}


def encode_interactive(payload: dict[str, Any]) -> tuple[bytes, str]:
    """Encode an interactivity payload as Slack does: a form with one `payload` field holding JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8"), _FORM


def encode_command(fields: dict[str, str]) -> tuple[bytes, str]:
    """Encode slash-command fields as Slack does: a plain form."""
    return urlencode(fields).encode("utf-8"), _FORM


def encode_event(envelope: dict[str, Any]) -> tuple[bytes, str]:
    """Encode an Events API envelope as Slack does: JSON."""
    return json.dumps(envelope).encode("utf-8"), "application/json"


def _user(user: str, team_id: str) -> dict[str, str]:
    """The `user` object of an interactivity payload (name guessed from ids like UALICE → alice)."""
    name = user.removeprefix("U").lower()
    return {"id": user, "username": name, "name": name, "team_id": team_id}


def _team(team_id: str) -> dict[str, str]:
    """The `team` object of an interactivity payload."""
    return {"id": team_id, "domain": "lexi-test"}


def build_block_action(
    *,
    action_id: str,
    value: str,
    user: str = "UALICE",
    channel: str = "C0LEXI",
    channel_name: str = "lexi-approvals",
    message_ts: str | None = None,
    message: dict[str, Any] | None = None,
    trigger_id: str = DEFAULT_TRIGGER_ID,
    response_url: str = DEFAULT_RESPONSE_URL,
    team_id: str = "T0001",
    block_id: str = "b",
    container: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the block_actions payload Slack sends when `user` clicks a button in a channel message."""
    ts = message_ts or (message or {}).get("ts") or "1763900000.000100"
    if message is None:
        message = {"type": "message", "user": "UBOT", "bot_id": BOT_ID, "text": "", "ts": ts, "blocks": []}
    return {
        "type": "block_actions",
        "user": _user(user, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container or {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": trigger_id,
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def _state_values(values: dict[str, Any]) -> dict[str, Any]:
    """Expand `{block_id: {action_id: "text"}}` into Slack's state values; dict entries pass through."""
    return {
        block_id: {
            action_id: entry if isinstance(entry, dict) else {"type": "plain_text_input", "value": entry}
            for action_id, entry in actions.items()
        }
        for block_id, actions in values.items()
    }


def _modal(
    view_id: str, callback_id: str, private_metadata: str, values: dict[str, Any], team_id: str
) -> dict[str, Any]:
    """The `view` object of a view_submission or view_closed payload."""
    return {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Lexi"},
        "blocks": [],
        "state": {"values": _state_values(values)},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "root_view_id": view_id,
        "previous_view_id": None,
        "external_id": "",
        "app_id": API_APP_ID,
        "bot_id": BOT_ID,
    }


def build_view_submission(
    *,
    callback_id: str,
    values: dict[str, Any],
    private_metadata: str = "",
    user: str = "UALICE",
    view_id: str = "V1",
    trigger_id: str = DEFAULT_TRIGGER_ID,
    team_id: str = "T0001",
) -> dict[str, Any]:
    """Build the view_submission payload for `user` submitting a modal (values: block→action→text)."""
    return {
        "type": "view_submission",
        "team": _team(team_id),
        "user": _user(user, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": _modal(view_id, callback_id, private_metadata, values, team_id),
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def build_view_closed(
    *,
    callback_id: str,
    private_metadata: str = "",
    user: str = "UALICE",
    view_id: str = "V1",
    team_id: str = "T0001",
) -> dict[str, Any]:
    """Build the view_closed payload Slack sends when `user` cancels a modal that asked to be notified."""
    return {
        "type": "view_closed",
        "team": _team(team_id),
        "user": _user(user, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "view": _modal(view_id, callback_id, private_metadata, {}, team_id),
        "is_cleared": False,
        "is_enterprise_install": False,
        "enterprise": None,
    }


def build_slash_command(
    *,
    command: str = "/lexi",
    text: str = "",
    user: str = "UALICE",
    channel: str = "C0LEXI",
    channel_name: str = "lexi-approvals",
    response_url: str = DEFAULT_RESPONSE_URL,
    trigger_id: str = DEFAULT_TRIGGER_ID,
    team_id: str = "T0001",
) -> dict[str, str]:
    """Build the form fields Slack posts when `user` runs a slash command in a channel."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": "lexi-test",
        "channel_id": channel,
        "channel_name": channel_name,
        "user_id": user,
        "user_name": user.removeprefix("U").lower(),
        "command": command,
        "text": text,
        "api_app_id": API_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def build_app_home_opened(
    *,
    user: str = "UALICE",
    tab: str = "home",
    team_id: str = "T0001",
    bot_user_id: str = "UBOT",
    enterprise_id: str | None = None,
    is_enterprise_install: bool = False,
) -> dict[str, Any]:
    """Build the Events API envelope Slack sends when `user` opens the app's Home (or Messages) tab.

    On Enterprise Grid, `enterprise_id` names the organization, and `is_enterprise_install` says the app was
    installed org-wide (Bolt then authorizes the request by the organization, not the workspace).
    """
    now = time.time()
    event = {
        "type": "app_home_opened",
        "user": user,
        "channel": "D" + user.removeprefix("U"),
        "tab": tab,
        "event_ts": f"{now:.6f}",
    }
    return _event_envelope(event, team_id, bot_user_id, enterprise_id, is_enterprise_install=is_enterprise_install)


def build_assistant_thread_started(
    *,
    user: str,
    channel: str,
    thread_ts: str,
    context_channel: str | None = None,
    team_id: str = "T0001",
    bot_user_id: str = "UBOT",
    event_type: str = "assistant_thread_started",
) -> dict[str, Any]:
    """Build the envelope Slack sends when `user` opens the assistant pane (a thread in their DM with the app).

    `context_channel` is the channel they were looking at (the context is empty without one). With `event_type`
    "assistant_thread_context_changed", it is the envelope sent when they then look at another channel.
    """
    context: dict[str, str] = {}
    if context_channel is not None:
        context = {"channel_id": context_channel, "team_id": team_id, "enterprise_id": ""}
    event = {
        "type": event_type,
        "assistant_thread": {
            "user_id": user,
            "context": context,
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
        "event_ts": f"{time.time():.6f}",
    }
    return _event_envelope(event, team_id, bot_user_id, None, is_enterprise_install=False)


def build_assistant_thread_context_changed(**kwargs: Any) -> dict[str, Any]:
    """Build the envelope Slack sends when the person with the pane open looks at another channel (its context)."""
    return build_assistant_thread_started(event_type="assistant_thread_context_changed", **kwargs)


def build_im_message(
    *,
    user: str,
    channel: str,
    text: str,
    ts: str,
    thread_ts: str | None = None,
    subtype: str | None = None,
    bot_id: str | None = None,
    team_id: str = "T0001",
    bot_user_id: str = "UBOT",
    parent_user_id: str | None = None,
) -> dict[str, Any]:
    """Build the envelope of a `message` event in the app's DM (channel_type "im"), as in an assistant thread.

    With `thread_ts` it is a message in that thread, whose first message `parent_user_id` wrote (by default the
    bot: the pane's threads; a person for a thread under their own DM); `subtype` and `bot_id` make it an edit
    or another bot's message, which Slack delivers too.
    """
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "team": team_id,
        "user_team": team_id,
        "source_team": team_id,
        "channel": channel,
        "event_ts": ts,
        "channel_type": "im",
    }
    if thread_ts is not None:
        event.update(thread_ts=thread_ts, parent_user_id=parent_user_id or bot_user_id)
    if subtype is not None:
        event["subtype"] = subtype
    if bot_id is not None:
        event["bot_id"] = bot_id
    return _event_envelope(event, team_id, bot_user_id, None, is_enterprise_install=False)


def build_app_mention(
    *,
    user: str,
    channel: str,
    text: str,
    ts: str,
    thread_ts: str | None = None,
    bot_id: str | None = None,
    team_id: str = "T0001",
    bot_user_id: str = "UBOT",
) -> dict[str, Any]:
    """Build the envelope Slack sends when a message in a channel mentions the app's bot (`<@UBOT> …` in `text`).

    With `thread_ts` the mention is a reply in that thread; with `bot_id` another app's bot wrote it.
    """
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "team": team_id,
        "channel": channel,
        "event_ts": ts,
        "client_msg_id": secrets.token_hex(16),
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    if bot_id is not None:
        event["bot_id"] = bot_id
    return _event_envelope(event, team_id, bot_user_id, None, is_enterprise_install=False)


def build_app_uninstalled(
    *, team_id: str = "T0001", enterprise_id: str | None = None, is_enterprise_install: bool = False
) -> dict[str, Any]:
    """Build the envelope Slack sends when a workspace (or, org-wide, an organization) removes the app."""
    event = {"type": "app_uninstalled", "event_ts": f"{time.time():.6f}"}
    return _event_envelope(event, team_id, "UBOT", enterprise_id, is_enterprise_install=is_enterprise_install)


def build_tokens_revoked(
    *,
    team_id: str = "T0001",
    bot_user_ids: list[str] | None = None,
    user_ids: list[str] | None = None,
    enterprise_id: str | None = None,
) -> dict[str, Any]:
    """Build the envelope Slack sends when tokens of the app are revoked: bot tokens by their bot user ids."""
    event = {
        "type": "tokens_revoked",
        "tokens": {"oauth": list(user_ids or []), "bot": list(bot_user_ids or ["UBOT"])},
        "event_ts": f"{time.time():.6f}",
    }
    return _event_envelope(event, team_id, "UBOT", enterprise_id, is_enterprise_install=False)


def _event_envelope(
    event: dict[str, Any],
    team_id: str,
    bot_user_id: str,
    enterprise_id: str | None,
    *,
    is_enterprise_install: bool,
) -> dict[str, Any]:
    """Wrap an event the way the Events API delivers it, with its authorization for the app's bot."""
    envelope: dict[str, Any] = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(float(event["event_ts"])),
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": is_enterprise_install,
            }
        ],
        "is_ext_shared_channel": False,
    }
    if enterprise_id is not None:
        envelope["enterprise_id"] = enterprise_id
    return envelope
