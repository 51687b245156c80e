"""Multi-workspace mode's runtimes: one per connected workspace, built when first needed, sharing queues and metrics.

Each workspace's runtime is what bot.wiring builds for single-workspace mode (bot.wiring.build_parts), on that
workspace's scoped store, LeadLex key and URL, bot token, channel, approvers and policy: nothing one holds reaches
another. They share the process's work queues and metrics, so a thousand workspaces do not make a thousand pools.

Replicas: a change of a workspace's configuration (or its uninstall) is made by whichever replica served that
request; every other one notices within RECHECK seconds. A cached runtime remembers the registry's `updated_at`
it was built from, and a request compares it with the registry at most once per RECHECK per workspace (a poll
compares it with the row its claim just read, at no cost): a changed workspace is rebuilt, one no longer connected
is dropped. A dropped runtime retires: it takes no new work, its decisions in flight finish (their leases still
renewed), then its clients are closed.

One keeper serves every workspace (`keep`): every runtime takes its decision leases under the process's one name,
so a round is one UPDATE renewing them all and one SELECT finding the workspaces with a decision to resume,
however many workspaces are cached.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr
from slack_sdk.oauth.installation_store.models.bot import Bot

from bot.config import DEFAULT_LEXI_API_URL, HttpSettings, Settings
from bot.core.keeper import INTERVAL, KEEP_DONE, LEASE
from bot.core.policy import Policy, from_settings, parse_policy
from bot.core.schedule import Polled
from bot.core.webhooks import TASK_EVENTS, WebhookReceiver
from bot.db.store import Store
from bot.db.workspaces import Workspace, Workspaces
from bot.errors import InvalidRequest, LexiBotError, LexiError
from bot.health import database_check
from bot.lexi.client import LexiClient
from bot.ops.metrics import Metrics
from bot.ops.tls import SharedConnections
from bot.runtime import Runtime
from bot.slack.transport import Connections
from bot.wiring import Shared, Timing, build_parts, make_lexi_client
from bot.workers import Workers

__all__ = ["Installations", "Tenants", "TokenSource"]

log = logging.getLogger(__name__)

#: The registry state in which a workspace is served (a LeadLex key and a channel are set).
CONNECTED = "connected"
#: Seconds a cached runtime is used before its registry row is compared again (how soon a replica sees a change).
RECHECK = 2.0
#: Seconds each step of a Slack call may take (slack_sdk's WebClient default, which make_web_client keeps).
SLACK_TIMEOUT = 15.0
#: Seconds a retired runtime keeps its clients open at least: work already handed to it (a command, a Home) ends.
RETIRE_GRACE = 10.0
#: The longest a retired runtime waits for its decisions in flight before its clients are closed anyway.
RETIRE_WAIT = 60.0
#: Seconds between two prunes of the decisions carried out.
PRUNE_EVERY = 3600.0


class Installations(Protocol):
    """What Tenants uses of slack_sdk's installation store (SQLAlchemyInstallationStore): a workspace's bot."""

    def find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        """The latest bot installation of a team (or, org-wide, of an organization), or None."""


class TokenSource(Protocol):
    """What a poll gets its bot token from (bot.slack.authorize.SerialRefreshAuthorize): refreshed when expiring."""

    def bot_token(self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool) -> str | None:
        """The workspace's bot token, refreshed first when it is about to expire; None when none is installed."""


@dataclass
class _Cached:
    """A workspace's runtime, the registry version (`updated_at`) it was built from, and when that was last compared."""

    runtime: Runtime
    version: datetime
    checked: float


@dataclass
class _Retired:
    """A runtime no longer served, waiting for its work in flight before its clients are closed (monotonic times)."""

    runtime: Runtime
    since: float
    until: float


