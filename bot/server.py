"""The HTTP front: Slack's requests on /slack/events and a liveness probe, served by waitress."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress.server import create_server

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_wsgi(app: App, health: Callable[[], dict[str, Any]]) -> WsgiApp:
    """Route /slack/events to Bolt and /healthz to a JSON liveness answer; everything else is 404."""
    slack = SlackRequestHandler(app, path="/slack/events")

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = json.dumps({"ok": True, **health()}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/slack/events":
            return slack(environ, start_response)
        body = b"Not Found"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


class HttpFront:
    """A waitress server on its own thread, stopped cleanly from any thread."""

    def __init__(self, wsgi: WsgiApp, host: str, port: int, *, threads: int = 16) -> None:
        self._server = create_server(
            wsgi, host=host, port=port, threads=threads, ident="lexi-bot", clear_untrusted_proxy_headers=True
        )
        self._thread = threading.Thread(target=self._server.run, name="lexi-http", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.effective_port)

    def start(self) -> HttpFront:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close connections inside the server's own loop, and let requests in flight finish."""

        def close_everything() -> None:
            for channel in list(self._server._map.values()):  # noqa: SLF001 - waitress has no public close-all
                channel.close()

        if self._thread.is_alive():
            self._server.trigger.pull_trigger(close_everything)
            self._thread.join(timeout)
        self._server.task_dispatcher.shutdown(timeout=timeout)
