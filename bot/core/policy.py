"""The approval policy: per task type, where it goes, who may decide, quorum, auto-approval, reminders, escalation.

The daily digest of what waits is set in `defaults` only (one summary covers every type).

Read from an optional YAML file (`LEXI_POLICY_FILE`, e.g. lexi-bot.yml) and validated completely at start: an
unknown key, type, value or channel is a problem naming its line, every problem of the file is reported at once
(in file order, as the settings check does), and the bot does not start with a policy it misunderstood. Without a
file the policy comes from SLACK_CHANNEL and LEXI_APPROVERS alone.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import time
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.errors import LexiBotError
from bot.lexi.models import KNOWN_TYPES, Task

#: The approver entry meaning "the members of the task's channel" (also what no approvers at all means).
CHANNEL_MEMBERS = "channel_members"
_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP = re.compile(r"S[A-Z0-9]{2,}")
_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
#: Where a type's cards go (`notify`): its channel, each approver's DM instead, or both.
NOTIFY = ("channel", "approvers", "both")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_DIGEST = re.compile(r"(\d{1,2}):(\d{2})\s+(\S+)")
#: Where the daily digest goes: each announcement channel its own waiting tasks, or each approver a DM of theirs.
DIGEST_TARGETS = ("channel", "approvers")
#: How close a duration must be to a whole number of units (or tenths) to be written in them exactly.
_EXACT = 1e-9
_T = TypeVar("_T")


class PolicyError(LexiBotError):
    """Raised when the policy file cannot be read or says something the bot does not understand.

    `problems` lists every problem found, each naming the file and line; the message is the one problem, or a
    list of them all (as the settings check lists its problems).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems if problems is not None else [message]
        if len(self.problems) > 1:
            message = f"{len(self.problems)} problems in the policy file — fix them all:\n  - " + "\n  - ".join(
                self.problems
            )
        super().__init__(message if len(self.problems) > 1 else self.problems[0])


class _Skip(Exception):
    """A part of the file was refused (and its problem recorded): reading goes on with the next part."""


@dataclass(frozen=True)
class QuorumRule:
    """Tasks affecting more than `above` records need `approvals` distinct approvers."""

    above: int
    approvals: int


@dataclass(frozen=True)
class AutoApprove:
    """Approve without a person when the task affects at most `max_count` (when set)."""

    name: str
    max_count: int | None = None


@dataclass(frozen=True)
class DailyDigest:
    """A summary of the tasks still waiting, sent once a day at `at` o'clock in time zone `zone` (an IANA name)."""

    at: time
    zone: str

    def __str__(self) -> str:
        """As the policy writes it: '09:00 Europe/Berlin'."""
        return f"{self.at:%H:%M} {self.zone}"


@dataclass(frozen=True)
class TypePolicy:
    """What happens to tasks of one type."""

    channel: str
    approvers: tuple[str, ...] = ()
    dismissers: tuple[str, ...] | None = None
    quorum: tuple[QuorumRule, ...] = ()
    confirm_above: int | None = None
    auto_approve: AutoApprove | None = None
    remind_after: float | None = None
    remind_max: int = 3
    expire_after: float | None = None
    dismiss_on_expiry: bool = False
    notify: str = "channel"
    #: Who gets the card, and may then decide, when nobody decided within `escalation_age` (users, user groups).
    escalate_to: tuple[str, ...] = ()
    escalate_after: float | None = None
    #: The daily digest (read from `defaults` only: a type's section refuses it) and where it goes.
    digest: DailyDigest | None = None
    digest_to: str = "channel"

    @property
    def to_approvers(self) -> bool:
        """Whether the approvers get the card in their DMs (`notify: approvers` or `both`)."""
        return self.notify in ("approvers", "both")

    @property
    def escalation_age(self) -> float | None:
        """Seconds after its announcement a waiting task is escalated; None: never (no `escalate_to`, no time).

        `escalate_after` when given, else the age at which the last reminder is due.
        """
        if not self.escalate_to:
            return None
        if self.escalate_after is not None:
            return self.escalate_after
        if self.remind_after is not None and self.remind_max >= 1:
            return reminder_due(self.remind_after, self.remind_max - 1)
        return None

    def may_dismiss(self) -> tuple[str, ...]:
        """Who may dismiss: the dismissers when given, else the approvers."""
        return self.dismissers if self.dismissers is not None else self.approvers

    def approvals_needed(self, count: int | None) -> int:
        """Distinct approvals needed for a task affecting `count` records (unknown counts need the most)."""
        needed = 1
        for rule in self.quorum:
            if count is None or count > rule.above:
                needed = max(needed, rule.approvals)
        return needed

    def auto_approves(self, count: int | None) -> bool:
        """Whether a task affecting `count` records is approved by the rule (an unknown count never is)."""
        rule = self.auto_approve
        if rule is None:
            return False
        return rule.max_count is None or (count is not None and count <= rule.max_count)


