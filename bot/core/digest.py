"""The daily digest: once a day, at the policy's time in its time zone, a summary of the tasks still waiting.

`defaults.digest: "09:00 Europe/Berlin"` turns it on; `defaults.digest_to` says where it goes: `channel` (the
default: each announcement channel gets its own waiting tasks) or `approvers` (each person who may decide gets a DM
of the tasks they may decide). Each line is a task's escaped description linked to its card.

At most one digest a day per workspace and target, whatever the number of replicas or restarts: the day is claimed
in the database (Store.claim_digest) before anything is sent, so of two processes that find it due one sends it.
A process that stops between the claim and the last message leaves that day's digest unfinished (never doubled).
A bot that was down at the time sends the day's digest late, up to LATE_LIMIT after it; later, the day is skipped.
When nothing waits, nothing is sent (the day still counts as done).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core.decisions import Decider
from bot.core.policy import DailyDigest, Policy
from bot.core.tasks import TaskLookup
from bot.db.store import Store, TaskRow, utcnow
from bot.slack.messenger import Messenger

log = logging.getLogger(__name__)

#: How late a day's digest may still go out (the bot was down at its time); after that the day is skipped.
LATE_LIMIT = timedelta(hours=6)
#: The most tasks listed in one digest message (each with a link to its card); the rest are counted.
LINES_MAX = 20
#: The most waiting tasks read for one digest (more are counted, not listed).
READ_MAX = 1000
#: The most people sent a DM by one digest (`digest_to: approvers`): a large channel's members are not all messaged.
RECIPIENTS_MAX = 200


def due_at(plan: DailyDigest, day: date) -> datetime:
    """When the digest of `day` (a date in the plan's zone) is due, in UTC.

    A time the clocks skip (02:30 on the night summer time starts) is read with the offset before the change, so
    it falls just after the jump; a time that happens twice (when summer time ends) is its first occurrence.
    """
    return datetime.combine(day, plan.at, tzinfo=ZoneInfo(plan.zone)).astimezone(UTC)


def due_day(plan: DailyDigest, now: datetime) -> date | None:
    """The day (in the plan's zone) whose digest is due at `now`: its time has come, at most LATE_LIMIT ago."""
    today = now.astimezone(ZoneInfo(plan.zone)).date()
    for day in (today, today - timedelta(days=1)):  # 01:00 is still within reach of yesterday's 22:00
        due = due_at(plan, day)
        if due <= now < due + LATE_LIMIT:
            return day
    return None


class Digest:
    """Sends the day's digest of waiting tasks once it is due, at most once a day (run once per poll cycle)."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        messenger: Messenger,
        decider: Decider,
        tasks: TaskLookup,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._policy = policy
        self._store = store
        self._messenger = messenger
        self._decider = decider
        self._tasks = tasks
        #: The clock (aware datetimes); tests move it.
        self.now = now
        self._claimed: tuple[str, date] | None = None  # the last (target, day) asked for: no claim per cycle after it

    def run(self) -> int:
        """Send the digest when it is due and this process claims it; how many messages it sent."""
        plan, target = self._policy.default.digest, self._policy.default.digest_to
        if plan is None:
            return 0
        day = due_day(plan, self.now())
        if day is None or self._claimed == (target, day):
            return 0
        claimed = self._store.claim_digest(target, day.isoformat())
        self._claimed = (target, day)
        if not claimed:
            return 0  # another replica (or this process before a restart) has it
        rows, total = self._tasks.waiting(READ_MAX)
        if total > len(rows):
            log.warning("the digest lists %d of the %d waiting tasks (the newest)", len(rows), total)
        rows.reverse()  # oldest first: the longest wait leads
        sent = 0
        if rows:
            sent = self._to_approvers(rows) if target == "approvers" else self._to_channels(rows)
        self._store.digest_sent(target, day.isoformat(), sent)
        log.info("digest of %s: %d waiting, %d messages to %s", day.isoformat(), total, sent, target)
        return sent

    def _to_channels(self, rows: list[TaskRow]) -> int:
        """Post each announcement channel the digest of the tasks waiting in it; how many were posted.

        A task whose card went to the approvers' DMs (`notify: approvers`) is listed in its type's channel.
        """
        by_channel: dict[str, list[TaskRow]] = defaultdict(list)
        for row in rows:
            in_dm = row.channel.startswith("D")
            by_channel[self._policy.for_type(row.task.type).channel if in_dm else row.channel].append(row)
        return sum(
            self._send(channel, digest_text(self._lines(found), len(found))) for channel, found in by_channel.items()
        )

    def _to_approvers(self, rows: list[TaskRow]) -> int:
        """DM everyone who may decide a waiting task the digest of the tasks they may decide; how many were sent."""
        approvers = self._decider.approvers
        people: set[str] = set()
        for row in rows:
            people |= approvers.everyone(row.task.type, row.channel) if approvers is not None else set()
        people.discard(self._messenger.own_user() or "")
        if len(people) > RECIPIENTS_MAX:
            log.warning("the digest goes to the first %d of %d possible approvers", RECIPIENTS_MAX, len(people))
        pairs = [(row.task, row.channel) for row in rows]
        links: dict[str, str] = {}  # each card's link is asked for once, whoever's digest lists it
        sent = 0
        for user in sorted(people)[:RECIPIENTS_MAX]:
            mine, _ = self._decider.decidable(user, pairs)
            found = [row for row in rows if row.task_id in mine]
            if found:
                sent += self._send(user, digest_text(self._lines(found, links), len(found)))
        return sent

    def _lines(self, rows: list[TaskRow], links: dict[str, str] | None = None) -> list[str]:
        """The linked lines of the first LINES_MAX tasks (the others are only counted)."""
        links = {} if links is None else links
        for row in rows[:LINES_MAX]:
            if row.task_id not in links:
                links[row.task_id] = self._messenger.linked(row)
        return [links[row.task_id] for row in rows[:LINES_MAX]]

    def _send(self, channel: str, text: str) -> bool:
        """Post one digest message (to a channel, or a user's DM); False (logged) when Slack refused it."""
        return self._messenger.say(channel, text, unfurl_links=False, unfurl_media=False)


def digest_text(lines: list[str], count: int) -> str:
    """A digest message: how many tasks wait, a line per task (at most LINES_MAX), and how many more."""
    head = f"*Daily digest: {_tasks(count)} still {'waits' if count == 1 else 'wait'} for a decision*"
    body = [f"• {line}" for line in lines]
    more = count - len(lines)
    if more > 0:
        body.append(f"_…and {more} more: see the App Home._")
    return "\n".join([head, *body])


def _tasks(count: int) -> str:
    """'1 task', '3 tasks'."""
    return f"{count} task" if count == 1 else f"{count} tasks"
