"""The running bot's parts, built once from settings and shared by the listeners, the poller and the server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from slack_sdk import WebClient

from bot.announcer import Announcer
from bot.approvers import Approvers
from bot.app_home import HomePublisher
from bot.budget import BudgetPolicy
from bot.config import Settings
from bot.db.store import Store, utcnow
from bot.decisions import Decider
from bot.leader import Leadership
from bot.lexi.client import LexiClient
from bot.messenger import AUTH_ERRORS, Messenger, make_web_client
from bot.metrics import Metrics
from bot.poller import Poller
from bot.reminders import Reminders
from bot.rules import AutoApprover
from bot.replies import BotStatus
from bot.webhooks import WebhookReceiver

log = logging.getLogger(__name__)


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
    """The bot's collaborators and its own worker pool for slow work that must not hold Bolt's threads."""

    settings: Settings
    store: Store
    lexi: LexiClient
    slack: WebClient
    messenger: Messenger
    announcer: Announcer
    decider: Decider
    poller: Poller
    workers: ThreadPoolExecutor
    webhooks: WebhookReceiver | None = None
    leadership: Leadership | None = None
    home: HomePublisher | None = None
    metrics: Metrics = field(default_factory=Metrics)
    slack_health: SlackHealth = field(default_factory=lambda: SlackHealth(None))
    stopping: threading.Event = field(default_factory=threading.Event)
    _inflight: set[Future[Any]] = field(default_factory=set)
    _inflight_lock: threading.Lock = field(default_factory=threading.Lock)
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
            metrics=metrics,
        )
        poller = Poller(
            store, lexi, messenger, announcer, decider,
            interval=settings.poll_interval,
            policy=BudgetPolicy(reserve_percent=settings.budget_reserve),
            webhooks=settings.lexi_webhook_secret is not None,
            reconcile_interval=settings.reconcile_interval,
            metrics=metrics,
        )
        workers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lexi-work")
        runtime = cls(settings, store, lexi, slack, messenger, announcer, decider, poller, workers,
                      metrics=metrics, slack_health=slack_health, leadership=Leadership(store.engine))
        runtime.watch("workers", runtime._workers_alive)
        announcer.on_announced = AutoApprover(policy, store, decider).after_announce
        messenger.policy = policy
        poller.reminders = Reminders(policy, store, messenger, lexi, decider.approvers)
        runtime.home = HomePublisher(
            store, slack, decider, runtime.status, submit=runtime.submit, debounce=home_debounce
        )
        messenger.on_card_change = runtime.home.changed  # any card change refreshes the open Home tabs
        decider.on_decided = runtime.after_decision
        if settings.lexi_webhook_secret is not None:
            runtime.webhooks = WebhookReceiver(
                settings.lexi_webhook_secret.get_secret_value(), store, announcer, messenger,
                submit=runtime.submit, clock=utcnow, metrics=metrics,
            )
        return runtime

    def after_decision(self, user: str) -> None:
        """After a decision: the decider's Home shows it at once, and the poller re-plans (a completion to watch)."""
        self.poller.wake()
        if self.home is not None:
            self.home.publish(user)

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
        """Start the poller on its own thread, watched by /healthz."""
        thread = threading.Thread(
            target=self.poller.run, args=(stop, self.leadership), name="lexi-poller", daemon=True
        )
        self.watch("poller", thread)
        thread.start()
        return thread

    def _workers_alive(self) -> bool:
        """Whether the worker pool still takes work with every thread it started (a killed thread is lost)."""
        threads = getattr(self.workers, "_threads", ())  # noqa: SLF001 - the pool has no public liveness
        return not getattr(self.workers, "_shutdown", False) and all(t.is_alive() for t in threads)

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
            problem=self.poller.problem or self.slack_health.problem,
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
        checks["slack"] = self.slack_health.problem or "ok"
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
        return ready, {"ready": ready, **checks}

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run slow work (LeadLex calls, card updates) on the bot's own pool, logging any failure."""

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception:
                log.exception("background work %s failed", getattr(fn, "__name__", fn))
                raise

        future = self.workers.submit(run)
        with self._inflight_lock:
            self._inflight.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Any]) -> None:
        """Forget finished work."""
        with self._inflight_lock:
            self._inflight.discard(future)

    def drain(self, timeout: float) -> bool:
        """Wait (bounded) until no submitted work is queued or running; True when none is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._inflight_lock:
                pending = list(self._inflight)
            if not pending:
                return True
            wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        with self._inflight_lock:
            return not self._inflight

    def close(self, drain_timeout: float = 20.0) -> None:
        """Stop taking work, let work in flight finish (bounded), and release connections."""
        self.stopping.set()
        if not self.drain(drain_timeout):
            log.warning("stopping with work still in flight after %.0fs", drain_timeout)
        self.workers.shutdown(wait=False, cancel_futures=True)
        if self.leadership is not None:
            self.leadership.release()
        self.lexi.close()
        self.store.close()