@dataclass(frozen=True)
class Policy:
    """The whole policy: a default and per-type overrides."""

    default: TypePolicy
    types: dict[str, TypePolicy] = field(default_factory=dict)
    auto_approve_daily_cap: int = 50
    source: str = "environment"

    def for_type(self, task_type: str) -> TypePolicy:
        """The policy for a task type (the default for types it does not name)."""
        return self.types.get(task_type, self.default)

    def confirm_above(self, task: Task) -> int | None:
        """The size above which approving the task asks for confirmation (None: the built-in rule)."""
        return self.for_type(task.type).confirm_above

    def channels(self) -> set[str]:
        """Every channel tasks may be announced in."""
        return {self.default.channel, *(p.channel for p in self.types.values())}


def reminder_due(remind_after: float, sent: int) -> float:
    """Age at which reminder number `sent + 1` is due: T, 3T, 7T, … (each gap twice the one before)."""
    gaps: int = 2 ** (sent + 1) - 1  # typeshed types int ** int as Any (a negative power is a float)
    return remind_after * gaps


def from_settings(channel: str, approvers: tuple[str, ...]) -> Policy:
    """The policy of a bot configured by environment variables alone."""
    return Policy(default=TypePolicy(channel=channel, approvers=approvers))


# --- loading ----------------------------------------------------------------------------------------

_TOP_KEYS = ("defaults", "types", "auto_approve_daily_cap")
_TYPE_KEYS = (
    "channel",
    "approvers",
    "dismissers",
    "quorum",
    "confirm_above",
    "auto_approve",
    "remind_after",
    "remind_max",
    "expire_after",
    "dismiss_on_expiry",
    "notify",
    "digest",
    "digest_to",
    "escalate_to",
    "escalate_after",
)
#: Keys of `defaults` only: one digest a day summarises every type's waiting tasks.
_DEFAULTS_ONLY = ("digest", "digest_to")


