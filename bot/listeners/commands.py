"""The /lexi slash command."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.runtime import Runtime

HELP = (
    "*/lexi* — work with Lexi's tasks from Slack\n"
    "• `/lexi help` — this message"
)


def register(app: App, runtime: Runtime) -> None:
    """Register /lexi."""

    @app.command("/lexi")
    def handle_lexi(ack: Ack, command: dict[str, Any]) -> None:
        """Answer /lexi with its usage."""
        ack(response_type="ephemeral", text=HELP)
