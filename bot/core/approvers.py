"""Who may approve or dismiss, per task type: user IDs, user groups and channel members, checked at click time.

With no approvers named (no LEXI_APPROVERS, no policy entry) the people who may decide a task are the members of
the channel its card was announced in, never the whole workspace. User-group and channel memberships come from
Slack and are cached briefly (and dropped when Slack says they changed). When Slack cannot answer, the check fails
closed: nobody outside the named users may decide, and the person is told that Slack could not say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.policy import CHANNEL_MEMBERS, Policy, TypePolicy
from bot.slack.messenger import slack_error_text

log = logging.getLogger(__name__)

#: The type of a task whose content is not known (a card restored from the channel before LeadLex answered).
UNKNOWN_TYPE = "unknown"


@dataclass(frozen=True)
class Verdict:
    """May this person decide? `unknown` says which membership Slack could not list (the answer is then no)."""

    allowed: bool
    unknown: str | None = None


class _Unlisted(Exception):
    """Slack did not list a user group's or channel's members."""

    def __init__(self, key: str, error: str) -> None:
        super().__init__(key, error)
        self.key = key
        self.error = error


class _Flight:
    """One question to Slack about a membership, which other checks of the same key wait for."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._members: frozenset[str] | None = None
        self._error: _Unlisted | None = None

    def settle(self, members: frozenset[str] | None, error: _Unlisted | None) -> None:
        """Give the answer (or the failure) to everyone waiting."""
        self._members, self._error = members, error
        self._done.set()

    def outcome(self) -> frozenset[str]:
        """Wait for the answer; the asker's failure is raised here too (the check fails closed)."""
        self._done.wait()
        if self._error is not None:
            raise _Unlisted(self._error.key, self._error.error)
        return self._members or frozenset()


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
        self._flights: dict[str, _Flight] = {}  # memberships being asked for now, by key
        self._lock = threading.Lock()

    def allowed(
        self, user: str, task_type: str | None = None, action: str | None = None, channel: str | None = None
    ) -> bool:
        """Whether `user` may take `action` on tasks of `task_type` announced in `channel` (see `check`)."""
        return self.check(user, task_type, action, channel).allowed

    def check(
        self,
        user: str,
        task_type: str | None = None,
        action: str | None = None,
        channel: str | None = None,
        *,
        cached_only: bool = False,
    ) -> Verdict:
        """Say whether `user` may take `action` (None: either) on a task of `task_type` announced in `channel`.

        `channel` is the channel on the task's record (None: where its type is announced). `task_type` None asks
        about some type, in its own channel. `cached_only`: never ask Slack; a membership not known now makes the
        verdict unknown (not allowed), for a caller that checks again, fully, later.
        """
        actions = [action] if action else ["approve", "dismiss"]
        channel = _members_of(channel)
        if task_type == UNKNOWN_TYPE and self.policy.types:
            # A card restored without its content: its real type is not known yet, so only someone who may
            # decide it under every type's rules may decide it.
            for section in (self.policy.default, *self.policy.types.values()):
                verdict = self._check(user, [section], actions, channel or section.channel, cached_only=cached_only)
                if not verdict.allowed:
                    return verdict
            return Verdict(allowed=True)
        if task_type:
            section = self.policy.for_type(task_type)
            return self._check(user, [section], actions, channel or section.channel, cached_only=cached_only)
        return self._check(
            user, [self.policy.default, *self.policy.types.values()], actions, None, cached_only=cached_only
        )

    def _check(
        self,
        user: str,
        sections: list[TypePolicy],
        actions: list[str],
        channel: str | None,
        *,
        cached_only: bool = False,
    ) -> Verdict:
        """Whether any of `actions` under any of `sections` admits the user (channel None: each section's own)."""
        unknown = None
        for section in sections:
            for act in actions:
                try:
                    if self._in(user, _people(section, act), channel or section.channel, cached_only=cached_only):
                        return Verdict(allowed=True)
                except _Unlisted as exc:
                    unknown = unknown or _unlisted_text(exc)
        return Verdict(allowed=False, unknown=unknown)

    def check_escalated(self, user: str, task_type: str, *, cached_only: bool = False) -> Verdict:
        """Say whether `user` is one of the people tasks of `task_type` are escalated to (user groups expanded).

        Asked only of a task that was escalated; a user group Slack does not list fails closed, as `check` does.
        """
        try:
            return Verdict(
                allowed=self._in(user, self.policy.for_type(task_type).escalate_to, "", cached_only=cached_only)
            )
        except _Unlisted as exc:
            return Verdict(allowed=False, unknown=_unlisted_text(exc))

    def everyone(self, task_type: str, channel: str) -> set[str]:
        """Everyone who may approve or dismiss a task of `task_type` in `channel` (groups and channels expanded).

        A membership Slack cannot list is left out (logged where it was asked): those people are not found here,
        and a check at click time still decides whether they may decide.
        """
        section = self.policy.for_type(task_type)
        where = _members_of(channel) or section.channel
        found: set[str] = set()
        for action in ("approve", "dismiss"):
            for entry in _people(section, action):
                key = _membership(entry, where)
                if key is None:
                    found.add(entry)
                    continue
                try:
                    found.update(self._members(key))
                except _Unlisted:
                    continue
        return found

    def describe(self, task_type: str | None = None, action: str = "approve", channel: str | None = None) -> str:
        """Who may decide, in words with Slack mentions ('<@U1>, members of <!subteam^S1>')."""
        section = self.policy.for_type(task_type) if task_type else self.policy.default
        where = _members_of(channel) or section.channel
        names = []
        for entry in _people(section, action):
            if entry == CHANNEL_MEMBERS:
                names.append(f"members of <#{where}>")
            elif entry.startswith("S"):
                names.append(f"members of <!subteam^{entry}>")
            else:
                names.append(f"<@{entry}>")
        return ", ".join(names)

    def refusal(
        self,
        task_type: str | None = None,
        action: str = "approve",
        channel: str | None = None,
        verdict: Verdict | None = None,
        *,
        escalated: bool = False,
    ) -> str:
        """What someone who may not decide is told (or, when Slack could not say, that it could not).

        `escalated`: the task was escalated, so the people it was escalated to are named too.
        """
        if verdict is not None and verdict.unknown:
            return f"I could not check who may decide: {verdict.unknown}. Try again in a moment."
        verb = "approve" if action == "approve" else "dismiss"
        if task_type == UNKNOWN_TYPE and self.policy.types:
            return (
                f"I do not know this task's type yet, so only people who may {verb} tasks of every type "
                "may decide it. Try again in a minute, once LeadLex has said what it is."
            )
        what = f"{task_type.replace('_', ' ')} tasks" if task_type else "Lexi's tasks"
        also = ""
        if escalated and task_type and (escalate_to := self.policy.for_type(task_type).escalate_to):
            also = f" (and, since this one was escalated, {_mentions(escalate_to)})"
            what = f"this {task_type.replace('_', ' ')} task"
        return f"Only {self.describe(task_type, action, channel)}{also} can {verb} {what}. Ask one of them."

    def forget(self, key: str | None = None) -> None:
        """Drop cached memberships (all, or one user group / channel) after Slack said they changed."""
        with self._lock:
            if key is None:
                self._cache.clear()
            else:
                self._cache.pop(key, None)

    def forget_for(self, task_type: str | None, action: str, channel: str | None = None) -> None:
        """Drop the cached memberships that decide `action` on a task, so the next check asks Slack afresh."""
        section = self.policy.for_type(task_type) if task_type else self.policy.default
        for entry in _people(section, action):
            if entry.startswith("S"):
                self.forget(entry)
            elif entry == CHANNEL_MEMBERS:
                self.forget(_members_of(channel) or section.channel)

    def recipients(self, section: TypePolicy) -> list[str]:
        """The people a type's cards are sent to in DMs (`notify`): its named approvers, user groups expanded.

        `channel_members` names no one in particular and is left out; a user group Slack does not list is skipped
        (logged). Sorted, so the same people come first on every retry.
        """
        return self._expand(section.approvers)

    def escalation_recipients(self, section: TypePolicy) -> list[str]:
        """The people a type's waiting tasks are escalated to (`escalate_to`), user groups expanded, sorted."""
        return self._expand(section.escalate_to)

    def _expand(self, entries: tuple[str, ...]) -> list[str]:
        """The user ids of these entries, user groups expanded (one Slack does not list is skipped), sorted."""
        people: set[str] = set()
        for entry in entries:
            if entry.startswith("S"):
                try:
                    people.update(self._members(entry))
                except _Unlisted:
                    continue  # logged by _ask; its members get the card in the channel or not at all
            elif entry != CHANNEL_MEMBERS:
                people.add(entry)
        return sorted(people)

    def _in(self, user: str, people: tuple[str, ...], channel: str, *, cached_only: bool = False) -> bool:
        """Whether the user is one of `people`; _Unlisted when only a membership Slack did not list could say.

        `cached_only`: a membership not in the cache counts as not listed (Slack is not asked).
        """
        unlisted = None
        for entry in people:
            if entry == user:
                return True
            key = _membership(entry, channel)
            if key is None:
                continue
            try:
                if user in self._members(key, cached_only=cached_only):
                    return True
            except _Unlisted as exc:
                unlisted = unlisted or exc  # a later entry may still admit them
        if unlisted is not None:
            raise unlisted
        return False

    def _members(self, key: str, *, cached_only: bool = False) -> frozenset[str]:
        """Members of a user group (S…) or channel (C…/G…), cached for `ttl` seconds; _Unlisted when Slack fails.

        Checks that miss the cache at once wait for one answer from Slack (the first asks; the others get its answer
        or its failure), instead of each asking: a burst of clicks when the cache expires makes one call, not twenty.
        """
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and self._clock() - cached[0] < self._ttl:
                return cached[1]
            if cached_only:
                raise _Unlisted(key, "not cached")
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                asks = True
            else:
                asks = False
        if not asks:
            return flight.outcome()
        now = self._clock()
        try:
            members = self._ask(key)
        except _Unlisted as exc:
            flight.settle(None, exc)
            raise
        except BaseException:
            flight.settle(None, _Unlisted(key, "no answer"))
            raise
        else:
            with self._lock:
                self._cache[key] = (now, members)
            flight.settle(members, None)
            return members
        finally:
            with self._lock:
                self._flights.pop(key, None)

    def _ask(self, key: str) -> frozenset[str]:
        """Ask Slack for a membership; _Unlisted (logged) when Slack cannot answer, so the check fails closed."""
        try:
            return self._fetch(key)
        except SlackApiError as exc:
            log.warning(
                "could not read the members of %s (%s); only named users may decide", key, slack_error_text(exc)
            )
            error = str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
            raise _Unlisted(key, error) from None
        except Exception as exc:  # noqa: BLE001 - a network failure must fail closed too, never admit anyone
            log.warning("could not read the members of %s (%s); only named users may decide", key, type(exc).__name__)
            raise _Unlisted(key, "no answer") from None

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
    """The entries that may take `action` under a type's policy (none named: the task's channel members)."""
    people = section.approvers if action == "approve" else section.may_dismiss()
    return people or (CHANNEL_MEMBERS,)


def _membership(entry: str, channel: str) -> str | None:
    """The membership an approvers entry names: a user group (S…), `channel`'s members, or None (a user id)."""
    return entry if entry.startswith("S") else channel if entry == CHANNEL_MEMBERS else None


def _members_of(channel: str | None) -> str | None:
    """The channel whose members `channel_members` means for a card in `channel`: None (the type's channel) for a DM.

    A card sent to an approver's DM (`notify: approvers`) is recorded there, but its DM's members are not the
    people who may decide it.
    """
    return None if channel is None or channel.startswith("D") else channel


def _mentions(entries: tuple[str, ...]) -> str:
    """User and user-group ids as Slack mentions ('<@U1>, members of <!subteam^S1>')."""
    return ", ".join(f"members of <!subteam^{e}>" if e.startswith("S") else f"<@{e}>" for e in entries)


def _unlisted_text(exc: _Unlisted) -> str:
    """Which membership Slack did not list, and why, for the person who was refused."""
    what = f"<!subteam^{exc.key}>" if exc.key.startswith("S") else f"<#{exc.key}>"
    return f"Slack did not list the members of {what} ({exc.error})"