class Tenants:
    """The runtimes of the connected workspaces, built lazily and cached by workspace id (safe across threads).

    `get` gives a workspace's runtime (it satisfies bot.slack.listeners.Running, so the listeners serve every
    workspace unchanged), `forget` drops it after its configuration changed or it was uninstalled, `poll` runs one
    poll cycle for a workspace, `keep` renews and resumes every workspace's decisions. For the HTTP front
    (bot.service.Service) it also reports the process's health.
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
        tokens: TokenSource | None = None,
        recheck: float = RECHECK,
    ) -> None:
        """Serve from `store` (unscoped) and `registry`, with bot tokens from `installations`, on shared parts.

        `tokens` refreshes an expiring bot token before a poll (without it, only requests refresh them);
        `recheck`: seconds between two comparisons of a cached runtime with the registry.
        """
        self.settings = settings
        self.store = store
        self.registry = registry
        self.installations = installations
        self.workers = workers
        self.metrics = metrics
        self.timing = timing or Timing()
        #: One HTTP client per thread and host for every workspace's LeadLex and Slack calls.
        self.connections = SharedConnections()
        #: Kept-alive Slack connections for every workspace's Slack client (each call with its own token).
        self.slack_connections = Connections(SLACK_TIMEOUT)
        self.lexi_options = {**(lexi_options or {}), "connections": self.connections}
        #: Set once the process stops: parts that end then are not dead.
        self.stopping = threading.Event()
        self.tokens = tokens
        self.recheck = recheck
        #: The name on every decision lease this process takes, whichever workspace it is in.
        self.owner = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._cached: dict[str, _Cached] = {}
        self._retired: list[_Retired] = []
        self._lock = threading.RLock()
        self._watched: dict[str, Any] = {}
        self._next_prune = 0.0

    # --- the runtimes -------------------------------------------------------------------------------

    def get(self, team_id: str) -> Runtime | None:
        """The runtime of a connected workspace (built on first use, rebuilt once changed), or None when not connected.

        The registry is read when nothing is cached, and then at most once per `recheck` seconds.
        """
        with self._lock:
            found = self._cached.get(team_id)
            now = time.monotonic()
            if found is not None and now - found.checked < self.recheck:
                return found.runtime
            return self._refresh(team_id, self.registry.get(team_id) if team_id else None, now)

    def forget(self, team_id: str) -> None:
        """Drop a workspace's runtime (the next request builds it again from the registry); it retires."""
        with self._lock:
            self._retire(team_id)

    def changed(self, team_id: str) -> None:
        """A workspace's settings changed or it was uninstalled (bot.slack.setup's `on_change`).

        Its runtime is rebuilt from the registry, and its LeadLex webhook registered in the background when it is
        connected without one (`ensure_webhook`).
        """
        self.forget(team_id)
        if self.settings.public_url:  # on the general queue: a view submission is answered within Slack's 3 s
            self.workers.submit(self.ensure_webhook, team_id)

    def ensure_webhook(self, team_id: str) -> bool:
        """Register a connected workspace's LeadLex webhook when it has none; whether one is registered now.

        The delivery URL is LEXI_PUBLIC_URL + /lexi/webhooks/ + the workspace's unguessable path; its signing secret
        is stored encrypted (Workspaces.set_webhook). Without LEXI_PUBLIC_URL, or when LeadLex refuses, the
        workspace is polled as before (logged, never the key or the secret).
        """
        public = self.settings.public_url
        workspace = self.registry.get(team_id)
        if not public or workspace is None or workspace.state != "connected" or workspace.has_webhook_secret:
            return False
        key = self.registry.lexi_key(team_id)
        if not key:
            return False
        url = f"{public}/lexi/webhooks/{workspace.webhook_path}"
        lexi = make_lexi_client(workspace.lexi_api_url or DEFAULT_LEXI_API_URL, key, self.metrics, self.lexi_options)
        try:
            hook = _register(lexi, url, team_id)
        except LexiError as exc:
            log.warning("workspace %s: LeadLex did not register its webhook (%r); polled", team_id, str(exc)[:300])
            return False
        finally:
            lexi.close()
        hook_id, secret = hook.get("id"), hook.get("secret")
        if not hook_id or not isinstance(secret, str) or not secret:
            log.warning("workspace %s: LeadLex registered a webhook without its secret; it is polled", team_id)
            return False
        self.registry.set_webhook(team_id, str(hook_id), secret)
        log.info("workspace %s: LeadLex webhook %s registered; tasks are announced as they arrive", team_id, hook_id)
        self.forget(team_id)  # rebuilt with the webhook's receiver (and the poller's webhook pace)
        return True

    def poll(self, workspace: Workspace) -> Polled:
        """Run one poll cycle of a workspace now: the seconds until its next poll is due, its budget and problem.

        `workspace` is its registry row as the claim read it: when its version is not the cached runtime's, the
        registry is read again and the runtime rebuilt if it changed (the claim may also have read the row just
        before a change this replica already saw). A workspace no longer connected is not polled: its next poll is
        a poll interval away. A bot token about to expire is refreshed first (`tokens`), so a workspace nobody uses
        is still announced in. (The Scheduler calls this for each workspace it claims: bot.core.schedule.)
        """
        with self._lock:
            found = self._cached.get(workspace.id)
            current: Workspace | None = workspace
            if found is not None and found.version != workspace.updated_at:
                current = self.registry.get(workspace.id)
            runtime = self._refresh(workspace.id, current, time.monotonic())
        if runtime is None:
            return Polled(self.settings.poll_interval)
        token = self._token(workspace)  # refreshed here, or rotated by a request (here or elsewhere) since
        if token and runtime.slack.token != token:
            runtime.slack.token = token
        delay = runtime.poller.cycle()
        return Polled(delay, runtime.lexi.budget.remaining, runtime.poller.problem)

    def keep(self, stop: threading.Event) -> None:
        """Until `stop`: a round of `keep_once` every second (a database outage is logged and retried)."""
        while not stop.is_set():
            try:
                self.keep_once()
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the keeper; it retries
                log.warning("could not renew or resume decisions: %s", type(exc).__name__)
            stop.wait(INTERVAL)

    def keep_once(self) -> int:
        """Renew every lease held here, resume decisions whose process died, close retired runtimes; how many resumed.

        One UPDATE and one SELECT whatever the number of workspaces cached, plus one take-over per workspace that
        has a decision to resume (bot.core.keeper's tick, across workspaces).
        """
        with self._lock:
            serving = [cached.runtime for cached in self._cached.values()]
            retired = list(self._retired)
        held = [i for runtime in serving + [r.runtime for r in retired] for i in runtime.decider.leases.held()]
        self.store.renew_leases_everywhere(self.owner, held, LEASE)
        resumed = 0
        orphans = self.settings.database_kind == "sqlite"  # one process per file: other owners are dead (guard)
        for team_id in self.store.workspaces_to_resume(self.owner, orphans=orphans):
            runtime = self.get(team_id)
            if runtime is None:
                continue  # not served (any more): its decisions wait until it is connected again
            for decision in runtime.decider.leases.take_over():
                runtime.submit_decision(decision)
                resumed += 1
        if time.monotonic() >= self._next_prune:
            self.store.prune_decisions_everywhere(KEEP_DONE)
            self._next_prune = time.monotonic() + PRUNE_EVERY
        self._close_retired()
        return resumed

    def retiring(self) -> int:
        """How many dropped runtimes wait for their decisions in flight before their clients are closed."""
        with self._lock:
            return len(self._retired)

    def budget_left(self, team_id: str) -> int | None:
        """The LeadLex calls a workspace has left today, as its last answer said (None: not known)."""
        with self._lock:
            found = self._cached.get(team_id)
        return found.runtime.lexi.budget.remaining if found is not None else None

    def problem(self, team_id: str) -> str | None:
        """What stops a workspace's polling now (a refused key, a Slack setup problem), or None."""
        with self._lock:
            found = self._cached.get(team_id)
        return found.runtime.poller.problem if found is not None else None

    def webhook_for(self, path: str) -> WebhookReceiver | None:
        """The webhook receiver of the workspace whose delivery URL ends in `path` (None: no such workspace)."""
        workspace = self.registry.by_webhook_path(path)
        if workspace is None:
            return None
        runtime = self.get(workspace.id)
        return runtime.webhooks if runtime is not None else None

    def _refresh(self, team_id: str, workspace: Workspace | None, now: float) -> Runtime | None:
        """The runtime for this registry row (held under the lock): kept when still current, else rebuilt or dropped."""
        found = self._cached.get(team_id)
        served = workspace is not None and workspace.state == CONNECTED
        if found is not None and served and workspace is not None and workspace.updated_at == found.version:
            found.checked = now
            return found.runtime
        if found is not None:
            log.info(
                "workspace %s changed (or was disconnected): its runtime is %s",
                team_id,
                "rebuilt" if served else "dropped",
            )
            self._retire(team_id)
        if workspace is None or not served:
            return None
        runtime = self._build(workspace)
        if runtime is not None:
            self._cached[team_id] = _Cached(runtime, workspace.updated_at, now)
        return runtime

    def _retire(self, team_id: str) -> None:
        """Stop serving a workspace's runtime (held under the lock): no new announcements; closed by the keeper."""
        found = self._cached.pop(team_id, None)
        if found is None:
            return
        backlog = found.runtime.announcer.backlog
        if backlog is not None:
            backlog.close(time.monotonic())  # takes nothing more; a post in flight is recorded by its worker
        now = time.monotonic()
        self._retired.append(_Retired(found.runtime, now, now + RETIRE_WAIT))

    def _close_retired(self) -> None:
        """Close the clients of retired runtimes whose work is done: after RETIRE_GRACE, once no decision is held."""
        now = time.monotonic()
        with self._lock:
            done = [
                r
                for r in self._retired
                if now >= r.until or (now >= r.since + RETIRE_GRACE and not r.runtime.decider.leases.held())
            ]
            self._retired = [r for r in self._retired if r not in done]
        for retired in done:
            _close(retired.runtime, deadline=now + 5.0)

    def _token(self, workspace: Workspace) -> str | None:
        """The workspace's bot token for a poll: refreshed first when expiring (`tokens`), else as last saved."""
        org = workspace.is_enterprise_install
        if self.tokens is not None:
            return self.tokens.bot_token(
                enterprise_id=workspace.enterprise_id, team_id=None if org else workspace.id, is_enterprise_install=org
            )
        bot = self._bot(workspace)
        return bot.bot_token if bot is not None else None

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
            owner=self.owner,
            connections=self.connections,
            slack_connections=self.slack_connections,
        )
        secret = self.registry.webhook_secret(workspace.id)
        return build_parts(settings, shared, lexi, policy=policy, webhook_secret=secret, timing=self.timing)

    # --- the process's health (bot.service.Service) ----------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What GET /healthz reports: whether every part the process needs still runs, and which died."""
        dead = self.dead()
        report: dict[str, Any] = {"ok": not dead, "mode": "http", "workspaces": len(self._cached)}
        if dead:
            report["dead"] = dead
        return report

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the process can serve now: the database answers and no part it needs has died."""
        checks: dict[str, Any] = {"database": database_check(self.store)}
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
            runtimes = [c.runtime for c in self._cached.values()] + [r.runtime for r in self._retired]
            self._cached.clear()
            self._retired.clear()
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
        self.slack_connections.close()
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


def _register(lexi: LexiClient, url: str, team_id: str) -> dict[str, Any]:
    """Register the workspace's webhook at `url`, replacing one LeadLex already has there.

    LeadLex refuses a second webhook with one URL (409 duplicate_webhook): that is the registration made with the
    workspace's previous key of the same LeadLex workspace, whose secret is no longer kept. It is deleted and the
    webhook registered again, once.
    """
    description = f"lexi-bot for Slack workspace {team_id}"
    try:
        return lexi.create_webhook(url, list(TASK_EVENTS), description)
    except InvalidRequest as exc:
        if exc.code != "duplicate_webhook":
            raise
    for old in lexi.list_webhooks():
        if old.get("url") == url and old.get("id"):
            lexi.delete_webhook(str(old["id"]))
            log.info("workspace %s: replaced the LeadLex webhook %s registered earlier at its URL", team_id, old["id"])
    return lexi.create_webhook(url, list(TASK_EVENTS), description)
