"""Events API: the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    """Register the event handlers."""

    @app.event("app_home_opened")
    def handle_app_home_opened(event: dict[str, Any]) -> None:
        """Publish the opener's Home tab on the home queue (opening the Messages tab shows nothing new)."""
        if event.get("tab", "home") == "home" and runtime.home is not None:
            runtime.submit_home(runtime.home.opened, str(event["user"]))

    @app.event("subteam_members_changed")
    def handle_subteam_members_changed(event: dict[str, Any]) -> None:
        """A user group's members changed: the next approver check asks Slack again."""
        if runtime.decider.approvers is not None:
            runtime.decider.approvers.forget(str(event.get("subteam_id") or "") or None)

    @app.event("member_joined_channel")
    @app.event("member_left_channel")
    def handle_channel_membership(event: dict[str, Any]) -> None:
        """A channel's members changed: the next approver check asks Slack again."""
        if runtime.decider.approvers is not None:
            runtime.decider.approvers.forget(str(event.get("channel") or "") or None)
