"""Build the Bolt app: listeners by Slack feature, one error handler, signatures checked, replays dropped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from slack_bolt import App, BoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient

from bot.config import DEFAULT_LEXI_API_URL
from bot.core.workqueue import INLINE_DECISIONS
from bot.db.store import Store
from bot.db.workspaces import Workspaces
from bot.errors import ConfigError
from bot.slack import assistant, blocks, install, mentions, replay, setup, unconnected
from bot.slack.listeners import RUNTIME, Running, actions, events, views
from bot.slack.listeners import slash_command as commands

log = logging.getLogger(__name__)

#: Bolt's listener threads: as many as the HTTP front's (bot.ops.server.HttpFront), since each request waits on one
#: for its ack, and one more for each decision carried out in its listener's thread after the ack (INLINE_DECISIONS,
#: bounded there), so a click's ack never waits behind decisions. Threads start only when needed.
ACK_THREADS = 16
LISTENER_THREADS = ACK_THREADS + INLINE_DECISIONS


class TenantLookup(Protocol):
    """What the multi-workspace app uses of the workspaces' runtimes (bot.tenants.Tenants)."""

    def get(self, team_id: str) -> Running | None:
        """The runtime of a connected workspace, or None when it is not connected."""


def create_app(runtime: Running) -> App:
    """The Bolt app for a runtime; in HTTP mode every request's Slack signature and timestamp are checked."""
    settings = runtime.settings
    http_mode = settings.mode == "http"
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = _bolt_app(
        client=runtime.slack,
        signing_secret=secret if http_mode else None,
        request_verification_enabled=http_mode,
    )
    if app.oauth_flow is not None:
        # Bolt turns on an OAuth flow of its own (a file installation store; the bot token ignored) whenever
        # SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are in the environment: every request would be refused as coming
        # from a workspace that did not install the app. Said at start rather than discovered at the first click.
        raise ConfigError(
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set, but the bot runs for one workspace with "
            "SLACK_BOT_TOKEN: unset them, or set everything multi-workspace mode needs"
        )
    # Before any listener: a replay or a retried event does nothing. An Approve click is remembered with its decision.
    replay.register(app, runtime.store, defer={blocks.APPROVE_ACTION})

    @app.middleware
    def give_runtime(context: BoltContext, next: Callable[[], None]) -> None:  # noqa: A002
        """Put the runtime in every request's context, where the listeners find it (bot.slack.listeners)."""
        context[RUNTIME] = runtime
        next()

    assistant.register(app)  # a middleware: after the runtime is in the context, before the other listeners
    actions.register(app)
    views.register(app)
    commands.register(app)
    events.register(app)
    mentions.register(app)  # DMs outside the pane and @mentions
    app.error(handle_error)
    return app


def create_multi_workspace_app(
    settings: install.InstallSettings,
    store: Store,
    *,
    signing_secret: str,
    client: WebClient,
    workspaces: Workspaces | None = None,
    lexi_url: str = DEFAULT_LEXI_API_URL,
    on_change: Callable[[str], None] = setup.nothing_changed,
    tenants: TenantLookup | None = None,
) -> App:
    """The Bolt app of multi-workspace mode (HTTP only): no token of its own, installs through Bolt's OAuth flow.

    Bolt authorizes each request from the installations on the store's database and hands listeners a client with
    that workspace's bot token; `client` (no token) gives those clients, installs and token refreshes their API
    base. Requests are signature-checked and replays dropped as in single-workspace mode. Installs are recorded in
    the registry `workspaces` (by default one without a vault, which cannot store keys), and each workspace is set
    up from its Home tab (bot.slack.setup); `on_change(workspace id)` is called after a workspace's settings changed
    or it was uninstalled. With `tenants`, a connected workspace's requests reach the same listeners as
    single-workspace mode's, on its own runtime, and an installed but unconnected workspace is told an admin
    connects it first.
    """
    app = _bolt_app(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=True,
        oauth_settings=install.oauth_settings(settings, store.engine, client, registry=workspaces),
    )
    replay.register(app, store, defer={blocks.APPROVE_ACTION})
    if tenants is not None:
        app.middleware(tenant_middleware(tenants))
        assistant.register(app)  # after the workspace's runtime is in the context, as in single-workspace mode
    # Before any other listener: Bolt runs the first that matches (the Home tab, the setup forms, the uninstall
    # events), then the "not connected" answers, then the listeners of a connected workspace.
    setup.register(app, workspaces or Workspaces(store.engine, None), lexi_url=lexi_url, on_change=on_change)
    if tenants is not None:
        unconnected.register(app)
        actions.register(app)
        views.register(app)
        commands.register(app)
        events.register(app)
        mentions.register(app)
    app.error(handle_error)
    return app


def workspace_of(context: BoltContext) -> str | None:
    """The registry id of the workspace a request comes from: its team, or for an org-wide install its org."""
    if context.is_enterprise_install:
        return context.enterprise_id
    return context.team_id


def tenant_middleware(tenants: TenantLookup) -> Callable[[BoltContext, Callable[[], None]], None]:
    """A middleware putting the runtime of the request's workspace in its context, when that workspace is connected.

    The runtime's client follows the bot token Bolt authorized the request with (token rotation replaces it).
    """

    def give_tenant(context: BoltContext, next: Callable[[], None]) -> None:  # noqa: A002 - Bolt's name
        """Find the workspace's runtime (none for an unconnected workspace: bot.slack.unconnected answers)."""
        workspace = workspace_of(context)
        runtime = tenants.get(workspace) if workspace else None
        if runtime is not None:
            if context.bot_token and runtime.slack.token != context.bot_token:
                runtime.slack.token = context.bot_token  # rotated since the runtime was built
            context[RUNTIME] = runtime
        next()

    return give_tenant


def _bolt_app(**options: Any) -> App:
    """A Bolt app with our logger and listener threads, no token check at start, built without a false warning."""
    bolt_log = logging.getLogger("bot.bolt")
    # Bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns that the token it
    # found will be unused: on a correct configuration that is noise, so exactly that notice is dropped here.
    quiet = _DropNotice(warning_client_prioritized_and_token_skipped())
    bolt_log.addFilter(quiet)
    try:
        return App(
            token_verification_enabled=False,
            logger=bolt_log,
            listener_executor=ListenerPool(max_workers=LISTENER_THREADS, thread_name_prefix="lexi-listener"),
            **options,
        )
    finally:
        bolt_log.removeFilter(quiet)


def handle_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
    """Log a listener failure; Slack gets an empty answer, never a traceback."""
    log.error("listener failed for %s: %s", body.get("type", "request"), error, exc_info=error)
    return BoltResponse(status=200, body="")


class _DropNotice(logging.Filter):
    """Drops one exact log message (and nothing else) while Bolt builds the app."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self._message = message

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the notice."""
        return record.getMessage() != self._message


class ListenerPool(ThreadPoolExecutor):
    """Bolt's listener threads, counting the listeners still running.

    Bolt acknowledges an event before its listener runs, so the HTTP answer can come before the listener has
    queued its work; `wait_idle` lets a caller (a test, a shutdown) wait for those listeners too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle = threading.Condition()
        self._running = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run `fn` on a listener thread, counted until it returns."""
        with self._idle:
            self._running += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until no listener runs or waits; whether none does."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def _finished(self, _future: Future[Any] | None) -> None:
        """One listener returned."""
        with self._idle:
            self._running -= 1
            self._idle.notify_all()
