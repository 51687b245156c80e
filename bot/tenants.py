"""Multi-workspace mode's runtimes: one per connected workspace, built when first needed, sharing queues and metrics.

Each workspace's runtime is what bot.wiring builds for single-workspace mode (bot.wiring.build_parts), on that
workspace's scoped store, LeadLex key and URL, bot token, channel, approvers and policy: nothing one holds reaches
another. They share the process's work queues and metrics, so a thousand workspaces do not make a thousand pools.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from pydantic import SecretStr
from slack_sdk.oauth.installation_store.models.bot import Bot

from bot.config import DEFAULT_LEXI_API_URL, HttpSettings, Settings
from bot.core.keeper import INTERVAL, Keeper
from bot.core.policy import Policy, from_settings, parse_policy
from bot.core.schedule import Polled
from bot.core.webhooks import WebhookReceiver
from bot.db.store import Store
from bot.db.workspaces import Workspace, Workspaces
from bot.errors import LexiBotError
from bot.ops.metrics import Metrics
from bot.ops.tls import SharedConnections
from bot.runtime import Runtime
from bot.wiring import Shared, Timing, build_parts, make_lexi_client
from bot.workers import Workers

__all__ = ["Installations", "Tenants"]

log = logging.getLogger(__name__)

#: The registry state in which a workspace is served (a LeadLex key and a channel are set).
CONNECTED = "connected"


class Installations(Protocol):
    """What Tenants uses of slack_sdk's installation store (SQLAlchemyInstallationStore): a workspace's bot."""

    def find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        """The latest bot installation of a team (or, org-wide, of an organization), or None."""


class Tenants:
    """The runtimes of the connected workspaces, built lazily and cached by workspace id (safe across threads).

    `get` gives a workspace's runtime (it satisfies bot.slack.listeners.Running, so the listeners serve every
    workspace unchanged), `forget` drops it after its configuration changed or it was uninstalled, `poll` runs one
    poll cycle for a workspace. For the HTTP front (bot.service.Service) it also reports the process's health.
    """

    #: The one receiver of single-workspace mode: none here, each workspace's is found by its path (`webhook_for`).
    webhooks: WebhookReceiver | None = None

    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Workspaces,
        installations: Installations,
        *,
        workers: Workers,
        metrics: Metrics,
        timing: Timing | None = None,
        lexi_options: dict[str, Any] | None = None,
    ) -> None:
        """Serve from `store` (unscoped) and `registry`, with bot tokens from `installations`, on shared parts."""
        self.settings = settings
        self.store = store
        self.registry = registry
        self.installations = installations
        self.workers = workers
        self.metrics = metrics
        self.timing = timing or Timing()
        #: One HTTP client per thread and host for every workspace's LeadLex and Slack calls.
        self.connections = SharedConnections()
        self.lexi_options = {**(lexi_options or {}), "connections": self.connections}
        #: Set once the process stops: parts that end then are not dead.
        self.stopping = threading.Event()
        self._runtimes: dict[str, Runtime] = {}
        self._keepers: dict[str, Keeper] = {}
        self._lock = threading.RLock()
        self._watched: dict[str, Any] = {}

    # --- the runtimes -------------------------------------------------------------------------------

    def get(self, team_id: str) -> Runtime | None:
        """The runtime of a connected workspace (built on first use), or None when it is not connected."""
        with self._lock:
            found = self._runtimes.get(team_id)
            if found is not None:
                return found
            workspace = self.registry.get(team_id) if team_id else None
            if workspace is None or workspace.state != CONNECTED:
                return None
            runtime = self._build(workspace)
            if runtime is not None:
                self._runtimes[team_id] = runtime
                self._keepers[team_id] = Keeper(runtime.decider.leases, runtime.store, runtime.submit_decision)
            return runtime

    def forget(self, team_id: str) -> None:
        """Drop a workspace's runtime (the next request builds it again from the registry) and close its clients."""
        with self._lock:
            runtime = self._runtimes.pop(team_id, None)
            self._keepers.pop(team_id, None)
        if runtime is not None:
            _close(runtime, deadline=time.monotonic() + 5.0)

    def poll(self, workspace: Workspace) -> Polled:
        """Run one poll cycle of a workspace now: the seconds until its next poll is due, its budget and problem.

        A workspace no longer connected is not polled: its next poll is a poll interval away. (The Scheduler calls
        this for each workspace it claims: bot.core.schedule.)
        """
        runtime = self.get(workspace.id)
        if runtime is None:
            return Polled(self.settings.poll_interval)
        bot = self._bot(workspace)  # a token rotated by a request (here or on another replica) since the last poll
        if bot is not None and bot.bot_token and runtime.slack.token != bot.bot_token:
            runtime.slack.token = bot.bot_token
        delay = runtime.poller.cycle()
        return Polled(delay, runtime.lexi.budget.remaining, runtime.poller.problem)

    def keep(self, stop: threading.Event) -> None:
        """Until `stop`: renew the decision leases of every workspace served here, and resume those of dead processes.

        One thread for all workspaces (bot.core.keeper.Keeper's tick for each), instead of one per workspace. A
        round ticks only the workspaces with an open decision (one query for all of them) or one held here: a
        query per workspace per second was most of a core per replica at 1,000 workspaces (bench.workspaces).
        """
        while not stop.is_set():
            with self._lock:
                keepers = list(self._keepers.items())
            try:
                waiting = self.store.workspaces_with_open_decisions()
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the keeper; it retries
                log.warning("could not look for decisions to renew or resume: %s", type(exc).__name__)
                stop.wait(INTERVAL)
                continue
            for team_id, keeper in keepers:
                if team_id not in waiting and keeper.idle():
                    continue
                try:
                    keeper.tick()
                except Exception as exc:  # noqa: BLE001 - a database outage must not end the keeper; it retries
                    log.warning("workspace %s: could not renew or resume decisions: %s", team_id, type(exc).__name__)
            stop.wait(INTERVAL)

    def budget_left(self, team_id: str) -> int | None:
        """The LeadLex calls a workspace has left today, as its last answer said (None: not known)."""
        with self._lock:
            runtime = self._runtimes.get(team_id)
        return runtime.lexi.budget.remaining if runtime is not None else None

    def problem(self, team_id: str) -> str | None:
        """What stops a workspace's polling now (a refused key, a Slack setup problem), or None."""
        with self._lock:
            runtime = self._runtimes.get(team_id)
        return runtime.poller.problem if runtime is not None else None

    def webhook_for(self, path: str) -> WebhookReceiver | None:
        """The webhook receiver of the workspace whose delivery URL ends in `path` (None: no such workspace)."""
        workspace = self.registry.by_webhook_path(path)
        if workspace is None:
            return None
        runtime = self.get(workspace.id)
        return runtime.webhooks if runtime is not None else None

    def _bot(self, workspace: Workspace) -> Bot | None:
        """The workspace's latest bot installation (its token), as the install or the last token refresh saved it."""
        org = workspace.is_enterprise_install
        return self.installations.find_bot(
            enterprise_id=workspace.enterprise_id, team_id=None if org else workspace.id, is_enterprise_install=org
        )

    def _build(self, workspace: Workspace) -> Runtime | None:
        """A workspace's runtime from the registry and its installation; None (logged) when something is missing."""
        bot = self._bot(workspace)
        key = self.registry.lexi_key(workspace.id)
        if bot is None or not bot.bot_token or not key or workspace.channel is None:
            log.warning("workspace %s is connected but its bot token or LeadLex key is missing", workspace.id)
            return None
        try:
            policy = workspace_policy(workspace)
        except LexiBotError as exc:  # PolicyError: the stored policy no longer reads
            log.error("workspace %s is not served: its policy is not valid (%s)", workspace.id, exc)  # noqa: TRY400 - the reason, not a traceback
            return None
        url = workspace.lexi_api_url or DEFAULT_LEXI_API_URL
        settings = tenant_settings(self.settings, workspace, lexi_key=key, bot_token=bot.bot_token, lexi_url=url)
        lexi = make_lexi_client(url, key, self.metrics, self.lexi_options)
        shared = Shared(
            store=self.store.scoped(workspace.id),
            workers=self.workers,
            metrics=self.metrics,
            stopping=self.stopping,
            scope=workspace.id,
            connections=self.connections,
        )
        secret = self.registry.webhook_secret(workspace.id)
        return build_parts(settings, shared, lexi, policy=policy, webhook_secret=secret, timing=self.timing)

    # --- the process's health (bot.service.Service) ----------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What GET /healthz reports: whether every part the process needs still runs, and which died."""
        dead = self.dead()
        report: dict[str, Any] = {"ok": not dead, "mode": "http", "workspaces": len(self._runtimes)}
        if dead:
            report["dead"] = dead
        return report

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the process can serve now: the database answers and no part it needs has died."""
        checks: dict[str, Any] = {}
        try:
            self.store.ping()
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by type only
            checks["database"] = f"unreachable ({type(exc).__name__})"
        dead = self.dead()
        if dead:
            checks["dead"] = dead
        return checks["database"] == "ok" and not dead, checks

    def watch(self, name: str, part: threading.Thread | Any) -> None:
        """Have /healthz fail when `part` (a thread, or a check that says whether it runs) has stopped."""
        self._watched[name] = part.is_alive if isinstance(part, threading.Thread) else part

    def dead(self) -> list[str]:
        """The watched parts (and work queues) that stopped while the process is not stopping."""
        if self.stopping.is_set():
            return []
        checks = {**self._watched, **{f"{name} queue": q.alive for name, q in self.workers.queues.items()}}
        dead = []
        for name, alive in checks.items():
            try:
                running = bool(alive())
            except Exception:  # noqa: BLE001 - a part we cannot even ask is not running
                running = False
            if not running:
                dead.append(name)
        return dead

    def close(self, drain_timeout: float = 20.0) -> None:
        """Stop: every workspace's announcements and the shared queues drained (bounded), then connections closed."""
        self.stopping.set()
        deadline = time.monotonic() + drain_timeout
        with self._lock:
            runtimes = list(self._runtimes.values())
            self._runtimes.clear()
            self._keepers.clear()
        for runtime in runtimes:
            backlog = runtime.announcer.backlog
            if backlog is not None and not backlog.close(deadline):
                log.warning("stopping with an announcement still in flight")
        if not self.workers.drain(max(0.0, deadline - time.monotonic())):
            log.warning("stopping with work still in flight after %.0fs", drain_timeout)
        self.workers.shutdown()
        for runtime in runtimes:
            runtime.lexi.close()
        self.connections.close()
        self.store.close()


