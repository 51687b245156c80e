"""Modal views, built as plain data: the dismiss-reason form."""

from __future__ import annotations

import json
from typing import Any

from bot.lexi.models import DISMISS_REASONS, Task
from bot.slack.blocks import describe_task, truncate

DISMISS_MODAL = "lexi_dismiss_modal"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_choice"
NOTE_BLOCK = "note"
NOTE_INPUT = "note_text"
NOTE_MAX = 500


def dismiss_modal(task: Task, channel: str) -> dict[str, Any]:
    """The form that asks why a task is dismissed: one documented reason and an optional note."""
    options = [
        {"text": {"type": "plain_text", "text": label}, "value": code} for code, label in DISMISS_REASONS.items()
    ]
    return {
        "type": "modal",
        "callback_id": DISMISS_MODAL,
        "private_metadata": json.dumps({"task_id": task.id, "channel": channel}),
        "title": {"type": "plain_text", "text": "Dismiss task"},
        "submit": {"type": "plain_text", "text": "Dismiss"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate(describe_task(task), 3000), "verbatim": True},
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why dismiss it?"},
                "element": {"type": "radio_buttons", "action_id": REASON_INPUT, "options": options},
            },
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Note for Lexi"},  # Slack adds "(optional)" itself
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_INPUT,
                    "multiline": True,
                    "max_length": NOTE_MAX,
                },
            },
        ],
    }
