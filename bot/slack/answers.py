"""Answering the person behind a decision privately, the way their request allows, even from another process.

A decision's `reply` (journaled with it) says how: an ephemeral message in a channel (the card's, or the task's
when None, or `fallback_channel` when the task is unknown), falling back to the request's response_url, or the
response_url alone (an ephemeral card, a command).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from slack_sdk.webhook import WebhookClient

from bot.slack.messenger import Messenger

log = logging.getLogger(__name__)

Tell = Callable[[str], None]


class Answer:
    """Answers a person privately through a response_url (commands, clicks); failures are logged, never raised."""

    def __init__(self, response_url: str) -> None:
        self._hook = WebhookClient(response_url, timeout=10)

    def __call__(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Send one ephemeral answer (Slack allows five per response_url)."""
        try:
            response = self._hook.send(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # noqa: BLE001 - a lost answer must not fail the work that was done
            log.warning("could not answer through a response_url: %s", type(exc).__name__)
            return
        if response.status_code != HTTPStatus.OK:
            log.warning("Slack refused a response_url answer: HTTP %s %s", response.status_code, response.body[:200])


def reply_for(body: dict[str, Any]) -> dict[str, Any]:
    """How to answer the person behind an interactive request: in the card's channel, else its response_url."""
    url = body.get("response_url")
    channel = (body.get("channel") or {}).get("id")
    ephemeral = bool((body.get("container") or {}).get("is_ephemeral"))
    return {
        "channel": channel if isinstance(channel, str) and channel else None,
        "response_url": url if isinstance(url, str) and url else None,
        "in_channel": not ephemeral,  # an ephemeral card has no channel message to answer beside
    }


def teller(reply: dict[str, Any], user: str, messenger: Messenger, channel: Callable[[], str | None]) -> Tell:
    """A Tell that answers `user` as `reply` says; `channel` names the task's channel when the reply names none."""
    url = reply.get("response_url")
    answer = Answer(url) if isinstance(url, str) and url else None
    in_channel = bool(reply.get("in_channel"))

    def tell(text: str) -> None:
        """Say `text` to the person privately (best effort)."""
        if in_channel:
            where = reply.get("channel") or channel() or reply.get("fallback_channel")
            # Someone outside the channel (a public channel's preview) cannot get an ephemeral there.
            if isinstance(where, str) and where and messenger.tell(where, user, text):
                return
        if answer is not None:
            answer(text)
        elif not in_channel:
            log.info("decision by %s: %s", user, text)  # a rule decided: nobody to answer

    return tell
