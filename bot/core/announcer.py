"""Announce each task exactly once: claim it in the database, post it, record the message.

A kill between Slack accepting a post and the bot recording it leaves a stale `announcing` claim; recovery
looks for the post by its message metadata before posting again, so a task never gets two messages.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.core.policy import Policy, TypePolicy, from_settings
from bot.db.models import STATES
from bot.db.store import Store
from bot.errors import LexiBotError
from bot.lexi.models import PLAIN_DESCRIPTION, Task, TaskState
from bot.ops.logs import clip
from bot.ops.metrics import Metrics
from bot.slack.messenger import Messenger, slack_error_text

log = logging.getLogger(__name__)

#: Slack errors that say the setup is wrong, not the task: retrying other tasks is pointless.
SETUP_ERRORS = {
    "not_in_channel",
    "channel_not_found",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "not_authed",
    "missing_scope",
    "is_archived",
}


#: A LeadLex task id as read back from a card (the docs promise UUIDs; their examples use ids like task-uuid-1).
TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
#: Who a card says decided: a Slack user (U…/W…), or one of the policy's auto-approval rules.
_ACTOR = re.compile(r"[UW][A-Z0-9]{2,20}|rule:[^\x00-\x1f\x7f]{1,100}")
#: States a card's metadata may name; a card whose record was mid-announcement or mid-decision shows pending.
_CARD_STATES: dict[str, str] = {
    state: TaskState.PENDING if state in (TaskState.ANNOUNCING, TaskState.DECIDING) else state for state in STATES
}


def restorable(payload: dict[str, Any]) -> tuple[tuple[str, str, str | None] | None, str]:
    """A card's metadata as (task id, state, actor), or None and what is wrong with it.

    A card from before the state was recorded has only the task id: it shows a pending task.
    """
    task_id, state, actor = payload.get("task_id"), payload.get("state", TaskState.PENDING), payload.get("actor")
    if not isinstance(task_id, str) or not TASK_ID.fullmatch(task_id):
        return None, f"task id {str(task_id)[:80]!r} is not a LeadLex task id"
    if not isinstance(state, str) or state not in _CARD_STATES:
        return None, f"task {task_id}: state {str(state)[:40]!r} is not a known state"
    if actor is not None and (not isinstance(actor, str) or not _ACTOR.fullmatch(actor)):
        return None, f"task {task_id}: actor {str(actor)[:80]!r} is neither a Slack user id nor a rule"
    return (task_id, _CARD_STATES[state], actor), ""


class AnnounceError(LexiBotError):
    """Raised when Slack refuses an announcement because of the setup (channel, token, scopes)."""


#: Slack errors that mean a channel's history will not become readable by retrying: there is nothing of ours to
#: restore there (the bot cannot post in such a channel either).
_UNREADABLE_FOR_GOOD = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


class Backlog:
    """Tasks waiting to be announced: one queue per channel, each posted by a thread of its own at Slack's pace.

    Slack takes about one post a second per channel, so a burst of new tasks waits here, never in a worker a
    click needs nor in the poll cycle. Nothing is recorded for a task until its turn comes (claim → post →
    record, as always): a task dropped from here by a restart has no record, so the next poll lists it again.
    The backlog is bounded; a task that finds it full is left for the next poll (or LeadLex's retry).
    """

    def __init__(
        self,
        announce: Callable[[Task, datetime | None], object],
        *,
        limit: int = 10_000,
        on_error: Callable[[AnnounceError], object] | None = None,
    ) -> None:
        self.limit = limit
        self._announce = announce
        self._on_error = on_error
        self._lock = threading.Lock()
        self._queues: dict[str, deque[str]] = {}
        self._waiting: dict[str, tuple[Task, datetime | None]] = {}  # task id → its newest content
        self._threads: dict[str, threading.Thread] = {}
        self._posting = 0
        self._closed = False
        self._idle = threading.Condition(self._lock)
        #: The setup problem that stopped the last post (a refused channel or token), until a post succeeds.
        self.problem: str | None = None

    def __contains__(self, task_id: object) -> bool:
        """Whether the task waits here."""
        with self._lock:
            return task_id in self._waiting

    def __len__(self) -> int:
        """How many tasks wait here."""
        with self._lock:
            return len(self._waiting)

    @property
    def full(self) -> bool:
        """Whether no more tasks fit."""
        with self._lock:
            return len(self._waiting) >= self.limit

    @property
    def idle(self) -> bool:
        """Whether nothing waits or is being posted."""
        with self._lock:
            return not (self._waiting or self._posting or self._threads)

    def sizes(self) -> dict[str, int]:
        """Tasks waiting, per channel."""
        with self._lock:
            return {channel: len(queue) for channel, queue in self._queues.items() if queue}

    def put(self, channel: str, task: Task, signed_at: datetime | None = None) -> bool:
        """Queue a task for `channel` (a task already waiting keeps its place and takes newer content).

        False when the backlog is full or closed: the task is left for later, with nothing recorded.
        """
        with self._lock:
            if self._closed:
                return False
            waiting = self._waiting.get(task.id)
            if waiting is not None:
                older = waiting[1]
                if signed_at is None or older is None or signed_at >= older:
                    self._waiting[task.id] = (task, signed_at)
                return True
            if len(self._waiting) >= self.limit:
                return False
            self._waiting[task.id] = (task, signed_at)
            self._queues.setdefault(channel, deque()).append(task.id)
            thread = self._threads.get(channel)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._drain, args=(channel,), name=f"lexi-announce-{channel}", daemon=True
                )
                self._threads[channel] = thread
                thread.start()
            return True

    def _drain(self, channel: str) -> None:
        """Post the channel's tasks one after the other until none waits (the messenger paces each post)."""
        while True:
            with self._lock:
                queue = self._queues.get(channel)
                if self._closed or not queue:
                    if self._threads.get(channel) is threading.current_thread():
                        del self._threads[channel]
                    self._idle.notify_all()
                    return
                task, signed_at = self._waiting.pop(queue.popleft())
                self._posting += 1
            try:
                self._announce(task, signed_at)
                self.problem = None
            except AnnounceError as exc:
                self._drop(channel)  # the setup is wrong: the others would fail alike; the next poll tries again
                if self.problem != str(exc):  # said once, not once per task or per poll
                    self.problem = str(exc)
                    if self._on_error is not None:
                        self._on_error(exc)
            except Exception:
                log.exception("could not announce task %r", clip(task.id))
            finally:
                with self._lock:
                    self._posting -= 1
                    self._idle.notify_all()

    def _drop(self, channel: str) -> None:
        """Forget the tasks waiting for one channel."""
        with self._lock:
            for task_id in self._queues.pop(channel, deque()):
                self._waiting.pop(task_id, None)

    def drain(self, deadline: float) -> bool:
        """Wait until nothing waits or is being posted, or until `deadline` (time.monotonic); True when idle."""
        with self._lock:
            while self._waiting or self._posting or self._threads:  # as `idle`, under the lock held here
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.5))
            return True

    def close(self, deadline: float) -> bool:
        """Take nothing more, and wait (bounded) for the posts in flight to be recorded; True when none is left.

        What waits is forgotten (it has no record: the next poll lists it again).
        """
        with self._lock:
            self._closed = True
            self._queues.clear()
            self._waiting.clear()
        return self.drain(deadline)


