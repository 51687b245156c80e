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
        """Queue the dismissal with the chosen reason on the bot's own workers, then close the modal."""
        values = view.get("state", {}).get("values", {})
        reason = ((values.get(modals.REASON_BLOCK) or {}).get(modals.REASON_INPUT) or {}).get("selected_option")
        note = ((values.get(modals.NOTE_BLOCK) or {}).get(modals.NOTE_INPUT) or {}).get("value")
        if not reason:
            ack(response_action="errors", errors={modals.REASON_BLOCK: "Choose a reason."})
            return
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        user = body["user"]["id"]
        channel = meta.get("channel") or runtime.settings.slack_channel
        runtime.submit(
            runtime.decider.decide,
            str(meta.get("task_id", "")),
            action="dismiss",
            user=user,
            surface="button",
            reason=reason.get("value"),
            note=note,
            tell=lambda text: runtime.messenger.tell(channel, user, text),
        )
        ack()  # closes the modal; the work above is already queued
