"""Wiring: the bot's parts built from settings, each given what it calls at construction (bot.runtime.Runtime)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from bot.config import RunSettings, Settings, run_settings
from bot.core.announcer import AnnounceError, Announcer
from bot.core.approvers import Approvers
from bot.core.budget import BudgetPolicy
from bot.core.conversations import Conversations
from bot.core.decisions import Decider
from bot.core.digest import Digest
from bot.core.keeper import Leases
from bot.core.policy import Policy
from bot.core.poller import Poller
from bot.core.reminders import Reminders
from bot.core.rules import AutoApprover
from bot.core.tasks import TaskLookup
from bot.core.webhooks import WebhookReceiver
from bot.db.store import DecisionRow, Store, utcnow
from bot.health import Health, SlackHealth
from bot.lexi.client import LexiClient
from bot.ops.leader import Leadership
from bot.ops.metrics import Metrics
from bot.ops.tls import SharedConnections
from bot.runtime import ANNOUNCE_BACKLOG, Runtime
from bot.slack.home_publisher import HomePublisher
from bot.slack.messenger import Messenger, make_web_client
from bot.slack.transport import Connections
from bot.workers import Workers

log = logging.getLogger("bot.runtime")


def announce_failed(messenger: Messenger, channel: str) -> Callable[[AnnounceError], None]:
    """What to do when Slack refused an announcement because of the setup.

    Say so once, in the log and in the channel.
    """

    def failed(exc: AnnounceError) -> None:
        """Log the refusal and post it to the channel."""
        log.error("%s", exc)
        messenger.say(channel, f":warning: lexi-bot cannot work right now: {exc}.")

    return failed


def build_runtime(
    settings: Settings,
    *,
    store: Store | None = None,
    post_interval: float = 1.0,
    claim_timeout: timedelta = timedelta(seconds=90),
    lexi_options: dict[str, Any] | None = None,
    home_debounce: float = 2.0,
    policy: Policy | None = None,
) -> Runtime:
    """Wire the parts together from settings.

    The store, already migrated, and the policy, already parsed, may be passed in.
    """
    settings = run_settings(settings)  # what running needs is there (ConfigError otherwise)
    policy = policy or settings.policy()  # validated completely: a misunderstood policy stops the bot here
    store = store or Store.from_url(settings.database_url)
    metrics = Metrics()
    lexi = make_lexi_client(settings.lexi_api_url, settings.lexi_api_key.get_secret_value(), metrics, lexi_options)
    metrics.budget_remaining.set_function(lambda: float(lexi.budget.remaining or 0))
    workers = Workers(metrics)
    secret = settings.lexi_webhook_secret
    runtime = build_parts(
        settings,
        Shared(store=store, workers=workers, metrics=metrics, leadership=Leadership(store.engine)),
        lexi,
        policy=policy,
        webhook_secret=secret.get_secret_value() if secret is not None else None,
        timing=Timing(post_interval=post_interval, claim_timeout=claim_timeout, home_debounce=home_debounce),
    )
    announcer = runtime.announcer
    metrics.queue_backlog.labels("announce").set_function(lambda: float(len(announcer.backlog or ())))
    return runtime


def make_lexi_client(url: str, key: str, metrics: Metrics, options: dict[str, Any] | None = None) -> LexiClient:
    """A LeadLex client whose answers are counted in `metrics`."""
    return LexiClient(
        url,
        key,
        on_response=metrics.leadlex_call,
        on_unparseable=lambda kind: metrics.unparseable.labels(kind).inc(),
        **(options or {}),
    )


@dataclass(frozen=True)
class Shared:
    """What every part of a process shares, whether it serves one workspace or many.

    `store` is the store the parts use (in multi-workspace mode one scoped to their workspace); `scope` keys the
    Home refreshes waiting on the shared queue, so that two workspaces' refreshes never stand for each other;
    `connections` and `slack_connections`, when given, carry the LeadLex and Slack clients' calls (multi-workspace
    mode: one client per thread and host, and one set of kept-alive Slack connections, for every workspace instead
    of pools per workspace).
    """

    store: Store
    workers: Workers
    metrics: Metrics
    leadership: Leadership | None = None
    stopping: threading.Event | None = None
    scope: str = ""
    #: The name on the decision leases the parts take (None: one of their own). Multi-workspace mode gives every
    #: workspace of a process the same one, so that one keeper renews them all (bot.tenants).
    owner: str | None = None
    #: Clients shared by every workspace's clients (multi-workspace mode): LeadLex's httpx clients and Slack's
    #: kept-alive connections, each request with its own key or token.
    connections: SharedConnections | None = None
    slack_connections: Connections | None = None


@dataclass(frozen=True)
class Timing:
    """The pacing of a runtime's parts (tests shorten them)."""

    post_interval: float = 1.0
    claim_timeout: timedelta = timedelta(seconds=90)
    home_debounce: float = 2.0


