"""Build the Bolt app: listeners by Slack feature, one error handler, signatures checked, replays dropped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.response import BoltResponse

from bot.slack import replay
from bot.slack.listeners import RUNTIME, Running, actions, events, views
from bot.slack.listeners import slash_command as commands

log = logging.getLogger(__name__)

#: Bolt's listener threads: as many as the HTTP front's (bot.ops.server.HttpFront), since each request waits on one
#: for its ack. Listeners only journal and queue before the ack, so a click never waits behind slow work here.
LISTENER_THREADS = 16


def create_app(runtime: Running) -> App:
    """The Bolt app for a runtime; in HTTP mode every request's Slack signature and timestamp are checked."""
    settings = runtime.settings
    http_mode = settings.mode == "http"
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    bolt_log = logging.getLogger("bot.bolt")
    # Bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns that the token it
    # found will be unused: on a correct configuration that is noise, so exactly that notice is dropped here.
    quiet = _DropNotice(warning_client_prioritized_and_token_skipped())
    bolt_log.addFilter(quiet)
    try:
        app = App(
            client=runtime.slack,
            signing_secret=secret if http_mode else None,
            request_verification_enabled=http_mode,
            token_verification_enabled=False,
            logger=bolt_log,
            listener_executor=ListenerPool(max_workers=LISTENER_THREADS, thread_name_prefix="lexi-listener"),
        )
    finally:
        bolt_log.removeFilter(quiet)
    replay.register(app, runtime.store)  # before any listener: a replay or a retried event does nothing

    @app.middleware
    def give_runtime(context: BoltContext, next: Callable[[], None]) -> None:  # noqa: A002
        """Put the runtime in every request's context, where the listeners find it (bot.slack.listeners)."""
        context[RUNTIME] = runtime
        next()

    actions.register(app)
    views.register(app)
    commands.register(app)
    events.register(app)

    @app.error
    def handle_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        """Log a listener failure; Slack gets an empty answer, never a traceback."""
        log.error("listener failed for %s: %s", body.get("type", "request"), error, exc_info=error)
        return BoltResponse(status=200, body="")

    return app


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
