"""The running bot's parts, built once from settings and shared by the listeners, the poller and the server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from slack_sdk import WebClient

from bot.core.announcer import AnnounceError, Announcer, Backlog
from bot.core.approvers import Approvers
from bot.slack.home_publisher import HomePublisher
from bot.core.budget import BudgetPolicy
from bot.config import Settings
from bot.db.store import DecisionRow, Store, utcnow
from bot.core.decisions import Decider
from bot.core.keeper import Keeper, Leases
from bot.ops.leader import Leadership
from bot.lexi.client import LexiClient
from bot.slack.messenger import AUTH_ERRORS, Messenger, make_web_client
from bot.ops.metrics import Metrics
from bot.core.poller import Poller
from bot.core.reminders import Reminders
from bot.core.rules import AutoApprover
from bot.slack.replies import BotStatus
from bot.core.webhooks import WebhookReceiver
from bot.core.workqueue import WorkQueue

log = logging.getLogger(__name__)

#: The bot's work queues: (worker threads, most work waiting). Each kind of work has its own, so that none waits
#: behind another: people's decisions (sized for many slow LeadLex calls at once), the rules' auto-approvals,
#: slash commands and private answers, card updates and thread replies (webhook deliveries too), Home refreshes,
#: and the reminders' runs.
#: Announcements have a queue of their own per channel (bot.core.announcer.Backlog), paced as Slack wants.
QUEUES = {
    # Threads start only when needed; each decision holds one for LeadLex's answer (seconds when it is slow), so
    # as many as the clicks that may arrive at once: 32 made the 200th of a burst wait 30 s for its call.
    "decisions": (256, 2_000),
    "rules": (1, 2_000),  # auto-approvals, one at a time: the daily cap is counted, then spent
    "work": (8, 1_000),
    "cards": (4, 20_000),
    "home": (2, 200),
    "chores": (1, 10),
}
#: The most tasks waiting to be announced (beyond it, new tasks wait in LeadLex for the next poll).
ANNOUNCE_BACKLOG = 10_000
#: What a person is told when the decisions queue is full.
BUSY = "The bot has too many decisions in progress right now; please try again in a minute."


class SlackHealth:
    """Remembers whether Slack still accepts the bot's token, and counts Slack errors."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics
        self.problem: str | None = None

    def note(self, error: str) -> None:
        """Record one Slack API error."""
        if self._metrics is not None:
            self._metrics.slack_errors.labels(error).inc()
        if error in AUTH_ERRORS:
            self.problem = f"Slack refuses the bot token ({error})"


