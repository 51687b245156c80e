"""Slack's AI assistant pane in the stand-in: assistant.threads.setStatus / setSuggestedPrompts / setTitle.

What the app set is recorded as `ThreadUpdate`s, oldest first, so a test can read the status it showed and
cleared, the prompts it suggested and the title it gave each thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.dev.standin.protocol import ApiError, Args, invalid_argument

#: The most suggested prompts Slack shows in one thread.
MAX_PROMPTS = 4


@dataclass(frozen=True)
class ThreadUpdate:
    """One change the app made to an assistant thread: its `kind` ("status", "prompts" or "title") and value.

    A status is its text ("" clears it), prompts are the [{"title", "message"}] list, a title is its text.
    """

    channel_id: str
    thread_ts: str
    kind: str
    value: Any
    at: float


class AssistantThreads:
    """The assistant.threads.* methods of one workspace, checking their arguments as Slack does."""

    def __init__(self, thread_exists: Callable[[str, str], bool], clock: Callable[[], float]) -> None:
        self.updates: list[ThreadUpdate] = []
        self._thread_exists = thread_exists
        self._clock = clock
        self.methods: dict[str, Callable[[Args], dict[str, Any]]] = {
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
            "assistant.threads.setTitle": self._set_title,
        }

    def _thread(self, args: Args) -> tuple[str, str]:
        """The channel_id and thread_ts every method requires, naming the thread of an existing message."""
        channel_id, thread_ts = _required(args, "channel_id"), _required(args, "thread_ts")
        if not self._thread_exists(channel_id, thread_ts):
            raise ApiError("channel_not_found")
        return channel_id, thread_ts

    def _record(self, channel_id: str, thread_ts: str, kind: str, value: Any) -> dict[str, Any]:
        """Keep one update and answer as Slack does (nothing but ok)."""
        self.updates.append(ThreadUpdate(channel_id, thread_ts, kind, value, self._clock()))
        return {}

    def _set_status(self, args: Args) -> dict[str, Any]:
        """assistant.threads.setStatus: show a status under the thread ("" clears it); `status` is required."""
        channel_id, thread_ts = self._thread(args)
        status = args.text("status")
        if status is None:  # "" is allowed: it clears the status
            raise _missing("status")
        return self._record(channel_id, thread_ts, "status", status)

    def _set_suggested_prompts(self, args: Args) -> dict[str, Any]:
        """assistant.threads.setSuggestedPrompts: 1 to 4 prompts, each a title and a message."""
        channel_id, thread_ts = self._thread(args)
        prompts = args.structured("prompts", "invalid_arguments")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_PROMPTS:
            raise invalid_argument("prompts", f"must hold 1 to {MAX_PROMPTS} prompts")
        for prompt in prompts:
            if not isinstance(prompt, dict) or not all(
                isinstance(prompt.get(key), str) and prompt[key] for key in ("title", "message")
            ):
                raise invalid_argument("prompts", "each prompt must have a title and a message")
        return self._record(channel_id, thread_ts, "prompts", prompts)

    def _set_title(self, args: Args) -> dict[str, Any]:
        """assistant.threads.setTitle: name the thread in the pane's history; `title` is required."""
        channel_id, thread_ts = self._thread(args)
        return self._record(channel_id, thread_ts, "title", _required(args, "title"))


def _required(args: Args, name: str) -> str:
    """A string argument that must be present and non-empty."""
    value = args.text(name)
    if not value:
        raise _missing(name)
    return value


def _missing(name: str) -> ApiError:
    """Slack's answer to a call without a required argument."""
    return ApiError("invalid_arguments", messages=[f"[ERROR] missing required field: {name}"])