class Announcer:
    """Posts tasks to the announcement channel, once each."""

    def __init__(
        self,
        store: Store,
        messenger: Messenger,
        channel: str,
        *,
        claim_timeout: timedelta = timedelta(seconds=90),
        orphaned_before: datetime | None = None,
        metrics: Metrics | None = None,
        policy: Policy | None = None,
        on_announced: Callable[[Task], object] | None = None,
        backlog_limit: int | None = None,
        on_backlog_error: Callable[[AnnounceError], object] | None = None,
        recipients: Callable[[TypePolicy], list[str]] | None = None,
    ) -> None:
        self._metrics = metrics
        #: Who gets a type's card in their DM (`notify: approvers | both`): Approvers.recipients; None: nobody.
        self._recipients = recipients
        self.policy = policy or from_settings(channel, ())
        self._store = store
        self._messenger = messenger
        self.channel = channel
        self._claim_timeout = claim_timeout
        self._orphaned_before = orphaned_before
        #: Called with each task this process announced (the auto-approval rules).
        self.on_announced = on_announced
        self.restored: set[str] = set()  # tasks rebuilt from the channel whose content is still to be fetched
        #: Where new tasks wait for their post, at most `backlog_limit` of them (the runtime sets one); without one,
        #: `enqueue` posts at once.
        self.backlog = (
            None
            if backlog_limit is None
            else Backlog(self.announce_or_update, limit=backlog_limit, on_error=on_backlog_error)
        )

    def enqueue(self, task: Task, *, signed_at: datetime | None = None) -> bool:
        """Queue a new task for announcement in its channel; False when the backlog is full (try again later).

        Without a backlog the task is announced here and now (the sandbox tools and unit-level callers).
        """
        if self.backlog is None:
            self.announce(task, signed_at=signed_at)
            return True
        return self.backlog.put(self.policy.for_type(task.type).channel, task, signed_at)

    def announce(self, task: Task, *, signed_at: datetime | None = None) -> bool:
        """Announce a task unless some process already has; True when this call posted it.

        `signed_at`: when LeadLex signed (webhook) or the poller fetched this content; older content never replaces it.
        """
        channel = self.policy.for_type(task.type).channel
        if not self._store.claim_announcement(task, channel, signed_at=signed_at):
            return False
        self._post(task, channel=channel)
        return True

    def announce_or_update(self, task: Task, signed_at: datetime | None = None) -> bool:
        """Announce a queued task; when another process recorded it meanwhile, give its card the newer content.

        A task waits in the backlog with the newest content delivered for it, which a claim taken meanwhile
        elsewhere (with older content) would otherwise lose; content signed earlier than the record's is dropped.
        """
        if self.announce(task, signed_at=signed_at):
            return True
        if self._store.update_payload(task, signed_at=signed_at) is not None:
            self._messenger.sync_card(task.id)
        return False

    def restore(self, channels: set[str], days: float = 30.0) -> int:
        """On an empty database (a lost SQLite file), rebuild the records of the cards already in the channels.

        Each card's metadata names its task, the state it shows and who decided, so no task is announced
        twice and no decision loses its author. Contents are refreshed from LeadLex by the next poll. Only
        messages this bot posted are read (anyone can attach the same metadata type to a message), and a card
        whose metadata is not what the bot writes is skipped with a warning. When Slack cannot say who the bot
        is (auth.test fails), the SlackApiError propagates and the poller tries again next cycle.
        """
        if not self._store.is_empty():
            return 0
        self._messenger.identity()  # outside the loop: a failure here must not pass for an empty channel
        oldest = time.time() - days * 86_400
        restored = 0
        for channel, cards in self._read_cards([*sorted(channels), *self._restorable_dms()], oldest):
            for ts, payload in cards:
                card, problem = restorable(payload)
                if card is None:
                    log.warning("skipped a card of this bot in %s (ts %.40r) while restoring: %s", channel, ts, problem)
                    continue
                task_id, state, actor = card
                if self._store.restore_announcement(task_id, channel, ts, state, actor):
                    self.restored.add(task_id)
                    restored += 1
                elif channel.startswith("D") and self._store.claim_copy(task_id, channel, "dm"):
                    self._store.record_copy(task_id, channel, ts, rendered_version=0)  # shown again when it changes
        if restored:
            log.warning("the database was empty: restored %d task cards from the channel history", restored)
        return restored

    def recover(self) -> int:
        """Finish announcements whose process died mid-way; return how many were finished."""
        finished = 0
        for row in self._store.stale(TaskState.ANNOUNCING, self._claim_timeout, orphaned_before=self._orphaned_before):
            if not self._store.take_over_announcement(row.task_id, row.claimed_at):
                continue  # another process took it over first
            oldest = row.announced_at.timestamp() - 60
            try:
                ts = self._messenger.find_announcement(row.channel, row.task_id, oldest)
            except SlackApiError as exc:
                log.warning(
                    "could not search %s for task %r: %r",
                    row.channel,
                    clip(row.task_id),
                    clip(slack_error_text(exc), 300),
                )
                continue
            if ts is not None:
                log.info(
                    "task %r was posted before a restart (ts %r); recording it",
                    clip(row.task_id),
                    clip(ts, 40),
                    extra={"task_id": row.task_id},
                )
                self._post_copies(row.task, self._targets(row.task, row.channel)[1])
                self._store.record_message(row.task_id, row.channel, ts, rendered_version=0)
                self._messenger.sync_card(row.task_id)
            else:
                self._post(row.task, channel=row.channel)
            finished += 1
        return finished

    def recover_copies(self) -> int:
        """Finish copies whose process died between the claim and recording the post; how many were finished.

        The copy's conversation (or thread) is searched for the card: found, it is recorded and brought up to date;
        not found, the claim is released and the copy posted. A claim renewed by another process first is left to it.
        """
        finished = 0
        for copy in self._store.stale_copies(self._claim_timeout, orphaned_before=self._orphaned_before):
            if not self._store.take_over_copy(copy.task_id, copy.channel, copy.claimed_at):
                continue
            oldest = copy.claimed_at.timestamp() - 60
            try:
                if copy.thread_ts:
                    ts = self._messenger.find_in_thread(copy.channel, copy.thread_ts, copy.task_id)
                else:
                    ts = self._messenger.find_announcement(copy.channel, copy.task_id, oldest)
            except SlackApiError as exc:
                log.warning("could not search %s for a copy of task %r: %s", copy.channel, clip(copy.task_id), exc)
                continue
            if ts is not None:
                self._store.record_copy(copy.task_id, copy.channel, ts, rendered_version=0)
                self._messenger.sync_card(copy.task_id)
            else:
                self._store.release_copy(copy.task_id, copy.channel)
                self._messenger.post_copy(copy.task_id, copy.channel, copy.kind, copy.thread_ts)
            finished += 1
        return finished

    def _post(self, task: Task, *, channel: str | None = None) -> None:
        """Post a claimed task and record its message; a refused post releases the claim.

        With `notify: approvers` the record's card is the first approver's DM (the claim is pointed there before
        posting, so recovery searches the right conversation); the other approvers' DMs get copies (`both`: all).
        """
        claimed = channel or self.channel
        channel, copies = self._targets(task, claimed)
        if channel != claimed and not self._store.move_announcement(task.id, channel):
            log.info("task %r was announced meanwhile; not posting it", clip(task.id), extra={"task_id": task.id})
            return
        try:
            ts = self._messenger.post_task(task, channel)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if error in ("invalid_blocks", "msg_blocks_too_long", "invalid_arguments"):
                log.warning(
                    "task %r could not be rendered in full (%s); posting a plain card",
                    clip(task.id),
                    clip(error, 60),
                    extra={"task_id": task.id},
                )
                ts = self._post_plain(task, channel)
            else:
                self._store.release_announcement(task.id)
                message = f"could not announce task {clip(task.id)!r}: {clip(slack_error_text(exc), 300)}"
                if error in SETUP_ERRORS:
                    raise AnnounceError(message) from exc
                log.warning("%s", message, extra={"task_id": task.id})
                return
        # Any other failure (timeout, connection) may or may not have posted: the claim stays, and
        # recovery searches the channel for the post before trying again.
        # The copies go out before the record's card is recorded: a process that dies in between leaves the claim
        # `announcing`, and recovery posts the copies not claimed yet (a claimed one is never posted again).
        self._post_copies(task, copies)
        self._store.record_message(task.id, channel, ts, rendered_version=1)
        if self._metrics is not None:
            self._metrics.announced.inc()
        self._messenger.sync_card(task.id)  # in case the task changed while it was being posted
        if self.on_announced is not None:
            try:
                self.on_announced(task)
            except Exception:
                log.exception("the after-announcement rule failed for task %r", clip(task.id))

    def _targets(self, task: Task, channel: str) -> tuple[str, list[str]]:
        """Where a task's cards go: the channel of its record's card, and the DMs that get copies of it.

        `notify: channel` (the default): the channel alone. `approvers`: the first approver's DM holds the record's
        card, the others' DMs copies; with no approver to send it to (none named, only channel_members, or no DM
        opened), the channel, as if `channel`. `both`: the channel, and a copy in every approver's DM.
        """
        section = self.policy.for_type(task.type)
        if not section.to_approvers or self._recipients is None:
            return channel, []
        dms = self._direct_messages(section)
        if section.notify == "both":
            return channel, dms
        if channel.startswith("D") and channel in dms:  # recovery of a claim already pointed at a DM
            return channel, [dm for dm in dms if dm != channel]
        if not dms:
            log.warning(
                "task %r: no approver's DM to send it to (notify: approvers); announcing it in %s",
                clip(task.id),
                channel,
                extra={"task_id": task.id},
            )
            return channel, []
        return dms[0], dms[1:]

    def _read_cards(self, channels: list[str], oldest: float) -> list[tuple[str, list[tuple[str, Any]]]]:
        """The bot's own cards in each conversation since `oldest`, all read before anything is written.

        Once one record is written the store is no longer empty and the restore never runs again, so a channel
        that could not be read now would have its tasks re-announced: a transient failure raises (the poller tries
        the whole restore again). Channels come first, then the approvers' DMs, so that a card found again in a DM
        is recorded as its copy.
        """
        found: list[tuple[str, list[tuple[str, Any]]]] = []
        for channel in channels:
            try:
                found.append((channel, list(self._messenger.announcements(channel, oldest))))
            except SlackApiError as exc:
                if exc.response.get("error") not in _UNREADABLE_FOR_GOOD:
                    raise  # transient (rate limit, Slack's own errors)
                log.warning("could not read %s to restore its cards: %s", channel, slack_error_text(exc))
        return found

    def _restorable_dms(self) -> list[str]:
        """The DMs cards may have been sent to (`notify: approvers | both`), for a restore to read.

        A DM Slack does not open now raises (the restore is tried again next cycle), so that a DM left unread never
        has its tasks announced a second time.
        """
        if self._recipients is None:
            return []
        people: set[str] = set()
        for section in (self.policy.default, *self.policy.types.values()):
            if section.to_approvers:
                people.update(self._recipients(section))
        return sorted({self._messenger.open_dm(user) for user in sorted(people)})

    def _direct_messages(self, section: TypePolicy) -> list[str]:
        """The DM channels of a type's approvers, in the order of their user ids; one Slack refuses is skipped."""
        dms: list[str] = []
        for user in self._recipients(section) if self._recipients is not None else []:
            try:
                dms.append(self._messenger.open_dm(user))
            except SlackApiError as exc:
                log.warning("could not open a DM with %s for a card: %s", user, clip(slack_error_text(exc), 300))
        return list(dict.fromkeys(dms))

    def _post_copies(self, task: Task, channels: list[str]) -> None:
        """Post a copy of the task's card in each of these DMs, each once (claimed first); failures are logged."""
        for channel in channels:
            try:
                self._messenger.post_copy(task.id, channel, "dm")
            except Exception:
                log.exception("could not post a copy of task %r's card in %s", clip(task.id), channel)

    def _post_plain(self, task: Task, channel: str) -> str:
        """Post a task with its metadata left out (the last resort for a task Slack will not render)."""
        plain = replace(task, metadata={}, description=task.description[:PLAIN_DESCRIPTION])
        try:
            return self._messenger.post_task(plain, channel)
        except SlackApiError:
            self._store.release_announcement(task.id)
            raise
