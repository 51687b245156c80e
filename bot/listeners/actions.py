"""Button clicks on task cards: Approve decides at once; Dismiss opens the reason modal first."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks, modals
from bot.decisions import Tell, who_decided
from bot.messenger import slack_error_text
from bot.runtime import Runtime
from bot.subcommands import Answer

log = logging.getLogger(__name__)


def teller(runtime: Runtime, body: dict[str, Any]) -> Tell:
    """How to answer the person behind a request privately: in the ephemeral's thread, or in the channel."""
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or runtime.settings.slack_channel
    container = body.get("container") or {}
    response_url = body.get("response_url")
    answer = Answer(response_url) if response_url else None

    def by_response_url(text: str) -> None:
        if answer is not None:
            answer(text)

    if container.get("is_ephemeral"):
        return by_response_url

    def in_channel(text: str) -> None:
        # Someone outside the channel (a public channel's preview) cannot get an ephemeral there.
        if not runtime.messenger.tell(channel, user, text):
            by_response_url(text)

    return in_channel


def register(app: App, runtime: Runtime) -> None:
    """Register the card buttons."""

    @app.action(blocks.APPROVE_ACTION)
    def handle_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Queue the approval on the decisions queue (instant), then acknowledge."""
        runtime.submit_decision(
            runtime.decider.decide,
            str(action.get("value", "")),
            action="approve",
            user=body["user"]["id"],
            surface="button",
            tell=teller(runtime, body),
        )
        ack()

    @app.action(blocks.DISMISS_ACTION)
    def handle_dismiss(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        """Acknowledge, then open the reason modal while the trigger is fresh (nothing slow comes first)."""
        ack()
        task_id = str(action.get("value", ""))
        row = runtime.store.get(task_id)
        tell = teller(runtime, body)
        if row is None:
            runtime.submit(tell, "I have no record of this task.")
            return
        user = body["user"]["id"]
        verdict = runtime.decider.may_decide_row(user, row, "dismiss")
        if not verdict.allowed:  # checked here, and again when the form is submitted
            why = "membership unknown" if verdict.unknown else "not allowed"
            runtime.store.audit("refused", task_id, actor=user, surface="button", detail=f"dismiss form: {why}")
            runtime.submit(tell, runtime.decider.refusal(row.task.type, "dismiss", row.channel, verdict))
            return
        if row.state != "pending":
            runtime.submit(tell, who_decided(row))
            return
        channel = (body.get("channel") or {}).get("id") or row.channel
        try:
            client.views_open(trigger_id=body["trigger_id"], view=modals.dismiss_modal(row.task, channel))
        except SlackApiError as exc:
            log.warning("could not open the dismiss modal: %s", slack_error_text(exc))
            runtime.submit(tell, "Slack did not open the dismiss form in time; please click Dismiss again.")
