"""Slack requests that cost something run once: replays and Slack's own event retries are acknowledged, not redone.

A signed request stays valid for Slack's 5-minute window, so anyone who captures one can send it again; a slash
command, a click or a modal submission is therefore remembered by its signature (unique per timestamp and body).
Slack retries an event it thinks we missed with a new signature but the same `event_id` (X-Slack-Retry-Num over
HTTP, `retry_attempt` in Socket Mode), so events are remembered by event id. The memory is the database's
seen_requests table, shared by every replica. A replay gets an empty 200: Slack treats it as acknowledged.

When the database is unreachable the check fails open: the request goes on to its listener, which cannot record
a decision either and tells the person so, rather than Slack getting an error and the person nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.db.store import Store, utcnow

log = logging.getLogger(__name__)

#: Where a deferred request's replay key waits in its context for its listener (see `register`).
SIGHTING = "replay_sighting"

#: How long a signature is remembered: Slack's 5-minute window either side of its timestamp.
SIGNED_WINDOW = timedelta(minutes=10)
#: How long an event id is remembered: Slack retries an event for about an hour.
EVENT_WINDOW = timedelta(hours=1)
#: Interactive payloads that act (or open a view that acts); option lookups and the like are not listed.
ACTING_PAYLOADS = frozenset(
    {
        "block_actions",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
        "interactive_message",
        "dialog_submission",
    }
)


def replay_key(body: dict[str, Any], headers: dict[str, Any]) -> tuple[str, timedelta] | None:
    """The key a request is remembered by, and for how long; None for requests that may be repeated freely."""
    kind = body.get("type")
    if kind == "event_callback":
        event_id = body.get("event_id")
        return (f"slack-event:{event_id}", EVENT_WINDOW) if isinstance(event_id, str) and event_id else None
    if "command" in body or kind in ACTING_PAYLOADS:
        signature = headers.get("x-slack-signature")
        if isinstance(signature, (list, tuple)):
            signature = signature[0] if signature else None
        return (f"slack:{signature}", SIGNED_WINDOW) if signature else None  # none in Socket Mode
    return None


def deferred(body: dict[str, Any], actions: Collection[str]) -> bool:
    """Whether a request is a click on one of `actions`, whose listener remembers it in its own write."""
    clicked = body.get("actions") if body.get("type") == "block_actions" else None
    if not isinstance(clicked, list) or len(clicked) != 1 or not isinstance(clicked[0], dict):
        return False
    return clicked[0].get("action_id") in actions


def sighting(context: BoltContext) -> tuple[str, datetime] | None:
    """The replay key a deferring listener records with its decision, and when to forget it (None: none)."""
    found: tuple[str, datetime] | None = context.get(SIGHTING)
    return found


def register(app: App, store: Store, *, defer: Collection[str] = ()) -> None:
    """Add the replay check as a global middleware (it runs after Bolt's signature and url_verification checks).

    A click on one of the `defer` actions is not remembered here: its key goes in the request's context (`sighting`)
    and its listener remembers it in the same write as the decision it journals (bot.db.store.accept_decision), so a
    click waits for one write before its acknowledgement, not two.
    """

    @app.middleware
    def drop_replays(
        request: BoltRequest,
        context: BoltContext,
        next: Callable[[], None],  # noqa: A002
    ) -> BoltResponse | None:
        """Let a request through the first time it is seen; answer a replay or a retry with an empty 200."""
        found = replay_key(request.body, request.headers)
        if found is not None and defer and deferred(request.body, defer):
            key, keep = found
            context[SIGHTING] = (key, utcnow() + keep)
        elif found is not None:
            key, keep = found
            try:
                first = store.first_sighting(key, utcnow() + keep)
            except Exception as exc:  # noqa: BLE001 - fail open: the listener tells the person it cannot record
                log.warning("could not check for a repeated Slack request (%s); letting it through", type(exc).__name__)
                first = True
            if not first:
                log.info("ignored a repeated Slack request (%s)", key.split(":", 1)[0])
                return BoltResponse(status=200, body="")
        next()
        return None
