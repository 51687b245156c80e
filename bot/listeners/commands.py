"""The /lexi slash command: usage at once; everything else queued on the bot's workers, then acknowledged."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot import replies, subcommands
from bot.command import parse_command
from bot.runtime import BUSY, Runtime


def register(app: App, runtime: Runtime) -> None:
    """Register /lexi."""

    @app.command("/lexi")
    def handle_lexi(ack: Ack, command: dict[str, Any]) -> None:
        """Answer usage in the ack; queue other subcommands first (instant), then say "Working on it…"."""
        parsed = parse_command(str(command.get("text") or ""))
        if not parsed.needs_io:
            ack(response_type="ephemeral", text=replies.usage(parsed.problem))
            return
        asker = subcommands.Asker(
            user=str(command["user_id"]),
            channel=str(command.get("channel_id") or runtime.settings.slack_channel),
            response_url=str(command["response_url"]),
        )
        if runtime.submit(subcommands.run, runtime, parsed, asker) is None:
            ack(response_type="ephemeral", text=BUSY)  # the queue is full: said now, instead of never
            return
        ack(response_type="ephemeral", text=replies.WORKING)