def build_parts(
    settings: RunSettings,
    shared: Shared,
    lexi: LexiClient,
    *,
    policy: Policy,
    webhook_secret: str | None,
    timing: Timing = Timing(),  # a frozen dataclass: one shared default is safe
) -> Runtime:
    """The parts of one workspace's bot (its LeadLex client, Slack token and channel in `settings`) on `shared`."""
    store, workers, metrics = shared.store, shared.workers, shared.metrics
    slack_health = SlackHealth(metrics)
    slack = make_web_client(
        settings.slack_bot_token.get_secret_value(),
        settings.slack_api_url,
        on_error=slack_health.note,
        connections=shared.slack_connections,
    )
    # Earlier parts call later ones, a cycle (messenger → Home → decider → messenger): they are handed these
    # callables, which reach `home` and `runtime` (built last, below) when called, never during the build.

    def card_changed() -> None:
        """Any card change refreshes the open Home tabs."""
        home.changed()

    def decided(user: str) -> None:
        """After a decision: the decider's Home shows it at once, and the poller re-plans (a completion to watch)."""
        runtime.after_decision(user)

    def resume(decision: DecisionRow) -> object:
        """A decision taken over from a dead process goes to the decisions queue like a click's."""
        return runtime.submit_decision(decision)

    messenger = Messenger(
        slack,
        store,
        post_interval=timing.post_interval,
        confirm_above=policy.confirm_above,
        on_card_change=card_changed,
    )
    # One process per SQLite file (bot.db.guard), so claims older than this process are orphans.
    orphaned_before = utcnow() if settings.database_kind == "sqlite" else None
    approvers = Approvers(policy, slack)
    decider = Decider(
        store,
        lexi,
        messenger,
        approvers=approvers,
        orphaned_before=orphaned_before,
        metrics=metrics,
        leases=Leases(store, orphans=orphaned_before is not None, owner=shared.owner),
        on_decided=decided,
        background=workers.submit,  # "Approving…" goes to Slack beside the LeadLex call
        resume=resume,
    )
    auto = AutoApprover(policy, store, decider)
    tasks = TaskLookup(store, lexi)
    announcer = Announcer(
        store,
        messenger,
        settings.slack_channel,
        claim_timeout=timing.claim_timeout,
        orphaned_before=orphaned_before,
        metrics=metrics,
        policy=policy,
        # A rule's approval waits in a queue of its own, never in a channel's paced posts nor before a click.
        on_announced=lambda task: workers["rules"].submit(auto.after_announce, task),
        backlog_limit=ANNOUNCE_BACKLOG,
        on_backlog_error=announce_failed(messenger, settings.slack_channel),
        recipients=approvers.recipients,  # the policy's `notify: approvers | both`
    )
    poller = Poller(
        store,
        lexi,
        messenger,
        announcer,
        decider,
        interval=settings.poll_interval,
        policy=BudgetPolicy(reserve_percent=settings.budget_reserve),
        webhooks=webhook_secret is not None,
        reconcile_interval=settings.reconcile_interval,
        metrics=metrics,
        reminders=Reminders(policy, store, messenger, decider, decider.approvers),
        cards=workers["cards"],
        chores=workers["chores"],
        digest=Digest(policy, store, messenger, decider, tasks),
    )
    webhooks = None
    if webhook_secret is not None:
        webhooks = WebhookReceiver(
            webhook_secret,
            store,
            announcer,
            messenger,
            submit=workers["cards"].submit,
            clock=utcnow,
            metrics=metrics,
        )
    health = Health(
        settings=settings,
        store=store,
        lexi=lexi,
        poller=poller,
        announcer=announcer,
        slack_health=slack_health,
        backlog=lambda: runtime.backlog(),  # noqa: PLW0108 - `runtime` is built below; the lambda reads it later
        leadership=shared.leadership,
        stopping=shared.stopping,
    )
    for name, queue in workers.queues.items():
        health.watch(f"{name} queue", queue.alive)
    submit_home = partial(workers.submit_home, scope=shared.scope)
    home = HomePublisher(store, slack, decider, health.status, submit=submit_home, debounce=timing.home_debounce)
    runtime = Runtime(
        settings=settings,
        store=store,
        lexi=lexi,
        slack=slack,
        messenger=messenger,
        announcer=announcer,
        decider=decider,
        poller=poller,
        workers=workers,
        policy=policy,
        health=health,
        home=home,
        webhooks=webhooks,
        leadership=shared.leadership,
        metrics=metrics,
        tasks=tasks,
        conversations=Conversations(store, lexi),
        scope=shared.scope,
    )
    return runtime
