"""Modal submissions: the dismiss-reason form."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App

from bot import modals
from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    """Register the modal handlers."""

    @app.view(modals.DISMISS_MODAL)
    def handle_dismiss_submission(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Queue the dismissal with the chosen reason on the decisions queue, then close the modal."""
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
        user = body["user"]["id"]
        task_id = str(meta.get("task_id") or "")
        # The form's metadata can be forged or replayed: the decision checks the permission on the task named, and
        # the answer goes to that task's channel, never to one the metadata names.
        row = runtime.store.get(task_id) if task_id else None
        channel = row.channel if row is not None else runtime.settings.slack_channel
        runtime.submit_decision(
            runtime.decider.decide,
            task_id,
            action="dismiss",
            user=user,
            surface="button",
            reason=reason,
            note=note if isinstance(note, str) else None,
            tell=lambda text: runtime.messenger.tell(channel, user, text),
        )
        ack()  # closes the modal; the work above is already queued


def _dig(value: Any, *keys: str) -> Any:
    """value[k1][k2]…, or None where a level is missing or not a mapping (a forged form may hold anything)."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