def load_policy(path: str | Path, *, channel: str, approvers: tuple[str, ...] = ()) -> Policy:
    """Read and validate a policy file; SLACK_CHANNEL and LEXI_APPROVERS are the defaults it refines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror}") from None
    return parse_policy(text, path.name, source=str(path), channel=channel, approvers=approvers)


def parse_policy(
    text: str, name: str, *, source: str | None = None, channel: str, approvers: tuple[str, ...] = ()
) -> Policy:
    """Validate a policy given as YAML text; its problems say "`name` line N" (a file's name, or "policy")."""
    source = source or name
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name} line {mark.line + 1}" if mark else name
        raise PolicyError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    reader = _Reader(name)
    base = TypePolicy(channel=channel, approvers=approvers)
    if root is None:
        return Policy(default=base, source=source)
    top = reader.attempt(lambda: reader.mapping(root, "the file", _TOP_KEYS)) or {}
    default = base
    if "defaults" in top:
        default = reader.attempt(lambda: reader.type_policy(top["defaults"], "defaults", base)) or base
    types: dict[str, TypePolicy] = {}
    if "types" in top:
        for key_node, value in (
            reader.attempt(lambda: reader.mapping(top["types"], "types", None, keys_node=True)) or {}
        ).items():
            section = reader.attempt(partial(reader.type_section, key_node, value, default))
            if section is not None:
                types[section[0]] = section[1]
    cap = 50
    if "auto_approve_daily_cap" in top:
        cap = reader.attempt(lambda: reader.integer(top["auto_approve_daily_cap"], "auto_approve_daily_cap")) or 50
    if reader.problems:
        raise PolicyError("", [f"{name} line {line}: {message}" for line, message in reader.sorted_problems()])
    return Policy(default=default, types=types, auto_approve_daily_cap=cap, source=source)


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    """A 'did you mean' hint, or ''."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_duration(text: str) -> float | None:
    """Seconds in '90', '30m', '4h' or '2d'; None when malformed."""
    match = _DURATION.fullmatch(text.strip().lower())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


class _Reader:
    """Walks YAML nodes, recording every problem with its line; a refused part is skipped, the rest still read."""

    def __init__(self, filename: str) -> None:
        self._filename = filename
        #: (line, problem) in the order found.
        self.problems: list[tuple[int, str]] = []

    def note(self, node: Node, message: str) -> None:
        """Record a problem at a node and go on reading (the caller leaves the offending entry out)."""
        self.problems.append((node.start_mark.line + 1, message))

    def fail(self, node: Node, message: str) -> NoReturn:
        """Record a problem at a node and skip the part being read (see `attempt`)."""
        self.note(node, message)
        raise _Skip

    def attempt(self, read: Callable[[], _T]) -> _T | None:
        """The result of `read`, or None when it refused its part (its problems are recorded)."""
        try:
            return read()
        except _Skip:
            return None

    def sorted_problems(self) -> list[tuple[int, str]]:
        """Every problem in file order (problems on one line keep the order they were found in)."""
        return sorted(self.problems, key=lambda problem: problem[0])

    def type_section(self, key_node: Node, value: Node, default: TypePolicy) -> tuple[str, TypePolicy]:
        """One entry of `types`: a known task type and its policy on top of the defaults."""
        name = self.text(key_node, "a task type")
        if name not in KNOWN_TYPES:
            self.fail(
                key_node,
                f"unknown task type '{name}'{_suggest(name, KNOWN_TYPES)}; known types: {', '.join(KNOWN_TYPES)}",
            )
        return name, self.type_policy(value, f"types.{name}", default, task_type=name)

    def mapping(self, node: Node, where: str, allowed: tuple[str, ...] | None, *, keys_node: bool = False) -> Any:
        """A mapping's entries by key (or by key node), refusing unknown and repeated keys."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{where} must be a mapping of keys to values")
        entries: dict[Any, Node] = {}
        seen: set[str] = set()
        for key_node, value in node.value:
            key = self.text(key_node, "a key")
            if allowed is not None and key not in allowed:
                self.note(
                    key_node, f"unknown key '{key}' in {where}{_suggest(key, allowed)}; allowed: {', '.join(allowed)}"
                )
                continue
            if key in seen:
                self.note(key_node, f"'{key}' appears twice in {where}")
                continue
            seen.add(key)
            entries[key_node if keys_node else key] = value
        return entries

    def text(self, node: Node, what: str) -> str:
        """A scalar as text."""
        if not isinstance(node, ScalarNode):
            self.fail(node, f"expected {what}")
        return str(node.value)

    def integer(self, node: Node, where: str, *, minimum: int = 0) -> int:
        """A whole number, at least `minimum`."""
        value = self.text(node, f"a whole number for {where}").replace("_", "").replace(",", "")
        if not value.isdecimal() or int(value) < minimum:
            self.fail(node, f"{where} must be a whole number of at least {minimum}, not '{value}'")
        return int(value)

    def boolean(self, node: Node, where: str) -> bool:
        """True or false."""
        value = self.text(node, f"true or false for {where}").lower()
        if value not in ("true", "false", "yes", "no"):
            self.fail(node, f"{where} must be true or false, not '{value}'")
        return value in ("true", "yes")

    def duration(self, node: Node, where: str) -> float:
        """A duration such as 30m, 4h or 2d."""
        seconds = parse_duration(self.text(node, f"a duration for {where}"))
        if seconds is None or seconds <= 0:
            self.fail(node, f"{where} must be a duration such as 30m, 4h or 2d")
        return float(seconds or 0)

    def escalation_people(self, node: Node, where: str) -> tuple[str, ...]:
        """A list of user IDs or user-group IDs (people to send the card to: channel_members names no one)."""
        people = self.people(node, where)
        if CHANNEL_MEMBERS in people:
            self.fail(
                node,
                f"{where} names the people to send the card to: user IDs (U…) or user-group IDs (S…), "
                f"not {CHANNEL_MEMBERS}",
            )
        return people

    def people(self, node: Node, where: str) -> tuple[str, ...]:
        """A list of user IDs, user-group IDs, or channel_members."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            # An empty list would read as "nobody" to some and "anyone" to others: say who, or leave the key out.
            self.fail(
                node,
                f"{where} is an empty list; name user IDs, user-group IDs or {CHANNEL_MEMBERS}, "
                "or leave it out (the task's channel members decide)",
            )
        found = []
        known = len(self.problems)
        for item in items:
            value = self.attempt(partial(self.text, item, f"a user ID, user-group ID or {CHANNEL_MEMBERS} in {where}"))
            if value is not None and not (
                _USER.fullmatch(value) or _GROUP.fullmatch(value) or value == CHANNEL_MEMBERS
            ):
                self.note(
                    item, f"'{value}' in {where} is not a user ID (U…), a user-group ID (S…) or {CHANNEL_MEMBERS}"
                )
            found.append(value)
        if len(self.problems) > known:
            raise _Skip  # every bad entry is recorded; the list as a whole is refused
        return tuple(str(value) for value in found)

    def quorum(self, node: Node, where: str) -> tuple[QuorumRule, ...]:
        """A number of approvals, or a list of {above, approvals} rules."""
        if isinstance(node, ScalarNode):
            return (QuorumRule(above=-1, approvals=self.integer(node, where, minimum=1)),)
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{where} must be a number or a list of {{above: N, approvals: M}}")
        rules = [self.attempt(partial(self.quorum_rule, item, where)) for item in node.value]
        if any(rule is None for rule in rules):
            raise _Skip
        return tuple(rule for rule in rules if rule is not None)

    def quorum_rule(self, item: Node, where: str) -> QuorumRule:
        """One {above, approvals} rule."""
        entry = self.mapping(item, where, ("above", "approvals"))
        if set(entry) != {"above", "approvals"}:
            self.fail(item, f"each rule in {where} needs both 'above' and 'approvals'")
        above = self.attempt(lambda: self.integer(entry["above"], f"{where}.above"))
        approvals = self.attempt(lambda: self.integer(entry["approvals"], f"{where}.approvals", minimum=1))
        if above is None or approvals is None:
            raise _Skip
        return QuorumRule(above, approvals)

    def auto_approve(self, node: Node, where: str, task_type: str | None) -> AutoApprove | None:
        """An auto-approval rule, or none ('false')."""
        if isinstance(node, ScalarNode) and node.value.lower() in ("false", "no", "off", ""):
            return None
        entry = self.mapping(node, where, ("name", "max_count", "allow_campaign_starts"))
        known = len(self.problems)
        if "name" not in entry:
            self.note(node, f"{where} needs a 'name' (it is shown on every auto-approved card)")
        allow = False
        if "allow_campaign_starts" in entry:
            allow = bool(self.attempt(lambda: self.boolean(entry["allow_campaign_starts"], where)))
        if task_type in (None, "campaign_start") and not allow:
            self.note(
                node,
                f"{where} would auto-approve campaign starts, which email real people; "
                "set allow_campaign_starts: true if that is really meant",
            )
        max_count = None
        if "max_count" in entry:
            max_count = self.attempt(lambda: self.integer(entry["max_count"], f"{where}.max_count"))
        name = self.attempt(lambda: self.text(entry["name"], "a rule name")) if "name" in entry else None
        if len(self.problems) > known or name is None:
            raise _Skip
        return AutoApprove(name, max_count)

    def type_policy(self, node: Node, where: str, base: TypePolicy, task_type: str | None = None) -> TypePolicy:
        """A type's section, on top of `base` (every key is read, so each bad one is reported)."""
        entry = self.mapping(node, where, _TYPE_KEYS)
        readers: dict[str, Callable[[Node, str], Any]] = {
            "channel": self.channel,
            "approvers": self.people,
            "dismissers": self.people,
            "quorum": self.quorum,
            "confirm_above": self.integer,
            "auto_approve": lambda value, at: self.auto_approve(value, at, task_type),
            "remind_after": self.duration,
            "expire_after": self.duration,
            "remind_max": self.integer,
            "dismiss_on_expiry": self.boolean,
            "notify": self.notify,
            "digest": self.digest,
            "digest_to": self.digest_to,
            "escalate_to": self.escalation_people,
            "escalate_after": self.duration,
        }
        changes: dict[str, Any] = {}
        known = len(self.problems)
        for key, value in entry.items():
            if task_type is not None and key in _DEFAULTS_ONLY:
                self.note(value, f"{where}.{key}: the digest is set in defaults only (one summary covers every type)")
                continue
            read = readers[key]
            result = self.attempt(partial(_boxed, read, value, f"{where}.{key}"))
            if result is not None:
                changes[key] = result[0]
        if "digest_to" in entry and "digest" not in entry and base.digest is None:
            self.note(entry["digest_to"], f"{where}.digest_to needs {where}.digest, the time to send it at")
        if len(self.problems) > known:
            raise _Skip
        section = replace(base, **changes)
        self.check_escalation(node, entry, where, section)
        return section

    def check_escalation(self, node: Node, entry: dict[str, Node], where: str, section: TypePolicy) -> None:
        """Refuse an escalation with no time to happen at, and a time with nobody to escalate to."""
        if "escalate_after" in entry and not section.escalate_to:
            self.fail(entry["escalate_after"], f"{where}.escalate_after needs {where}.escalate_to, who to escalate to")
        if section.escalate_to and section.escalation_age is None:
            at = entry.get("escalate_to") or entry.get("remind_max") or entry.get("remind_after") or node
            self.fail(
                at,
                f"{where} escalates to {', '.join(section.escalate_to)} but says not when: set {where}.escalate_after "
                "(such as 4h), or remind_after (it is then escalated when the last reminder is due)",
            )

    def notify(self, node: Node, where: str) -> str:
        """Where the cards go: channel, approvers or both."""
        value = self.text(node, f"one of {', '.join(NOTIFY)} for {where}")
        if value not in NOTIFY:
            self.fail(node, f"{where} must be one of {', '.join(NOTIFY)}, not '{value}'{_suggest(value, NOTIFY)}")
        return value

    def digest(self, node: Node, where: str) -> DailyDigest | None:
        """A time of day and a time zone, '09:00 Europe/Berlin'; none ('off')."""
        value = self.text(node, f"a time and a time zone for {where}").strip()
        if value.lower() in ("false", "no", "off", ""):
            return None
        match = _DIGEST.fullmatch(value)
        if match is None:
            self.fail(node, f"{where} must be a time and a time zone such as \"09:00 Europe/Berlin\", not '{value}'")
        zone = match.group(3)
        try:
            at = time(int(match.group(1)), int(match.group(2)))
        except ValueError:
            self.fail(node, f"{where}: '{match.group(1)}:{match.group(2)}' is not a time of day (00:00 to 23:59)")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            known = tuple(sorted(available_timezones()))
            if not known:  # a system without the tz database (Debian's tzdata package) knows no zone at all
                self.fail(node, f"{where}: this system has no time zone database to read '{zone}' from (tzdata)")
            hint = _suggest(zone, known)
            self.fail(node, f"{where}: unknown time zone '{zone}'{hint}; use an IANA name such as Europe/Berlin or UTC")
        return DailyDigest(at, zone)

    def digest_to(self, node: Node, where: str) -> str:
        """Where the digest goes: channel or approvers."""
        value = self.text(node, f"channel or approvers for {where}")
        if value not in DIGEST_TARGETS:
            self.fail(node, f"{where} must be channel or approvers, not '{value}'{_suggest(value, DIGEST_TARGETS)}")
        return value

    def channel(self, node: Node, where: str) -> str:
        """A channel ID."""
        channel = self.text(node, "a channel ID")
        if not _CHANNEL.fullmatch(channel):
            self.fail(node, f"{where} must be a channel ID such as C0123ABCD, not '{channel}'")
        return channel


