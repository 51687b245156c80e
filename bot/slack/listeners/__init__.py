"""Bolt listeners by Slack feature: module-level `handle_*` functions that find the runtime in Bolt's context."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from slack_bolt import BoltContext
from slack_sdk import WebClient

from bot.config import RunSettings
from bot.db.store import DecisionRow, Store
from bot.slack.home_publisher import HomePublisher
from bot.slack.subcommands import Parts

#: The key under which the app's global middleware (bot.slack.app) puts the runtime in each request's context.
RUNTIME = "runtime"


class Running(Parts, Protocol):
    """What the Bolt app and its listeners use of the running bot (bot.runtime.Runtime has it all).

    It has all the /lexi subcommands use (`Parts`: the decider, the messenger, ...), since the slash command hands
    it to them.
    """

    @property
    def settings(self) -> RunSettings:
        """The bot's settings: its mode, signing secret and default channel."""

    @property
    def slack(self) -> WebClient:
        """Slack's Web API client, the app's."""

    @property
    def store(self) -> Store:
        """The store, where the app drops replayed requests (bot.slack.replay)."""

    @property
    def home(self) -> HomePublisher | None:
        """Publishes App Home tabs (None when the bot has no Home)."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any] | None:
        """Run slow work on the general queue; None when it is full."""

    def submit_decision(self, decision: DecisionRow, tell: Callable[[str], None] | None = None) -> Future[Any] | None:
        """Carry out a journaled decision on the decisions queue; None when it is full."""

    def carry_decision(self, decision: DecisionRow, tell: Callable[[str], None] | None = None) -> None:
        """Carry out a decision just acknowledged in this (the listener's) thread, or queue it when many run so."""

    def submit_home(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Publish a Home tab on its own queue."""


def runtime_of(context: BoltContext) -> Running:
    """The runtime the app was built for, as its middleware put it in this request's context."""
    runtime: Running = context[RUNTIME]
    return runtime
