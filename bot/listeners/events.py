"""Events API: the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    """Register the event handlers."""

    @app.event("app_home_opened")
    def handle_app_home_opened(event: dict[str, Any]) -> None:
        """Publish the opener's Home tab on the bot's workers (opening the Messages tab shows nothing new)."""
        if event.get("tab", "home") == "home" and runtime.home is not None:
            runtime.submit(runtime.home.publish, str(event["user"]))