def describe(policy: Policy) -> list[str]:
    """For each task type, one paragraph saying what will happen (for `lexi-bot policy check`)."""
    lines = [f"Policy from {policy.source}; auto-approvals capped at {policy.auto_approve_daily_cap} a day."]
    if (digest := policy.default.digest) is not None:
        where = "each approver by DM" if policy.default.digest_to == "approvers" else "each announcement channel"
        lines.append(f"A digest of the tasks still waiting goes to {where} daily at {digest} (none when none wait).")
    for task_type in (*KNOWN_TYPES, "other types"):
        p = policy.for_type(task_type) if task_type in KNOWN_TYPES else policy.default
        who = ", ".join(p.approvers) if p.approvers else f"members of {p.channel}"
        dismiss = ", ".join(p.may_dismiss()) if p.may_dismiss() else f"members of {p.channel}"
        announced = {
            "channel": f"announced in {p.channel}",
            "approvers": f"sent to each approver's DM (in {p.channel} when none is named)",
            "both": f"announced in {p.channel} and sent to each approver's DM",
        }[p.notify]
        parts = [f"{task_type}: {announced}; approved by {who}; dismissed by {dismiss}"]
        for rule in p.quorum:
            scope = "always" if rule.above < 0 else f"above {rule.above:,}"
            parts.append(f"{rule.approvals} distinct approvals needed {scope}")
        if p.confirm_above is not None:
            parts.append(f"confirmation asked above {p.confirm_above:,} records")
        if p.auto_approve is not None:
            limit = f" up to {p.auto_approve.max_count:,}" if p.auto_approve.max_count is not None else ""
            parts.append(f"auto-approved{limit} by rule '{p.auto_approve.name}'")
        if p.remind_after is not None:
            parts.append(f"reminders from {human_duration(p.remind_after)} (at most {p.remind_max})")
        if (age := p.escalation_age) is not None:
            when = "" if p.escalate_after is not None else " (when the last reminder is due)"
            parts.append(
                f"escalated to {', '.join(p.escalate_to)} after {human_duration(age)}{when}, who may then decide it"
            )
        if p.expire_after is not None:
            then = "dismissed in LeadLex" if p.dismiss_on_expiry else "marked expired"
            parts.append(f"{then} after {human_duration(p.expire_after)}")
        lines.append("; ".join(parts) + ".")
    return lines


def _boxed(read: Callable[[Node, str], _T], node: Node, where: str) -> tuple[_T]:
    """`read`'s result in a 1-tuple, so that a None it reads is told apart from `attempt`'s None (refused)."""
    return (read(node, where),)


def human_duration(seconds: float) -> str:
    """A duration as people write it, so a policy's `2s`, `90s`, `1.5h` or `2d` reads back as given.

    The largest unit (d, h, m, s) that writes it exactly, in whole units (one decimal for hours and days); a
    duration no unit writes exactly (a measured age) is rounded to one decimal of the largest unit it reaches.
    """
    units = (("d", 86_400, 10), ("h", 3600, 10), ("m", 60, 1), ("s", 1, 1))
    for unit, size, steps in units:
        value = seconds / size
        if value >= 1 and abs(value * steps - round(value * steps)) < _EXACT:
            return f"{round(value * steps) / steps:g}{unit}"
    unit, size = next((unit, size) for unit, size, _steps in units if seconds >= size or unit == "s")
    return f"{round(seconds / size, 1):g}{unit}"
