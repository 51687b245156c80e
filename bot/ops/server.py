"""The HTTP front: Slack's requests on /slack/events, LeadLex webhooks and probes, served by waitress.

Every body is bounded before it is read, and waitress is tuned so idle or slow connections cannot starve it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from slack_bolt import App
from waitress.server import create_server

from bot.core.webhooks import WebhookReceiver
from bot.ops.metrics import CONTENT_TYPE, Metrics
from bot.slack.gate import Answer, SlackGate

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


#: The largest request body read on any endpoint (Slack and LeadLex send far less); larger ones answer 413.
MAX_BODY = 1_000_000
#: How much of the body is read at a time, so a body without (or lying about) its length stops at the limit.
CHUNK = 64 * 1024
#: Where multi-workspace mode's webhook deliveries arrive: this, then the workspace's delivery path.
WEBHOOK_PREFIX = "/lexi/webhooks/"
#: The reason phrase of every status the front answers.
REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


class TooLarge(Exception):
    """The body is larger than MAX_BODY."""


def header_map(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI environ, with lower-case dashed names (Content-Type and -Length included)."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def read_body(environ: dict[str, Any], limit: int = MAX_BODY) -> bytes:
    """The request body, read in chunks; TooLarge as soon as it passes `limit` (declared or actual), before reading.

    A missing Content-Length (chunked transfer) reads to the end of the input, still in chunks and bounded;
    a malformed one is ValueError.
    """
    declared = environ.get("CONTENT_LENGTH") or ""
    length = int(declared) if declared.strip() else None
    if length is not None and length < 0:
        raise ValueError("negative Content-Length")
    if length is not None and length > limit:
        raise TooLarge
    stream = environ.get("wsgi.input")
    if stream is None or length == 0:
        return b""
    parts: list[bytes] = []
    received = 0
    while length is None or received < length:
        want = CHUNK if length is None else min(CHUNK, length - received)
        part = stream.read(min(want, limit + 1 - received))
        if not part:
            break
        parts.append(part)
        received += len(part)
        if received > limit:
            raise TooLarge
    return b"".join(parts)


def _answer(
    start_response: Callable[..., Any], status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    """Start the response with a Content-Length and return its body."""
    headers = [(k, v) for k, v in (headers or [("Content-Type", "application/json")]) if k.lower() != "content-length"]
    start_response(f"{status} {REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _json(
    start_response: Callable[..., Any],
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """Answer with a JSON body."""
    return _answer(
        start_response, status, json.dumps(payload).encode(), [("Content-Type", "application/json"), *(headers or [])]
    )


def make_wsgi(
    app: App,
    *,
    health: Callable[[], dict[str, Any]],
    ready: Callable[[], tuple[bool, dict[str, Any]]] | None = None,
    metrics: Metrics | None = None,
    webhooks: WebhookReceiver | None = None,
    signing_secret: str | None = None,
    webhook_for: Callable[[str], WebhookReceiver | None] | None = None,
) -> WsgiApp:
    """Route /slack/events through the gate to Bolt, /lexi/webhooks to LeadLex deliveries (when enabled), and probes.

    With `webhook_for` (multi-workspace mode), a POST to /lexi/webhooks/<path> goes to the receiver of the workspace
    whose delivery path it is; a path no workspace has is answered as any unknown path is (404), and so is any
    other method there, so that nothing tells a prober which paths exist.

    With Bolt's OAuth flow (multi-workspace mode), its install page and redirect (GET /slack/install and
    /slack/oauth_redirect) go to the flow too, unsigned: they come from the installer's browser, not from Slack.
    The signing secret defaults to the one the Bolt app was built with (bot.slack.app.create_app).
    """
    gate = SlackGate(app, signing_secret or getattr(app, "_signing_secret", None))
    posts: dict[str, Callable[[bytes, dict[str, str], str], Answer]] = {"/slack/events": gate.handle}
    if webhooks is not None:
        posts["/lexi/webhooks"] = _webhook_handler(webhooks)
    gets: dict[str, Callable[[dict[str, str], str], Answer]] = {}
    if app.oauth_flow is not None:
        gets = {app.oauth_flow.install_path: gate.install, app.oauth_flow.redirect_uri_path: gate.oauth_redirect}
    probes = (
        {"/healthz"} | ({"/readyz"} if ready is not None else set()) | ({"/metrics"} if metrics is not None else set())
    )

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in posts:
            return _serve_post(posts[path], environ, start_response)
        if path in gets:
            return _serve_get(gets[path], environ, start_response)
        if path in probes:
            return _serve_probe(path, environ, start_response, health=health, ready=ready, metrics=metrics)
        if webhook_for is not None and path.startswith(WEBHOOK_PREFIX) and environ.get("REQUEST_METHOD") == "POST":
            receiver = webhook_for(path.removeprefix(WEBHOOK_PREFIX))
            if receiver is not None:
                return _serve_post(_webhook_handler(receiver), environ, start_response)
        return _answer(start_response, 404, b"Not Found", [("Content-Type", "text/plain")])

    return wsgi


def _serve_post(
    handler: Callable[[bytes, dict[str, str], str], Answer],
    environ: dict[str, Any],
    start_response: Callable[..., Any],
) -> Iterable[bytes]:
    """Hand a POST's bounded body to the handler of its path; refuse other methods and unreadable bodies."""
    if environ.get("REQUEST_METHOD") != "POST":
        return _json(start_response, 405, {"ok": False, "error": "method not allowed"}, [("Allow", "POST")])
    try:
        body = read_body(environ)
    except TooLarge:
        return _json(start_response, 413, {"ok": False, "error": "body too large"})
    except ValueError:
        return _json(start_response, 400, {"ok": False, "error": "malformed Content-Length"})
    answer = handler(body, header_map(environ), environ.get("QUERY_STRING", ""))
    return _answer(start_response, answer.status, answer.body, answer.headers)