@dataclass
class Runtime:
    """The bot's collaborators and its own work queues for slow work that must not hold Bolt's threads."""

    settings: Settings
    store: Store
    lexi: LexiClient
    slack: WebClient
    messenger: Messenger
    announcer: Announcer
    decider: Decider
    poller: Poller
    queues: dict[str, WorkQueue]
    webhooks: WebhookReceiver | None = None
    leadership: Leadership | None = None
    home: HomePublisher | None = None
    metrics: Metrics = field(default_factory=Metrics)
    slack_health: SlackHealth = field(default_factory=lambda: SlackHealth(None))
    stopping: threading.Event = field(default_factory=threading.Event)
    _watched: dict[str, Callable[[], bool]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        post_interval: float = 1.0,
        claim_timeout: timedelta = timedelta(seconds=90),
        lexi_options: dict[str, Any] | None = None,
        home_debounce: float = 2.0,
    ) -> Runtime:
        """Wire the parts together from settings (the store may be passed in, already migrated)."""
        assert settings.slack_bot_token is not None and settings.slack_channel is not None
        assert settings.lexi_api_key is not None
        policy = settings.policy()  # validated completely: a misunderstood policy stops the bot here
        store = store or Store.from_url(settings.database_url)
        metrics = Metrics()
        lexi = LexiClient(
            settings.lexi_api_url, settings.lexi_api_key.get_secret_value(),
            on_response=metrics.leadlex_call, on_unparseable=lambda kind: metrics.unparseable.labels(kind).inc(),
            **(lexi_options or {}),
        )
        metrics.budget_remaining.set_function(lambda: float(lexi.budget.remaining or 0))
        slack_health = SlackHealth(metrics)
        slack = make_web_client(
            settings.slack_bot_token.get_secret_value(), settings.slack_api_url, on_error=slack_health.note
        )
        messenger = Messenger(slack, store, post_interval=post_interval)
        # One process per SQLite file (bot.db.guard), so claims older than this process are orphans.
        orphaned_before = utcnow() if settings.database_kind == "sqlite" else None
        announcer = Announcer(
            store, messenger, settings.slack_channel, claim_timeout=claim_timeout, orphaned_before=orphaned_before,
            metrics=metrics, policy=policy,
        )
        decider = Decider(
            store, lexi, messenger, approvers=Approvers(policy, slack), orphaned_before=orphaned_before,
            metrics=metrics, leases=Leases(store, orphans=orphaned_before is not None),
        )
        poller = Poller(
            store, lexi, messenger, announcer, decider,
            interval=settings.poll_interval,
            policy=BudgetPolicy(reserve_percent=settings.budget_reserve),
            webhooks=settings.lexi_webhook_secret is not None,
            reconcile_interval=settings.reconcile_interval,
            metrics=metrics,
        )
        queues = {name: WorkQueue(name, workers, limit) for name, (workers, limit) in QUEUES.items()}
        runtime = cls(settings, store, lexi, slack, messenger, announcer, decider, poller, queues,
                      metrics=metrics, slack_health=slack_health, leadership=Leadership(store.engine))
        for name, queue in queues.items():
            runtime.watch(f"{name} queue", queue.alive)
            metrics.queue_backlog.labels(name).set_function(lambda q=queue: float(q.backlog))
            metrics.queue_running.labels(name).set_function(lambda q=queue: float(q.running))
        announcer.backlog = Backlog(announcer.announce_or_update, limit=ANNOUNCE_BACKLOG,
                                    on_error=runtime._announce_failed)
        metrics.queue_backlog.labels("announce").set_function(lambda: float(len(announcer.backlog or ())))
        auto = AutoApprover(policy, store, decider)
        # A rule's approval waits in a queue of its own, never in a channel's paced posts nor before a click.
        announcer.on_announced = lambda task: runtime.queues["rules"].submit(auto.after_announce, task)
        messenger.policy = policy
        poller.reminders = Reminders(policy, store, messenger, decider, decider.approvers)
        poller.cards, poller.chores = queues["cards"], queues["chores"]
        runtime.home = HomePublisher(
            store, slack, decider, runtime.status, submit=runtime.submit_home, debounce=home_debounce
        )
        messenger.on_card_change = runtime.home.changed  # any card change refreshes the open Home tabs
        decider.on_decided = runtime.after_decision
        decider.background = runtime.submit  # "Approving…" goes to Slack beside the LeadLex call
        decider.resume = runtime.submit_decision
        if settings.lexi_webhook_secret is not None:
            runtime.webhooks = WebhookReceiver(
                settings.lexi_webhook_secret.get_secret_value(), store, announcer, messenger,
                submit=queues["cards"].submit, clock=utcnow, metrics=metrics,
            )
        return runtime

    def after_decision(self, user: str) -> None:
        """After a decision: the decider's Home shows it at once, and the poller re-plans (a completion to watch)."""
        self.poller.wake()
        if self.home is not None:  # on the home queue: the decision's worker is free for the next click
            self.submit_home(self.home.publish, user)

    def health(self) -> dict[str, Any]:
        """What GET /healthz reports: whether every part the bot needs still runs (`ok`), and which died."""
        dead = self.dead()
        report: dict[str, Any] = {"ok": not dead, "mode": self.settings.mode, "last_poll": self.poller.last_success}
        if dead:
            report["dead"] = dead
        return report

    def watch(self, name: str, part: threading.Thread | Callable[[], bool]) -> None:
        """Have /healthz fail when `part` (a thread, or a check that says whether it runs) has stopped."""
        self._watched[name] = part.is_alive if isinstance(part, threading.Thread) else part

    def dead(self) -> list[str]:
        """The watched parts that stopped while the bot is not stopping (a check that fails counts as stopped)."""
        if self.stopping.is_set():
            return []
        dead = []
        for name, alive in list(self._watched.items()):
            try:
                running = bool(alive())
            except Exception:  # noqa: BLE001 - a part we cannot even ask is not running
                running = False
            if not running:
                dead.append(name)
        return dead

    def start_poller(self, stop: threading.Event) -> threading.Thread:
        """Start the poller on its own thread, watched by /healthz (and the decision keeper beside it)."""
        self.start_keeper(stop)
        thread = threading.Thread(
            target=self.poller.run, args=(stop, self.leadership), name="lexi-poller", daemon=True
        )
        self.watch("poller", thread)
        thread.start()
        return thread

    def start_keeper(self, stop: threading.Event) -> threading.Thread:
        """Start the thread that renews this process's decision leases and resumes those of dead processes."""
        keeper = Keeper(self.decider.leases, self.store, self.submit_decision)
        thread = threading.Thread(target=keeper.run, args=(stop,), name="lexi-keeper", daemon=True)
        self.watch("decision keeper", thread)
        thread.start()
        return thread

    def _announce_failed(self, exc: AnnounceError) -> None:
        """Slack refused an announcement because of the setup: say so once, in the log and in the channel."""
        log.error("%s", exc)
        self.messenger.say(self.settings.slack_channel or "", f":warning: lexi-bot cannot work right now: {exc}.")

    def _announce_problem(self) -> str | None:
        """The setup problem that stopped the last announcement (until one succeeds), or None."""
        return self.announcer.backlog.problem if self.announcer.backlog is not None else None

    def backlog(self) -> dict[str, Any]:
        """Work waiting, per queue, and the tasks waiting to be announced, per channel."""
        report: dict[str, Any] = {name: queue.backlog for name, queue in self.queues.items()}
        backlog = self.announcer.backlog
        report["announce"] = len(backlog) if backlog is not None else 0
        if backlog is not None and (by_channel := backlog.sizes()):
            report["announce_by_channel"] = by_channel
        return report

    def status(self) -> BotStatus:
        """The bot's health for `/lexi status` and the App Home, from what it knows (no LeadLex call)."""
        last = self.poller.last_success
        budget = self.lexi.budget
        return BotStatus(
            last_poll=None if last is None else datetime.fromtimestamp(last, timezone.utc),
            pending=self.store.count_in_state("pending"),
            calls_left=budget.remaining,
            calls_limit=budget.limit,
            mode=self.settings.mode,
            database=self.settings.database_kind,
            problem=self.poller.problem or self.slack_health.problem or self._announce_problem(),
        )

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the bot can do its job now: database reachable, credentials accepted, polls recent."""
        checks: dict[str, Any] = {}
        try:
            self.store.ping()
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by type only
            checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["leadlex"] = self.poller.problem or "ok"
        checks["slack"] = self.slack_health.problem or self._announce_problem() or "ok"
        age = self.poller.last_poll_age()
        checks["last_poll_age"] = None if age is None else round(age, 1)
        if self.poller.paused is not None:
            checks["poll"] = f"paused: {self.poller.paused}"  # it resumes by itself; say why it waits
        elif self.leadership is not None and self.leadership.is_leader is False:
            checks["poll"] = "standby"  # another replica polls; this one serves clicks and webhooks
        elif age is None or age > self.poller.overdue_after():
            checks["poll"] = "no successful poll yet" if age is None else "overdue"
        else:
            checks["poll"] = "ok"
        dead = self.dead()
        checks["parts"] = f"stopped: {', '.join(dead)}" if dead else "ok"
        ready = all(checks[k] in ("ok", "standby") for k in ("database", "leadlex", "slack", "poll", "parts"))
        # Reported, never a reason to be unready: a long backlog is work in progress, and the polls go on.
        checks["backlog"] = self.backlog()
        return ready, {"ready": ready, **checks}

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any] | None:
        """Run slow work (slash commands, private answers) on the general queue, logging any failure.

        None (logged) when that queue is full or shut down: a listener must still answer Slack in time.
        """
        try:
            return self.queues["work"].submit(fn, *args, **kwargs)
        except RuntimeError as exc:
            log.warning("refused background work %s: %s", getattr(fn, "__name__", fn), exc)
            return None

    def submit_decision(self, decision: DecisionRow, tell: Callable[[str], None] | None = None) -> Future[Any] | None:
        """Carry out a journaled decision on the decisions queue, which nothing else uses: a click never waits behind
        other work.

        When that queue is full (or shut down) the decision stays in the journal: its lease is let go, and the keeper
        (here or in another replica) resumes it once the lease has run out. None is returned then.
        """
        try:
            return self.queues["decisions"].submit(self.decider.carry, decision, tell)
        except RuntimeError:  # full (QueueFull), or shut down
            log.warning("task %r: the decisions queue is full; the decision waits in the journal",
                        decision.task_id[:100])
            self.decider.leases.drop(decision.id)
            return None

    def submit_home(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Publish Home tabs on their own queue; when it is full the refresh is skipped (the next change redoes it).

        A refresh already waiting for the same arguments stands for this one (ten decisions, one Home update).
        """
        try:
            return self.queues["home"].submit(fn, *args, key=(getattr(fn, "__name__", fn), *args))
        except RuntimeError:  # full (QueueFull), or shut down
            log.warning("skipped a Home refresh: the home queue is full")
            return None

    def drain(self, timeout: float) -> bool:
        """Wait (bounded) until no work is queued or running in any queue, announcements included; True when none."""
        deadline = time.monotonic() + timeout
        while True:  # work in one queue may queue more in another: settled when all are idle at once
            idle = all(queue.drain(deadline) for queue in self.queues.values())
            if self.announcer.backlog is not None:
                idle = self.announcer.backlog.drain(deadline) and idle
            backlog = self.announcer.backlog
            if (idle and all(queue.backlog == 0 and queue.running == 0 for queue in self.queues.values())
                    and (backlog is None or backlog.idle)):
                return True
            if time.monotonic() >= deadline:
                return False

    def close(self, drain_timeout: float = 20.0) -> None:
        """Stop taking work, let work in flight finish (bounded), and release connections.

        Announcements not started yet are dropped (they have no record: the next poll, here or elsewhere, lists
        them again); a post in flight is recorded first.
        """
        self.stopping.set()
        deadline = time.monotonic() + drain_timeout
        if self.announcer.backlog is not None and not self.announcer.backlog.close(deadline):
            log.warning("stopping with an announcement still in flight")
        if not self.drain(max(0.0, deadline - time.monotonic())):
            log.warning("stopping with work still in flight after %.0fs", drain_timeout)
        for queue in self.queues.values():
            queue.shutdown()
        if self.leadership is not None:
            self.leadership.release()
        self.lexi.close()
        self.store.close()
