"""The one way to start and stop the bot: a `Service` owns a runtime and what runs beside it, like an ExitStack.

`lexi-bot run` (HTTP and Socket Mode), the demo, the test harness and the benchmarks all start the bot through it:
it starts the poller (with the decision keeper beside it) and a front (waitress, or Socket Mode), watches them for
/healthz, and on exit stops everything in the reverse order it was started, draining the work queues (bounded).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from bot.ops.server import HttpFront, make_wsgi
from bot.runtime import Runtime

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.tenants import Tenants

#: How long the poller thread may take to finish its cycle when the bot stops.
POLLER_JOIN_TIMEOUT = 10.0


class Service:
    """A runtime and the threads and servers started for it; closing it stops them all, newest first."""

    def __init__(self, runtime: Runtime | Tenants, *, drain_timeout: float = 20.0) -> None:
        """Own `runtime` (closed last, after draining its queues for at most `drain_timeout` seconds).

        In multi-workspace mode it is the workspaces' runtimes (bot.tenants.Tenants): only `serve_http` and
        `start_thread` apply then.
        """
        self.runtime = runtime
        #: Set when the bot is to stop (a signal, or `close`); the poller and the keeper watch it.
        self.stop = threading.Event()
        self._stack = ExitStack()
        self._stack.callback(runtime.close, drain_timeout)

    def __enter__(self) -> Self:
        """The service itself; it is closed on leaving the block."""
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Close the service."""
        self.close()

    def own(self, stop: Callable[..., object], *args: Any) -> None:
        """Have `stop(*args)` run on close, before what was owned earlier (e.g. a sandbox the bot talks to)."""
        self._stack.callback(stop, *args)

    def start_poller(self) -> threading.Thread:
        """Start the poller (and the decision keeper beside it) on threads of their own, watched by /healthz."""
        if not isinstance(self.runtime, Runtime):
            raise TypeError("multi-workspace mode polls through start_thread (a scheduler), not one poller")
        thread = self.runtime.start_poller(self.stop)
        self._stack.callback(thread.join, POLLER_JOIN_TIMEOUT)
        self._stack.callback(self.stop.set)
        return thread

    def start_thread(self, name: str, target: Callable[[threading.Event], object]) -> threading.Thread:
        """Run `target(stop)` on a thread of its own, watched by /healthz and joined (bounded) on close."""
        thread = threading.Thread(target=target, args=(self.stop,), name=name, daemon=True)
        self._stack.callback(thread.join, POLLER_JOIN_TIMEOUT)
        self._stack.callback(self.stop.set)
        self.runtime.watch(name, thread)
        thread.start()
        return thread

    def serve_http(self, app: App, host: str, port: int, *, threads: int = 16, stop_timeout: float = 10.0) -> HttpFront:
        """Serve the Bolt app, /healthz, /readyz, /metrics and the webhooks on `host:port` (0: any free port)."""
        runtime = self.runtime
        wsgi = make_wsgi(
            app,
            health=runtime.health,
            ready=runtime.readiness,
            metrics=runtime.metrics,
            webhooks=runtime.webhooks,
            webhook_for=None if isinstance(runtime, Runtime) else runtime.webhook_for,
        )
        front = HttpFront(wsgi, host, port, threads=threads)
        self._stack.callback(front.stop, stop_timeout)
        front.start()
        runtime.watch("http front", front._thread)  # noqa: SLF001 - its serving thread, to notice it ending
        return front

    def connect_socket(self, app: App, app_token: str) -> SocketModeHandler:
        """Connect to Slack in Socket Mode (errors from `connect` are the caller's to explain) and watch the client."""
        from slack_bolt.adapter.socket_mode import SocketModeHandler  # noqa: PLC0415 - loaded only in Socket Mode

        if not isinstance(self.runtime, Runtime):
            raise TypeError("multi-workspace mode runs in HTTP mode only")
        handler = SocketModeHandler(app, app_token)
        handler.connect()
        self._stack.callback(handler.close)
        client = handler.client
        self.runtime.watch("socket mode client", lambda: not client.closed and client.message_processor.is_alive())
        return handler

    def wait(self) -> list[str]:
        """Block until `stop` is set ([]), or until parts the bot needs have stopped (their names)."""
        while not self.stop.wait(0.5):
            dead = self.runtime.dead()
            if dead:
                return dead
        return []

    def close(self) -> None:
        """Stop everything, newest first: the fronts, the poller, then the runtime (its queues drained, bounded)."""
        self.stop.set()
        self._stack.close()
