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

from bot.metrics import CONTENT_TYPE, Metrics
from bot.webhooks import WebhookReceiver, header_map, read_body

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json(start_response: Callable[..., Any], status: int, payload: dict[str, Any]) -> list[bytes]:
    """Answer with a JSON body."""
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 413: "Payload Too Large",
              503: "Service Unavailable"}
    start_response(
        f"{status} {reason.get(status, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def make_wsgi(
    app: App,
    *,
    health: Callable[[], dict[str, Any]],
    ready: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    metrics: Metrics | None = None,
    webhooks: WebhookReceiver | None = None,
) -> WsgiApp:
    """Route /slack/events to Bolt, /lexi/webhooks to LeadLex deliveries (when enabled), and the probes."""
    slack = SlackRequestHandler(app, path="/slack/events")

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if path == "/slack/events":
            return slack(environ, start_response)
        if path == "/lexi/webhooks" and method == "POST" and webhooks is not None:
            body = read_body(environ)
            if body is None:
                return _json(start_response, 413, {"ok": False, "error": "body too large"})
            receipt = webhooks.receive(body, header_map(environ))
            return _json(start_response, receipt.status, receipt.body)
        if method in ("GET", "HEAD"):
            if path == "/healthz":
                return _json(start_response, 200, {"ok": True, **health()})
            if path == "/readyz" and ready is not None:
                is_ready, report = ready()
                return _json(start_response, 200 if is_ready else 503, report)
            if path == "/metrics" and metrics is not None:
                body = metrics.render()
                start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
                return [body]
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
