"""The running bot's parts, built once from settings (bot.wiring).

They are shared by the listeners, the poller and the server; its work queues are bot.workers', its health
bot.health's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.config import RunSettings, Settings
from bot.core.announcer import Announcer
from bot.core.conversations import Conversations
from bot.core.decisions import Decider
from bot.core.keeper import Keeper
from bot.core.policy import Policy
from bot.core.poller import Poller
from bot.core.tasks import TaskLookup
from bot.core.webhooks import WebhookReceiver
from bot.core.workqueue import WorkQueue
from bot.db.store import DecisionRow, Store
from bot.health import Health, SlackHealth
from bot.lexi.client import LexiClient
from bot.ops.leader import Leadership
from bot.ops.metrics import Metrics
from bot.slack.home_publisher import HomePublisher
from bot.slack.messenger import Messenger
from bot.slack.replies import BotStatus
from bot.workers import QUEUES, Workers

__all__ = ["ANNOUNCE_BACKLOG", "QUEUES", "Runtime", "SlackHealth"]

log = logging.getLogger(__name__)

#: The most tasks waiting to be announced (beyond it, new tasks wait in LeadLex for the next poll).
ANNOUNCE_BACKLOG = 10_000


class Runtime:
    """The bot's collaborators, its work queues for slow work that must not hold Bolt's threads, and its health."""

    def __init__(
        self,
        *,
        settings: RunSettings,
        store: Store,
        lexi: LexiClient,
        slack: WebClient,
        messenger: Messenger,
        announcer: Announcer,
        decider: Decider,
        poller: Poller,
        workers: Workers,
        policy: Policy,
        health: Health,
        home: HomePublisher | None = None,
        webhooks: WebhookReceiver | None = None,
        leadership: Leadership | None = None,
        metrics: Metrics,
        tasks: TaskLookup,
        conversations: Conversations,
        scope: str = "",
    ) -> None:
        """Hold the parts bot.wiring built; `scope` is the workspace they serve ('' in single-workspace mode)."""
        self.settings = settings
        self.store = store
        self.lexi = lexi
        self.slack = slack
        self.messenger = messenger
        self.announcer = announcer
        self.decider = decider
        self.poller = poller
        self.workers = workers
        #: The approval policy, parsed once per process (from the settings) and shared by every part.
        self.policy = policy
        self.monitor = health
        self.home = home
        self.webhooks = webhooks
        self.leadership = leadership
        self.metrics = metrics
        #: Finds tasks the bot knows or LeadLex lists (the /lexi subcommands' way to them).
        self.tasks = tasks
        #: Asks Lexi, continuing each person's conversation (`/lexi ask`).
        self.conversations = conversations
        #: The workspace served: keys this runtime's Home refreshes on queues shared with other workspaces.
        self.scope = scope

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
        policy: Policy | None = None,
    ) -> Runtime:
        """Wire the parts together from settings (bot.wiring.build_runtime)."""
        from bot.wiring import build_runtime  # noqa: PLC0415 - bot.wiring imports this module

        return build_runtime(
            settings,
            store=store,
            post_interval=post_interval,
            claim_timeout=claim_timeout,
            lexi_options=lexi_options,
            home_debounce=home_debounce,
            policy=policy,
        )

    @property
    def queues(self) -> dict[str, WorkQueue]:
        """The work queues, by name (bot.workers.QUEUES)."""
        return self.workers.queues

    @property
    def slack_health(self) -> SlackHealth:
        """Whether Slack still accepts the bot's token."""
        return self.monitor.slack

    @property
    def stopping(self) -> threading.Event:
        """Set once the bot stops: parts that end then are not dead."""
        return self.monitor.stopping

    def after_decision(self, user: str) -> None:
        """After a decision: the decider's Home shows it at once, and the poller re-plans (a completion to watch)."""
        self.poller.wake()
        if self.home is not None:  # on the home queue: the decision's worker is free for the next click
            self.home.decided(user)

    def health(self) -> dict[str, Any]:
        """What GET /healthz reports (bot.health.Health.health)."""
        return self.monitor.health()

    def watch(self, name: str, part: threading.Thread | Callable[[], bool]) -> None:
        """Have /healthz fail when `part` (a thread, or a check that says whether it runs) has stopped."""
        self.monitor.watch(name, part)

    def dead(self) -> list[str]:
        """The watched parts that stopped while the bot is not stopping."""
        return self.monitor.dead()

    def status(self) -> BotStatus:
        """The bot's health for `/lexi status` and the App Home, from what it knows (no LeadLex call)."""
        return self.monitor.status()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the bot can do its job now (bot.health.Health.readiness)."""
        return self.monitor.readiness()

    def start_poller(self, stop: threading.Event) -> threading.Thread:
        """Start the poller on its own thread, watched by /healthz (and the decision keeper beside it)."""
        self.start_keeper(stop)
        thread = threading.Thread(target=self.poller.run, args=(stop, self.leadership), name="lexi-poller", daemon=True)
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

    def backlog(self) -> dict[str, Any]:
        """Work waiting, per queue, and the tasks waiting to be announced, per channel."""
        report: dict[str, Any] = dict(self.workers.backlog())
        backlog = self.announcer.backlog
        report["announce"] = len(backlog) if backlog is not None else 0
        if backlog is not None and (by_channel := backlog.sizes()):
            report["announce_by_channel"] = by_channel
        return report

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any] | None:
        """Run slow work (slash commands, private answers) on the general queue (bot.workers.Workers.submit)."""
        return self.workers.submit(fn, *args, **kwargs)

    def carry_decision(self, decision: DecisionRow, tell: Callable[[str], None] | None = None) -> None:
        """Carry out a decision just journaled and acknowledged, here (in its listener's thread), or queue it.

        Here, the LeadLex call follows the ack at once; on the decisions queue when INLINE_DECISIONS already run so.
        """
        if not self.workers.inline.run(self.decider.carry, decision, tell):
            self.submit_decision(decision, tell)

    def submit_decision(self, decision: DecisionRow, tell: Callable[[str], None] | None = None) -> Future[Any] | None:
        """Carry out a journaled decision on the decisions queue, which nothing else uses.

        A click never waits behind other work.

        When that queue is full (or shut down) the decision stays in the journal: its lease is let go, and the keeper
        (here or in another replica) resumes it once the lease has run out. None is returned then.
        """
        try:
            return self.queues["decisions"].submit(self.decider.carry, decision, tell)
        except RuntimeError:  # full (QueueFull), or shut down
            log.warning(
                "task %r: the decisions queue is full; the decision waits in the journal", decision.task_id[:100]
            )
            self.decider.leases.drop(decision.id)
            return None

    def submit_home(self, fn: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Publish Home tabs on their own queue (bot.workers.Workers.submit_home)."""
        return self.workers.submit_home(fn, *args, scope=self.scope)

    def drain(self, timeout: float) -> bool:
        """Wait (bounded) until no work is queued or running in any queue, announcements included; True when none."""
        return self.workers.drain(timeout, self.announcer.backlog)

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
        self.workers.shutdown()
        if self.leadership is not None:
            self.leadership.release()
        self.lexi.close()
        self.store.close()
