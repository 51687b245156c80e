"""Button clicks on task cards: Approve decides at once; Dismiss opens the reason modal first."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.decisions import Tell
from bot.core.keeper import NotRecorded
from bot.db.store import Replayed
from bot.slack import answers, blocks, modals, replay
from bot.slack.listeners import Running, runtime_of
from bot.slack.messenger import slack_error_text
from bot.slack.texts import FORM_NOT_OPENED, NO_DATABASE, NOT_RECORDED

log = logging.getLogger(__name__)


def teller(runtime: Running, body: dict[str, Any]) -> Tell:
    """How to answer the person behind a request privately: in the card's channel, or through its response_url."""
    return answers.teller(
        answers.reply_for(body), body["user"]["id"], runtime.messenger, lambda: runtime.settings.slack_channel
    )


def register(app: App) -> None:
    """Register the card buttons."""
    app.action(blocks.APPROVE_ACTION)(handle_approve)
    app.action(blocks.DISMISS_ACTION)(handle_dismiss)


def handle_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    """Journal the approval (one short write), acknowledge, then queue it; say so if it was not recorded."""
    runtime = runtime_of(context)
    try:
        decision = runtime.decider.accept(
            str(action.get("value", "")),
            action="approve",
            user=body["user"]["id"],
            surface="button",
            reply=answers.reply_for(body),
            sighting=replay.sighting(context),
        )
    except Replayed as exc:
        ack()  # seen before: acknowledged, and nothing done again
        log.info("ignored a repeated Slack request (%s)", exc)
        return
    except NotRecorded:
        ack()
        runtime.submit(teller(runtime, body), NOT_RECORDED)  # answering calls Slack: after the ack
        return
    ack()  # journaled: from here it is carried out even if this process dies (the keeper resumes it)
    runtime.carry_decision(decision)  # in this thread: the LeadLex call follows the ack


def handle_dismiss(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Acknowledge, then open the reason modal while the trigger is fresh (nothing slow comes first)."""
    ack()
    runtime = runtime_of(context)
    task_id = str(action.get("value", ""))
    tell = teller(runtime, body)
    try:  # checked here, and again when the form is submitted
        check = runtime.decider.check(task_id, body["user"]["id"], "dismiss", "button")
    except Exception as exc:  # noqa: BLE001 - the database is unreachable: say so, never fail silently
        log.warning("could not read task %s for the dismiss form: %s", task_id[:100], type(exc).__name__)
        runtime.submit(tell, NO_DATABASE)
        return
    if not check.allowed or check.row is None:
        runtime.submit(tell, check.message)
        return
    row = check.row
    channel = (body.get("channel") or {}).get("id") or row.channel
    try:
        client.views_open(trigger_id=body["trigger_id"], view=modals.dismiss_modal(row.task, channel))
    except SlackApiError as exc:
        log.warning("could not open the dismiss modal: %s", slack_error_text(exc))
        runtime.submit(tell, FORM_NOT_OPENED)
