"""The poller: the loop that runs poll cycles — sleeping, backing off, pausing while the database is away, waking.

What to poll when is the planner's (bot.core.planner); what a poll's answer means is the reconciler's
(bot.core.reconciler: announce new pending tasks, follow announced tasks to their final state, repair what failed).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.core.announcer import AnnounceError, Announcer
from bot.core.budget import BudgetPolicy
from bot.core.decisions import Decider
from bot.core.digest import Digest
from bot.core.planner import Planner
from bot.core.reconciler import Reconciler
from bot.core.reminders import Reminders
from bot.core.workqueue import WorkQueue
from bot.db.store import CommitUncertain, Store, is_connection_error
from bot.errors import InvalidKey, LexiError, PermissionDenied, RateLimited
from bot.lexi.client import LexiClient
from bot.ops.leader import Leadership
from bot.ops.logs import clip
from bot.ops.metrics import Metrics
from bot.slack.messenger import Messenger, slack_error_text

log = logging.getLogger(__name__)

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
        reminders: Reminders | None = None,
        cards: WorkQueue | None = None,
        chores: WorkQueue | None = None,
        digest: Digest | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._lexi = lexi
        self._messenger = messenger
        self._announcer = announcer
        self._clock = clock
        self._failures = 0
        self._reported: str | None = None
        #: What to poll when (within LeadLex's budget).
        self.planner = Planner(
            store,
            lexi,
            interval=interval,
            policy=policy,
            webhooks=webhooks,
            reconcile_interval=reconcile_interval,
            clock=clock,
        )
        #: What a poll's answer means (with the reminders it runs, and the queues its Slack work goes to).
        self.reconciler = Reconciler(
            store,
            lexi,
            messenger,
            announcer,
            decider,
            clock=clock,
            reminders=reminders,
            cards=cards,
            chores=chores,
            digest=digest,
        )
        self._woken = threading.Event()
        self.last_success: float | None = None
        self.last_delay: float = interval
        #: Why polling (and with it announcing) is paused, or None while it runs.
        self.paused: str | None = None
        self._database_failures = 0

    @property
    def interval(self) -> float:
        """The poll interval (POLL_INTERVAL), as planned by the planner."""
        return self.planner.interval

    @interval.setter
    def interval(self, value: float) -> None:
        self.planner.interval = value

    @property
    def webhooks(self) -> bool:
        """Whether webhooks are on (then a full reconcile runs only once per reconcile interval)."""
        return self.planner.webhooks

    @webhooks.setter
    def webhooks(self, value: bool) -> None:
        self.planner.webhooks = value

    @property
    def reminders(self) -> Reminders | None:
        """The reminders and expiry the reconciler runs each cycle (set by the runtime)."""
        return self.reconciler.reminders

    @reminders.setter
    def reminders(self, value: Reminders | None) -> None:
        self.reconciler.reminders = value

    @property
    def digest(self) -> Digest | None:
        """The daily digest the reconciler looks at each cycle (its clock is `digest.now`)."""
        return self.reconciler.digest

    @property
    def cards(self) -> WorkQueue | None:
        """Where card updates and thread replies go (set by the runtime); None: done in the cycle."""
        return self.reconciler.cards

    @cards.setter
    def cards(self, value: WorkQueue | None) -> None:
        self.reconciler.cards = value

    @property
    def chores(self) -> WorkQueue | None:
        """Where the reminders' run goes (set by the runtime); None: it runs in the cycle."""
        return self.reconciler.chores

    @chores.setter
    def chores(self, value: WorkQueue | None) -> None:
        self.reconciler.chores = value

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
            except Exception:
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
            log.warning(
                "the database is unreachable (%s); polling and announcing pause until it answers", type(exc).__name__
            )
        self.paused = DATABASE_DOWN

    def _database_backoff(self) -> float:
        """The wait before asking the database again: 1 s, doubling up to DATABASE_RETRY_MAX, with jitter."""
        self._database_failures += 1
        return min(2.0 ** (self._database_failures - 1), DATABASE_RETRY_MAX) * random.uniform(0.75, 1.0)  # noqa: S311 - backoff jitter, not cryptography

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
                deadline = min(deadline, time.monotonic() + self.planner.plan())

    def cycle(self) -> float:
        """Run one cycle — a full reconcile, or with webhooks only the status sync — and plan the next."""
        now = self._clock()
        full = self.planner.full_due(now)
        sent = self._lexi.sent
        try:
            if full:
                self.reconciler.full()
                self.planner.reconciled(now)
            else:
                self.reconciler.sync()
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
            log.warning("poll cycle stopped early: %r", clip(str(exc), 500), extra={"request_id": exc.request_id})
            return self._backoff()
        except SlackApiError as exc:
            log.warning("poll cycle stopped early: %r", clip(slack_error_text(exc), 500))
            return self._backoff()
        self.last_success = self._clock()
        self._failures = 0
        if self._reported is not None:
            log.info("LeadLex and Slack answer again; polling resumes")
            self._reported = None
        self.planner.spent(self._lexi.sent - sent, full=full)
        return self.planner.plan()

    def _plan(self) -> float:
        """The next interval, as the planner plans it."""
        return self.planner.plan()

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
        factor: int = 2 ** min(self._failures, 10)  # typeshed types int ** int as Any (a negative power is a float)
        base = min(self.interval * factor, MAX_BACKOFF)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - backoff jitter, not cryptography


def _access_hint(exc: LexiError) -> str:
    """What an admin should do about a refused key."""
    if isinstance(exc, InvalidKey):
        return "Create a new API key in LeadLex and set LEXI_API_KEY."
    return "Give the API key the Lexi permission in LeadLex (Settings → API keys)."
