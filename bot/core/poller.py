"""The poller: announce new pending tasks, follow announced tasks to their final state, repair what failed."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.core.announcer import AnnounceError, Announcer
from bot.core.apply import StateApplier
from bot.core.budget import BudgetPolicy
from bot.db.store import CommitUncertain, Store, TaskRow, is_connection_error
from bot.core.decisions import Decider
from bot.errors import InvalidKey, LexiError, PermissionDenied, RateLimited
from bot.lexi.client import LexiClient
from bot.lexi.models import Task
from bot.ops.leader import Leadership
from bot.ops.logs import clip
from bot.slack.messenger import Messenger, slack_error_text
from bot.core.reminders import Reminders
from bot.ops.metrics import Metrics
from bot.core.workqueue import QueueFull, WorkQueue

log = logging.getLogger(__name__)

#: A decision claim older than this is considered abandoned (its process died).
DECIDING_TIMEOUT = timedelta(minutes=3)
#: The longest the poller backs off after repeated failures.
MAX_BACKOFF = 900.0
#: While the database is unreachable, how often (at most) the poller asks whether it is back.
DATABASE_RETRY_MAX = 10.0
#: Why polling is paused while the database does not answer (also what /readyz reports).
DATABASE_DOWN = "database unreachable"


class Poller:
    """Runs poll cycles every `interval` seconds, backing off when LeadLex or Slack refuse."""

    def __init__(
        self,
        store: Store,
        lexi: LexiClient,
        messenger: Messenger,
        announcer: Announcer,
        decider: Decider,
        *,
        interval: float,
        policy: BudgetPolicy | None = None,
        webhooks: bool = False,
        reconcile_interval: float = 3600.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._lexi = lexi
        self._messenger = messenger
        self._announcer = announcer
        self._decider = decider
        self.interval = interval
        self._clock = clock
        self._failures = 0
        self._reported: str | None = None
        self._policy = policy or BudgetPolicy()
        self.webhooks = webhooks
        self.reconcile_interval = reconcile_interval
        self._next_reconcile = 0.0
        self._restore_checked = False
        self.reminders: Reminders | None = None
        #: Where card updates and thread replies go (set by the runtime), so that Slack's pace never holds a cycle;
        #: without one they are done in the cycle.
        self.cards: WorkQueue | None = None
        #: Where the reminders' run goes (set by the runtime); without one it runs in the cycle.
        self.chores: WorkQueue | None = None
        #: Records what LeadLex reports and shows it, its Slack jobs on the cards queue (see `_later`).
        self._applier = StateApplier(store, messenger, later=self._later, logger=log)
        self._woken = threading.Event()
        self._cost = {"full": 1.0, "sync": 2.0}  # LeadLex calls per cycle, a moving average
        self._stretched: str | None = None
        self._polling_day = 0
        self._polling_spent = 0
        self.last_success: float | None = None
        self.last_delay: float = interval
        #: Why polling (and with it announcing) is paused, or None while it runs.
        self.paused: str | None = None
        self._database_failures = 0

    @property
    def problem(self) -> str | None:
        """The setup problem that stops polling now (a refused key, a refused channel), or None."""
        return self._reported

    def last_poll_age(self) -> float | None:
        """Seconds since the last successful cycle, or None before the first."""
        return None if self.last_success is None else max(self._clock() - self.last_success, 0.0)

    def overdue_after(self) -> float:
        """How old the last successful cycle may get before the bot is not ready: two planned intervals."""
        return 2 * max(self.last_delay, self.interval) + 30

    def run(self, stop: threading.Event, leadership: Leadership | None = None) -> None:
        """Poll until `stop` is set; with several replicas, only while this one holds the poller lock.

        No error ends the loop: an unexpected one is logged and the next cycle comes after a backoff.
        """
        while not stop.is_set():
            try:
                delay = self._turn(stop, leadership)
            except Exception:  # noqa: BLE001 - a poller that stops polling is worse than any one error
                log.exception("poll cycle failed unexpectedly; polling carries on")
                if self._metrics is not None:
                    self._metrics.poll_failures.inc()
                delay = self._backoff()
            if delay is not None:
                self.last_delay = delay
                self._sleep(stop, delay)

    def _turn(self, stop: threading.Event, leadership: Leadership | None) -> float | None:
        """One turn of the loop: a cycle and its planned delay, or None after waiting as a standby."""
        if not self._database_answers():
            return self._database_backoff()  # asked again soon: polling resumes by itself when it answers
        if leadership is not None and not leadership.hold():
            stop.wait(min(self.interval, 30.0))
            return None
        started = time.monotonic()
        try:
            delay = self.cycle()
        except SQLAlchemyError as exc:
            if not (is_connection_error(exc) or isinstance(exc, CommitUncertain)):
                raise  # a query the database refuses is a bug: logged in full by run(), with its backoff
            # The database went away mid-cycle: nothing is lost, since what was not recorded is found again by
            # the next cycle (claims left half-way are recovered), so pause instead of backing off for minutes.
            self._database_lost(exc)
            return self._database_backoff()
        if self._metrics is not None:
            self._metrics.poll_duration.observe(time.monotonic() - started)
        return delay

    def _database_answers(self) -> bool:
        """Whether the database answers now; resumes polling (and says so) when it is back after an outage."""
        try:
            self._store.ping()
        except SQLAlchemyError as exc:
            self._database_lost(exc)
            return False
        if self.paused == DATABASE_DOWN:
            log.info("the database answers again; polling and announcing resume")
            self.paused = None
            self._database_failures = 0
        return True

    def _database_lost(self, exc: SQLAlchemyError) -> None:
        """Pause polling because the database does not answer (logged once per outage, by error type only)."""
        if self.paused != DATABASE_DOWN:
            log.warning("the database is unreachable (%s); polling and announcing pause until it answers",
                        type(exc).__name__)
        self.paused = DATABASE_DOWN

    def _database_backoff(self) -> float:
        """The wait before asking the database again: 1 s, doubling up to DATABASE_RETRY_MAX, with jitter."""
        self._database_failures += 1
        return min(2.0 ** (self._database_failures - 1), DATABASE_RETRY_MAX) * random.uniform(0.75, 1.0)

    def wake(self) -> None:
        """Re-plan the current wait: something changed in Slack (an approval now waits for completion)."""
        self._woken.set()

    def _sleep(self, stop: threading.Event, delay: float) -> None:
        """Wait `delay` seconds, or less when woken and the new plan is sooner, or until `stop`."""
        deadline = time.monotonic() + delay
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._woken.wait(min(remaining, 1.0)):
                self._woken.clear()
                deadline = min(deadline, time.monotonic() + self._plan())

    def cycle(self) -> float:
        """Run one cycle — a full reconcile, or with webhooks only the status sync — and plan the next."""
        now = self._clock()
        full = not self.webhooks or now >= self._next_reconcile
        sent = self._lexi.sent
        try:
            if full:
                self._reconcile()
                self._next_reconcile = now + self.reconcile_interval
            else:
                self._sync_waiting()
        except (InvalidKey, PermissionDenied) as exc:
            self._report(str(exc), _access_hint(exc))
            return self._backoff()
        except RateLimited as exc:
            log.warning("LeadLex rate limit reached; next poll in %.0fs", exc.retry_after or self.interval)
            return max(exc.retry_after or 0.0, self._backoff())
        except AnnounceError as exc:
            self._report(str(exc), "")
            return self._backoff()
        except LexiError as exc:
            log.warning("poll cycle stopped early: %r", clip(str(exc), 500),
                        extra={"request_id": exc.request_id})
            return self._backoff()
        except SlackApiError as exc:
            log.warning("poll cycle stopped early: %r", clip(slack_error_text(exc), 500))
            return self._backoff()
        self.last_success = self._clock()
        self._failures = 0
        if self._reported is not None:
            log.info("LeadLex and Slack answer again; polling resumes")
            self._reported = None
        kind = "full" if full else "sync"
        spent = self._lexi.sent - sent
        self._cost[kind] = 0.7 * self._cost[kind] + 0.3 * spent
        self._count_polling(spent)
        return self._plan()

    def _count_polling(self, calls: int) -> None:
        """Add to the calls polling made in the current UTC day (LeadLex's budget resets at 00:00 UTC)."""
        day = int(self._clock() // 86_400)
        if day != self._polling_day:
            self._polling_day, self._polling_spent = day, 0
        self._polling_spent += calls

    def _reconcile(self) -> None:
        """List pending tasks, announce new ones, follow the others, and recover what crashes left."""
        if not self._restore_checked:
            self._announcer.restore(self._announcer.policy.channels())
            self._restore_checked = True
        # The listed content is as of this moment, to the whole second (LeadLex may sign deliveries to the
        # second only): a webhook signed before it is older content and is dropped (bot/core/webhooks.py).
        listed_at = datetime.fromtimestamp(int(self._clock()), timezone.utc)
        pending = self._lexi.list_tasks("pending")
        self._announce_new(pending, listed_at)
        self._follow(pending)
        self._announcer.recover()
        self._decider.recover({t.id for t in pending}, DECIDING_TIMEOUT)
        self._remind()
        self._repair()

    def _sync_waiting(self) -> None:
        """Between reconciles (webhooks on): follow approved tasks to completion, the one thing webhooks omit."""
        self._follow(None)
        self._announcer.recover()
        self._remind()
        self._repair()

    def _remind(self) -> None:
        """Send due reminders and expire overdue tasks: on the chores queue when there is one (at most one run
        waits there), else now."""
        if self.reminders is None:
            return
        if self.chores is None:
            self.reminders.run()
            return
        try:
            self.chores.submit(self.reminders.run, key="reminders")
        except QueueFull:
            log.debug("reminders wait for the next cycle: their queue is full")

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

    def _plan(self) -> float:
        """The next interval: POLL_INTERVAL, or until the next reconcile when nothing waits, budget permitting."""
        now = self._clock()
        wanted = self.interval
        kind = "full"
        if self.webhooks:
            until_reconcile = max(self._next_reconcile - now, 1.0)
            if self._store.in_states(("approved",), limit=1):
                wanted, kind = min(self.interval, until_reconcile), "sync"
            else:
                wanted = until_reconcile
        self._count_polling(0)  # a new day starts with nothing spent
        plan = self._policy.plan(self._lexi.budget, self._cost[kind], now, wanted, self._polling_spent)
        if plan.reason != self._stretched:
            if plan.reason:
                log.warning("polling every %.1fs instead of %.1fs %s", plan.interval, wanted, plan.reason)
            else:
                log.info("the LeadLex budget allows polling every %.1fs again", wanted)
            self._stretched = plan.reason
        return plan.interval

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
            except Exception:  # noqa: BLE001 - one bad task must not stop the others
                log.exception("could not announce task %r", clip(task.id))
        if left:
            log.warning("%d new tasks wait for the next poll: the announcement backlog is full", left)

    def _follow(self, pending: list[Task] | None) -> None:
        """Bring the records of tasks that left `pending` in LeadLex to their real state.

        Only the statuses some record is waiting for are listed, each at most once per cycle; with
        `pending` None (no fresh pending list) only approved tasks are followed to completion.
        """
        records = self._store.in_states(("pending", "approved") if pending is not None else ("approved",))
        pending_ids = {t.id for t in pending or []}
        vanished = [r for r in records if r.state == "pending" and r.task_id not in pending_ids]
        waiting = [r for r in records if r.state == "approved" and r.message_ts is not None]
        if not vanished and not waiting:
            return
        statuses = ["approved", "dismissed", "completed", "failed"] if vanished else ["completed", "failed"]
        where: dict[str, Task] = {}
        for status in statuses:
            for task in self._lexi.list_tasks(status):
                where.setdefault(task.id, task)
        for row in vanished:
            self._apply(row, where.get(row.task_id), ("pending",))
        for row in waiting:
            task = where.get(row.task_id)
            if task is not None and task.status in ("completed", "failed"):
                self._apply(row, task, ("approved",))
            elif task is None and "approved" in statuses:
                self._apply(row, None, ("approved",))  # listed nowhere: LeadLex no longer has it

    def _apply(self, row: TaskRow, task: Task | None, from_states: tuple[str, ...]) -> None:
        """Record the state LeadLex reports (None: it no longer has the task) and show it in Slack."""
        status = task.status if task is not None else "gone"
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

    def _report(self, problem: str, hint: str) -> None:
        """Log a setup problem once, and post it once to the channel, until things work again."""
        if self._reported == problem:
            return
        self._reported = problem
        log.error("%s%s", clip(problem, 500), f" — {hint}" if hint else "")
        text = f":warning: lexi-bot cannot work right now: {problem}."
        if hint:
            text += f" {hint}"
        self._messenger.say(self._announcer.channel, text)

    def _backoff(self) -> float:
        """Exponential backoff with jitter, from the poll interval up to MAX_BACKOFF."""
        self._failures += 1
        base = min(self.interval * (2 ** min(self._failures, 10)), MAX_BACKOFF)
        return base * random.uniform(0.5, 1.0)


def _access_hint(exc: LexiError) -> str:
    """What an admin should do about a refused key."""
    if isinstance(exc, InvalidKey):
        return "Create a new API key in LeadLex and set LEXI_API_KEY."
    return "Give the API key the Lexi permission in LeadLex (Settings → API keys)."
