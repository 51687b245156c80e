"""Who may approve or dismiss, per task type: user IDs, user groups and channel members, checked at click time.

User-group and channel memberships come from Slack and are cached briefly (and dropped when Slack says they
changed). When Slack cannot answer, the check fails closed: nobody outside the named users may decide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.messenger import slack_error_text
from bot.policy import CHANNEL_MEMBERS, Policy, TypePolicy

log = logging.getLogger(__name__)


class Approvers:
    """Answers 'may this person decide this task?' from the policy and Slack's memberships."""

    def __init__(
        self, policy: Policy, client: WebClient, *, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def allowed(self, user: str, task_type: str | None = None, action: str | None = None) -> bool:
        """Whether `user` may take `action` on tasks of `task_type` (None: on some type, by some action)."""
        sections = [self.policy.for_type(task_type)] if task_type else [self.policy.default,
                                                                      *self.policy.types.values()]
        actions = [action] if action else ["approve", "dismiss"]
        return any(self._in(user, _people(section, a), section) for section in sections for a in actions)

    def describe(self, task_type: str | None = None, action: str = "approve") -> str:
        """Who may decide, in words with Slack mentions ('<@U1>, members of <!subteam^S1>')."""
        section = self.policy.for_type(task_type) if task_type else self.policy.default
        names = []
        for entry in _people(section, action):
            if entry == CHANNEL_MEMBERS:
                names.append(f"members of <#{section.channel}>")
            elif entry.startswith("S"):
                names.append(f"members of <!subteam^{entry}>")
            else:
                names.append(f"<@{entry}>")
        return ", ".join(names) if names else "anyone in the channel"

    def refusal(self, task_type: str | None = None, action: str = "approve") -> str:
        """What someone who may not decide is told."""
        verb = "approve" if action == "approve" else "dismiss"
        what = f"{task_type.replace('_', ' ')} tasks" if task_type else "Lexi's tasks"
        return f"Only {self.describe(task_type, action)} can {verb} {what}. Ask one of them."

    def forget(self, key: str | None = None) -> None:
        """Drop cached memberships (all, or one user group / channel) after Slack said they changed."""
        with self._lock:
            if key is None:
                self._cache.clear()
            else:
                self._cache.pop(key, None)

    def _in(self, user: str, people: tuple[str, ...], section: TypePolicy) -> bool:
        """Whether the user is one of `people` (an empty list admits everyone)."""
        if not people:
            return True
        for entry in people:
            if entry == user:
                return True
            if entry.startswith("S") and user in self._members(entry):
                return True
            if entry == CHANNEL_MEMBERS and user in self._members(section.channel):
                return True
        return False

    def _members(self, key: str) -> frozenset[str]:
        """Members of a user group (S…) or channel (C…/G…), cached for `ttl` seconds."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        try:
            members = self._fetch(key)
        except SlackApiError as exc:
            log.warning("could not read the members of %s (%s); only named users may decide", key,
                        slack_error_text(exc))
            return frozenset()
        with self._lock:
            self._cache[key] = (now, members)
        return members

    def _fetch(self, key: str) -> frozenset[str]:
        """Ask Slack for the members of a user group or a channel (bounded paging)."""
        if key.startswith("S"):
            return frozenset(self._client.usergroups_users_list(usergroup=key).get("users", []))
        members: set[str] = set()
        cursor = None
        for _page in range(50):
            response = self._client.conversations_members(channel=key, limit=1000, cursor=cursor)
            members.update(response.get("members", []))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return frozenset(members)


def _people(section: TypePolicy, action: str) -> tuple[str, ...]:
    """The entries that may take `action` under a type's policy."""
    return section.approvers if action == "approve" else section.may_dismiss()
