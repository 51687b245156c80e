"""Modal submissions: the dismiss-reason form."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.core.keeper import NotRecorded
from bot.slack import modals
from bot.slack.listeners import runtime_of
from bot.slack.texts import NOT_SUBMITTED


def register(app: App) -> None:
    """Register the modal handlers."""
    app.view(modals.DISMISS_MODAL)(handle_dismiss_submission)


def handle_dismiss_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """Journal the dismissal with the chosen reason and queue it, then close the modal (or say it was not recorded)."""
    values = _dig(view, "state", "values")
    reason = _dig(values, modals.REASON_BLOCK, modals.REASON_INPUT, "selected_option", "value")
    note = _dig(values, modals.NOTE_BLOCK, modals.NOTE_INPUT, "value")
    if not isinstance(reason, str) or not reason:
        ack(response_action="errors", errors={modals.REASON_BLOCK: "Choose a reason."})
        return
    raw = view.get("private_metadata")
    try:
        meta = json.loads(raw) if isinstance(raw, str) and raw else {}
    except (ValueError, RecursionError):
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    runtime = runtime_of(context)
    user = body["user"]["id"]
    task_id = str(meta.get("task_id") or "")
    # The form's metadata can be forged or replayed: the decision checks the permission on the task named, and
    # the answer goes to that task's channel, never to one the metadata names. Nothing is read before the ack.
    reply = {"channel": None, "in_channel": True, "fallback_channel": runtime.settings.slack_channel}
    try:
        decision = runtime.decider.accept(
            task_id,
            action="dismiss",
            user=user,
            surface="button",
            reason=reason,
            note=note if isinstance(note, str) else None,
            reply=reply,
        )
    except NotRecorded:
        ack(response_action="errors", errors={modals.REASON_BLOCK: NOT_SUBMITTED})  # the form stays open
        return
    ack()  # closes the modal; the decision is journaled: from here it is carried out even if this process dies
    runtime.carry_decision(decision)  # in this thread: the LeadLex call follows the ack


def _dig(value: Any, *keys: str) -> Any:
    """value[k1][k2]…, or None where a level is missing or not a mapping (a forged form may hold anything)."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