def _serve_get(
    handler: Callable[[dict[str, str], str], Answer],
    environ: dict[str, Any],
    start_response: Callable[..., Any],
) -> Iterable[bytes]:
    """Hand a browser's GET (headers and query string; any body is not read) to the handler of its path."""
    if environ.get("REQUEST_METHOD") != "GET":
        return _json(start_response, 405, {"ok": False, "error": "method not allowed"}, [("Allow", "GET")])
    answer = handler(header_map(environ), environ.get("QUERY_STRING", ""))
    return _answer(start_response, answer.status, answer.body, answer.headers)


def _serve_probe(
    path: str,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    *,
    health: Callable[[], dict[str, Any]],
    ready: Callable[[], tuple[bool, dict[str, Any]]] | None,
    metrics: Metrics | None,
) -> Iterable[bytes]:
    """Answer GET or HEAD on /healthz, /readyz or /metrics (each served only when configured)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return _json(start_response, 405, {"ok": False, "error": "method not allowed"}, [("Allow", "GET, HEAD")])
    if path == "/readyz" and ready is not None:
        is_ready, report = ready()
        return _json(start_response, 200 if is_ready else 503, report)
    if path == "/metrics" and metrics is not None:
        return _answer(start_response, 200, metrics.render(), [("Content-Type", CONTENT_TYPE)])
    report = {"ok": True, **health()}  # `ok` is False, with the parts named, when one the bot needs died
    return _json(start_response, 200 if report["ok"] else 503, report)


def _webhook_handler(webhooks: WebhookReceiver) -> Callable[[bytes, dict[str, str], str], Answer]:
    """Hand a bounded delivery body to the webhook receiver; a delivery it cannot read is a 400, not a 500."""

    def handle(body: bytes, headers: dict[str, str], _query: str) -> Answer:
        """Answer one POST to /lexi/webhooks."""
        try:
            receipt = webhooks.receive(body, headers)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, OverflowError) as exc:
            log.warning("refused a webhook delivery that could not be read (%s)", type(exc).__name__)
            return Answer(
                400,
                [("Content-Type", "application/json")],
                json.dumps({"ok": False, "error": "the body is not a delivery"}).encode(),
            )
        return Answer(receipt.status, [("Content-Type", "application/json")], json.dumps(receipt.body).encode())

    return handle


#: Waitress, tuned for hostile clients. Only complete requests reach the worker threads, so slow senders cost a
#: connection slot, never a thread; there are enough slots for hundreds of idle connections, idle ones are
#: dropped after 30 s, and bodies and headers are bounded before waitress buffers them.
WAITRESS_OPTIONS: dict[str, Any] = {
    "ident": "lexi-bot",
    "clear_untrusted_proxy_headers": True,
    "connection_limit": 1000,  # default 100: 100 idle sockets stopped it accepting
    "channel_timeout": 30,  # seconds a connection may stay idle or half-sent (Slack sends at once)
    "cleanup_interval": 10,  # how often idle connections are looked for
    "backlog": 1024,  # connections waiting to be accepted
    "asyncore_use_poll": True,  # select() fails past 1024 file descriptors
    "max_request_body_size": MAX_BODY + 1,  # waitress refuses bodies >= this with 413 before buffering them
    "max_request_header_size": 64 * 1024,  # default 256 KiB; Slack's headers are well under 4 KiB
}


class _Waitress(Protocol):
    """What HttpFront uses of waitress's one-socket server, which types-waitress leaves out or mistypes.

    (No effective_port or _map; `trigger` typed as an int; `shutdown` taking an int timeout, where it takes seconds.)
    """

    effective_port: int
    _map: dict[int, Any]
    trigger: Any
    task_dispatcher: Any

    def run(self) -> None:
        """Serve until closed."""


class HttpFront:
    """A waitress server on its own thread, stopped cleanly from any thread."""

    def __init__(self, wsgi: WsgiApp, host: str, port: int, *, threads: int = 16) -> None:
        # One host and port: waitress makes a TcpWSGIServer, not a MultiSocketServer.
        self._server = cast("_Waitress", create_server(wsgi, host=host, port=port, threads=threads, **WAITRESS_OPTIONS))
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
            try:
                self._server.trigger.pull_trigger(close_everything)
            except OSError:
                # The loop, woken meanwhile by a finished response, ran the thunk as soon as it was queued and
                # closed the trigger before this write: the closing is already done.
                log.debug("the HTTP front's loop closed everything before its wake-up was written")
            self._thread.join(timeout)
        self._server.task_dispatcher.shutdown(timeout=timeout)
