"""The reconciler: what a poll's answer means.

It announces new pending tasks, follows announced ones to their final state, recovers claims a crash left, sends
reminders and the daily digest, and re-renders what Slack missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from slack_sdk.errors import SlackApiError

from bot.core.announcer import AnnounceError, Announcer
from bot.core.apply import StateApplier
from bot.core.decisions import Decider
from bot.core.digest import Digest
from bot.core.reminders import Reminders
from bot.core.workqueue import QueueFull, WorkQueue
from bot.db.store import Store, TaskRow
from bot.lexi.client import LexiClient
from bot.lexi.models import Task, TaskState
from bot.ops.logs import clip
from bot.slack.messenger import Messenger, slack_error_text

log = logging.getLogger("bot.core.poller")  # its lines are the poller's, as they always were

#: A decision claim older than this is considered abandoned (its process died).
DECIDING_TIMEOUT = timedelta(minutes=3)


class Reconciler:
    """Brings the records and the cards to what LeadLex's lists say; errors propagate to the poll loop."""

    def __init__(
        self,
        store: Store,
        lexi: LexiClient,
        messenger: Messenger,
        announcer: Announcer,
        decider: Decider,
        *,
        clock: Callable[[], float],
        reminders: Reminders | None = None,
        cards: WorkQueue | None = None,
        chores: WorkQueue | None = None,
        digest: Digest | None = None,
    ) -> None:
        self._store = store
        self._lexi = lexi
        self._messenger = messenger
        self._announcer = announcer
        self._decider = decider
        self._clock = clock
        self._restore_checked = False
        self.reminders = reminders
        #: The daily digest of waiting tasks, looked at each cycle like the reminders.
        self.digest = digest
        #: Where card updates and thread replies go (the runtime's queue), so that Slack's pace never holds a cycle;
        #: without one they are done in the cycle.
        self.cards = cards
        #: Where the reminders' and the digest's runs go (the runtime's queue); without one they run in the cycle.
        self.chores = chores
        #: Records what LeadLex reports and shows it, its Slack jobs on the cards queue (see `_later`).
        self._applier = StateApplier(store, messenger, later=self._later, logger=log)

    def full(self) -> None:
        """List pending tasks, announce new ones, follow the others, and recover what crashes left."""
        if not self._restore_checked:
            self._announcer.restore(self._announcer.policy.channels())
            self._restore_checked = True
        # The listed content is as of this moment, to the whole second (LeadLex may sign deliveries to the
        # second only): a webhook signed before it is older content and is dropped (bot/core/webhooks.py).
        listed_at = datetime.fromtimestamp(int(self._clock()), UTC)
        pending = self._lexi.list_tasks(TaskState.PENDING)
        self._announce_new(pending, listed_at)
        self._follow(pending)
        self._announcer.recover()
        self._announcer.recover_copies()
        self._decider.recover({t.id for t in pending}, DECIDING_TIMEOUT)
        self._remind()
        self._repair()

    def sync(self) -> None:
        """Between reconciles (webhooks on): follow approved tasks to completion, the one thing webhooks omit."""
        self._follow(None)
        self._announcer.recover()
        self._announcer.recover_copies()
        self._remind()
        self._repair()

    def _remind(self) -> None:
        """Send due reminders, expire overdue tasks, and send the day's digest when it is due.

        On the chores queue when there is one (at most one run of each waits there), else now.
        """
        if self.reminders is not None:
            self._chore("reminders", self.reminders.run)
        if self.digest is not None:
            self._chore("digest", self.digest.run)

    def _chore(self, key: str, run: Callable[[], object]) -> None:
        """Run a periodic chore on the chores queue (at most one run of `key` waiting), or now without one."""
        if self.chores is None:
            run()
            return
        try:
            self.chores.submit(run, key=key)
        except QueueFull:
            log.debug("%s wait for the next cycle: their queue is full", key)

    def _later(self, key: str, fn: Callable[..., object], *args: object) -> None:
        """Update a card or post a thread reply on the cards queue (each at most once in waiting), else now.

        A full queue drops nothing for good: the card stays marked unrendered and the reply unposted, and the
        next cycle's repair queues them again.
        """
        if self.cards is None:
            fn(*args)
            return
        try:
            self.cards.submit(fn, *args, key=key)
        except QueueFull:
            log.debug("%s waits for the next cycle: the cards queue is full", key)

    def _announce_new(self, pending: list[Task], listed_at: datetime | None = None) -> None:
        """Announce every pending task without a record, oldest first; one bad task never stops the others."""
        known = self._store.known(t.id for t in pending)
        for task in pending:
            if task.id in self._announcer.restored and task.id in known:
                self._announcer.restored.discard(task.id)
                if self._store.update_payload(task, signed_at=listed_at) is not None:  # restored: content back
                    self._messenger.sync_card(task.id)
        fresh = [t for t in pending if t.id not in known]
        fresh.sort(key=lambda t: (t.created_at is None, t.created_at or 0))
        left = 0
        for task in fresh:  # queued for their paced posts: the cycle never waits for Slack's pace
            try:
                if not self._announcer.enqueue(task, signed_at=listed_at):
                    left += 1
            except AnnounceError:
                raise
            except Exception:
                log.exception("could not announce task %r", clip(task.id))
        if left:
            log.warning("%d new tasks wait for the next poll: the announcement backlog is full", left)

    def _follow(self, pending: list[Task] | None) -> None:
        """Bring the records of tasks that left `pending` in LeadLex to their real state.

        Only the statuses some record is waiting for are listed, each at most once per cycle; with
        `pending` None (no fresh pending list) only approved tasks are followed to completion.
        """
        records = self._store.in_states(
            (TaskState.PENDING, TaskState.APPROVED) if pending is not None else (TaskState.APPROVED,)
        )
        pending_ids = {t.id for t in pending or []}
        vanished = [r for r in records if r.state == TaskState.PENDING and r.task_id not in pending_ids]
        waiting = [r for r in records if r.state == TaskState.APPROVED and r.message_ts is not None]
        if not vanished and not waiting:
            return
        statuses = (
            [TaskState.APPROVED, TaskState.DISMISSED, TaskState.COMPLETED, TaskState.FAILED]
            if vanished
            else [TaskState.COMPLETED, TaskState.FAILED]
        )
        where: dict[str, Task] = {}
        for status in statuses:
            for task in self._lexi.list_tasks(status):
                where.setdefault(task.id, task)
        for row in vanished:
            self._apply(row, where.get(row.task_id), (TaskState.PENDING,))
        for row in waiting:
            found = where.get(row.task_id)
            if found is not None and found.status in (TaskState.COMPLETED, TaskState.FAILED):
                self._apply(row, found, (TaskState.APPROVED,))
            elif found is None and TaskState.APPROVED in statuses:
                self._apply(row, None, (TaskState.APPROVED,))  # listed nowhere: LeadLex no longer has it

    def _apply(self, row: TaskRow, task: Task | None, from_states: tuple[str, ...]) -> None:
        """Record the state LeadLex reports (None: it no longer has the task) and show it in Slack."""
        status = task.status if task is not None else TaskState.GONE
        if status == row.state:
            return
        self._applier.apply(row.task_id, status, from_states=from_states, task=task, said="in LeadLex")

    def _repair(self) -> None:
        """Re-render cards whose last update failed, and post thread replies a crash skipped."""
        for row in self._store.unrendered():
            self._later(f"card:{row.task_id}", self._resync, row.task_id)
        for row in self._store.unreplied():
            self._later(f"reply:{row.task_id}", self._messenger.reply_final, row)

    def _resync(self, task_id: str) -> None:
        """Re-render a card whose last update failed; another failure is logged and left for the next repair."""
        try:
            self._messenger.sync_card(task_id)
        except SlackApiError as exc:
            log.warning("task %r: card update failed again: %r", clip(task_id), clip(slack_error_text(exc), 500))
