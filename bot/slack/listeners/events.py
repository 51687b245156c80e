"""Events API: the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext

from bot.slack.listeners import runtime_of


def register(app: App) -> None:
    """Register the event handlers."""
    app.event("app_home_opened")(handle_app_home_opened)
    app.event("subteam_members_changed")(handle_subteam_members_changed)
    app.event("member_left_channel")(handle_channel_membership)
    app.event("member_joined_channel")(handle_channel_membership)


def handle_app_home_opened(event: dict[str, Any], context: BoltContext) -> None:
    """Publish the opener's Home tab on the home queue (opening the Messages tab shows nothing new)."""
    runtime = runtime_of(context)
    if event.get("tab", "home") == "home" and runtime.home is not None:
        runtime.submit_home(runtime.home.opened, str(event["user"]))


def handle_subteam_members_changed(event: dict[str, Any], context: BoltContext) -> None:
    """A user group's members changed: the next approver check asks Slack again."""
    runtime = runtime_of(context)
    if runtime.decider.approvers is not None:
        runtime.decider.approvers.forget(str(event.get("subteam_id") or "") or None)


def handle_channel_membership(event: dict[str, Any], context: BoltContext) -> None:
    """A channel's members changed: the next approver check asks Slack again."""
    runtime = runtime_of(context)
    if runtime.decider.approvers is not None:
        runtime.decider.approvers.forget(str(event.get("channel") or "") or None)