def workspace_policy(workspace: Workspace) -> Policy:
    """A workspace's approval policy: its stored YAML refining its channel and approvers, or those alone."""
    if workspace.channel is None:
        raise LexiBotError(f"workspace {workspace.id} has no channel")
    if not workspace.policy_yaml:
        return from_settings(workspace.channel, workspace.approvers)
    return parse_policy(
        workspace.policy_yaml,
        name="the workspace's policy",
        source=f"workspace {workspace.id}",
        channel=workspace.channel,
        approvers=workspace.approvers,
    )


def tenant_settings(
    settings: Settings, workspace: Workspace, *, lexi_key: str, bot_token: str, lexi_url: str
) -> HttpSettings:
    """The process's settings with a workspace's LeadLex key and URL, bot token, channel and approvers in them.

    Built without validation: every value was validated where it was stored (the registry, the install).
    """
    values = {
        **dict(settings),
        "lexi_api_key": SecretStr(lexi_key),
        "lexi_api_url": lexi_url,
        "slack_bot_token": SecretStr(bot_token),
        "slack_channel": workspace.channel,
        "lexi_approvers": tuple(a for a in workspace.approvers if not a.startswith("S")),
        "slack_app_token": None,
    }
    return HttpSettings.model_construct(**values)


def _close(runtime: Runtime, deadline: float) -> None:
    """Stop one workspace's runtime without touching what it shares: its announcements (bounded), its client."""
    backlog = runtime.announcer.backlog
    if backlog is not None and not backlog.close(deadline):
        log.warning("workspace %s: an announcement was still in flight when it was dropped", runtime.scope)
    runtime.lexi.close()
