"""Bolt listeners by Slack feature: module-level `handle_*` functions that find the runtime in Bolt's context."""

from __future__ import annotations

from slack_bolt import BoltContext

from bot.runtime import Runtime

#: The key under which the app's global middleware (bot.slack.app) puts the runtime in each request's context.
RUNTIME = "runtime"


def runtime_of(context: BoltContext) -> Runtime:
    """The runtime the app was built for, as its middleware put it in this request's context."""
    runtime: Runtime = context[RUNTIME]
    return runtime
