"""What the Slack stand-in observed: immutable records a test (or the demo) can read without locking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApiCall:
    """One Web API call as received (token removed) and how it was answered.

    `team` is the workspace (or, for an org-wide install, the organization) whose token authenticated the call,
    "" when no token did.
    """

    method: str
    args: dict[str, Any]
    at: float
    ok: bool
    error: str | None
    team: str = ""


@dataclass(frozen=True)
class Message:
    """A message in a channel as it stands now: a later edit or deletion replaces the record."""

    channel: str
    ts: str
    text: str
    blocks: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    user: str = ""
    edits: int = 0
    deleted: bool = False
    bot_id: str = ""  # another app's bot posted it (the bot's own messages are known by `user`)
    subtype: str = ""  # Slack's own kinds of message, e.g. "assistant_app_thread" (an assistant thread's start)


@dataclass(frozen=True)
class Ephemeral:
    """A message only `user` saw in `channel` (from chat.postEphemeral or an ephemeral response URL post)."""

    channel: str
    user: str
    text: str
    blocks: list[Any]
    at: float


@dataclass(frozen=True)
class View:
    """A modal opened, updated or pushed; `view` is the view as Slack answered it (with id and hash)."""

    id: str
    trigger_id: str | None
    user: str
    view: dict[str, Any]
    kind: str


@dataclass(frozen=True)
class ResponseUrlPost:
    """A post Slack accepted on a response URL."""

    token: str
    body: dict[str, Any]
    at: float
