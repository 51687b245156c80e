"""The /lexi slash command: usage at once; decisions journaled; everything else queued, then acknowledged."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.core.keeper import NotRecorded
from bot.slack import replies, subcommands
from bot.slack.command_parser import parse_command
from bot.slack.listeners import runtime_of
from bot.slack.texts import BUSY, NOT_RECORDED, QUEUED


def register(app: App) -> None:
    """Register /lexi."""
    app.command("/lexi")(handle_lexi)


def handle_lexi(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
    """Answer usage in the ack; queue other subcommands first (instant), then say "Working on it…"."""
    parsed = parse_command(str(command.get("text") or ""))
    if not parsed.needs_io:
        ack(response_type="ephemeral", text=replies.usage(parsed.problem))
        return
    runtime = runtime_of(context)
    asker = subcommands.Asker(
        user=str(command["user_id"]),
        channel=str(command.get("channel_id") or runtime.settings.slack_channel),
        response_url=str(command["response_url"]),
    )
    decision = None
    if parsed.name in ("approve", "dismiss"):  # a decision is journaled before the ack, like a click
        try:
            decision = runtime.decider.accept(
                parsed.task_id or "",
                action=parsed.name,
                user=asker.user,
                surface="command",
                reason=parsed.reason,
                note=parsed.note,
                reply={"response_url": asker.response_url},
            )
        except NotRecorded:
            ack(response_type="ephemeral", text=NOT_RECORDED)
            return
    if runtime.submit(subcommands.run, runtime, parsed, asker, decision) is None:
        if decision is not None:  # journaled: let its lease go, and the keeper carries it out shortly
            runtime.decider.leases.drop(decision.id)
            ack(response_type="ephemeral", text=QUEUED)
        else:
            ack(response_type="ephemeral", text=BUSY)  # the queue is full: said now, instead of never
        return
    ack(response_type="ephemeral", text=replies.WORKING)
