"""The demo page's own small HTTP server: the static page, a JSON API to act and look, and version counters.

- `GET /` and `GET /static/<file>`: the page (shipped inside the package, no build step, nothing remote).
- `GET /api/state?user=U…`: what that person sees; `GET /api/panel`: what happened underneath.
- `GET /api/versions`: the version counters of what the page shows, answered at once; the page asks about once a
  second after it has loaded (a held-open event stream kept headless browsers from ever finishing the page).
- `POST /api/click|submit|close|type|home` with `{"user": …, …}`: a person's action, sent on to the bot;
  `POST /api/pane` opens Lexi's assistant pane (`{"new": true}`: a new chat), `POST /api/ask` writes in it and
  `POST /api/dm` writes in the person's DM with the app (`{"text": …}`).

Actions are accepted only from the page itself: the `Origin` must be the page's own (browsers send it on every
POST), `Sec-Fetch-Site`, when sent, must say same-origin, and the body must be `application/json` (so a form on
another site, which needs no CORS preflight, cannot post one) of at most 64 kB. Reads stay plain GETs: without
CORS headers another site cannot read their answers.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.dev.demo.elements import ActionError
from bot.dev.demo.session import Answer, Session
from bot.dev.demo.snapshot import Sources, channel_state, panel_state, versions

log = logging.getLogger(__name__)

_STATIC = resources.files("bot.dev.demo") / "static"
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(html|js|css|svg|png)")
_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}
_MAX_BODY = 64 * 1024
#: How much of a refused body is read and thrown away so that the client sees the answer, not a reset.
_DRAIN_MAX = 1024 * 1024
#: What `Sec-Fetch-Site` may say on an action: the page's own fetches, or a person typing (no page involved).
_FETCH_SITES = {"same-origin", "none"}
_HEADERS = {
    # The page builds every node from data with textContent: nothing inline, nothing remote, no frames.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class DemoServer(ThreadingHTTPServer):
    """A threaded HTTP server on its own thread, serving the page and the API over one demo's sources."""

    daemon_threads = True

    sources: Sources

    def __init__(self, host: str, port: int) -> None:
        self.stopping = threading.Event()
        if ":" in host:
            self.address_family = socket.AF_INET6  # ::1 (or :: with --allow-remote)
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="lexi-demo-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.server_address[1])

    def allowed_hosts(self) -> set[str] | None:
        """The Host headers accepted (None: any), so that a web page elsewhere cannot rebind a name to us."""
        host = str(self.server_address[0])
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a comparison, not a binding
            return None
        names = (f"[{host}]" if ":" in host else host, "127.0.0.1", "localhost", "[::1]")
        return {f"{name}:{self.port}" for name in names}

    def start(self, sources: Sources) -> DemoServer:
        """Serve the page over `sources` in the background."""
        self.sources = sources
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.stopping.set()
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 - socketserver's signature
        """Log a connection that failed outside the handlers (a browser that went away) at debug level."""
        log.debug("demo connection from %s failed", client_address, exc_info=True)  # noqa: LOG014 - called in an except block


def _click(session: Session, user: str, body: dict[str, Any]) -> Answer:
    """A click (or choice) on an element somewhere the person sees."""
    return session.click(
        user,
        dict(body.get("where") or {}),
        int(body.get("block", -99)),
        int(body.get("element", -99)),
        body.get("selected"),
    )


#: The actions a person can take, by path: each carries out one with the session for a person and the body.
_ACTIONS: dict[str, Callable[[Session, str, dict[str, Any]], Answer]] = {
    "/api/click": _click,
    "/api/submit": lambda session, user, body: session.submit(user, dict(body.get("values") or {})),
    "/api/close": lambda session, user, _body: session.close(user),
    "/api/type": lambda session, user, body: session.type_line(user, str(body.get("text", ""))[:4000]),
    "/api/home": lambda session, user, _body: session.open_home(user),
    "/api/pane": lambda session, user, body: session.open_pane(user, new=body.get("new") is True),
    "/api/ask": lambda session, user, body: session.ask(user, str(body.get("text", ""))),
    "/api/dm": lambda session, user, body: session.write_dm(user, str(body.get("text", ""))),
}


class _Handler(BaseHTTPRequestHandler):
    """Routes the page's requests."""

    server: DemoServer
    server_version = "LexiBotDemo/1.0"
    timeout = 30  # seconds a socket read or write may stall: an idle or slow client cannot hold a thread forever

    def log_message(self, fmt: str, *args: Any) -> None:
        """Log requests at debug level instead of printing them."""
        log.debug("demo: " + fmt, *args)  # noqa: G003 - http.server's format string, filled in by logging

    def do_GET(self) -> None:
        """Serve the page, its files, snapshots and the version counters."""
        if not self._host_allowed():
            return
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        src = self.server.sources
        if path == "/":
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/") :])
        elif path == "/api/state":
            user = (query.get("user") or [""])[0]
            if self._person(user):
                self._json(200, channel_state(src, user))
        elif path == "/api/panel":
            self._json(200, panel_state(src))
        elif path == "/api/versions":
            self._json(200, versions(src))
        else:
            self._json(404, {"ok": False, "error": "not_found"})

    def do_POST(self) -> None:
        """Carry out one person's action and answer how the bot took it."""
        if not self._host_allowed() or not self._same_origin():
            return
        body = self._read_json()
        if body is None:
            return
        user = str(body.get("user", ""))
        if not self._person(user):
            return
        act = _ACTIONS.get(urlsplit(self.path).path)
        if act is None:
            self._json(404, {"ok": False, "error": "not_found"})
            return
        try:
            answer = act(self.server.sources.session, user, body)
        except (ActionError, ValueError, TypeError) as exc:
            answer = Answer(0, str(exc) or type(exc).__name__)
            self._json(400, answer.to_json())
            return
        self._json(200, answer.to_json())

    def _not_allowed(self) -> None:
        """Answer 405 to a method the demo does not serve (instead of http.server's 501)."""
        self._drain()
        self._send(
            405,
            json.dumps({"ok": False, "error": "method not allowed"}).encode(),
            "application/json",
            {"Allow": "GET, POST"},
        )

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815 - http.server dispatches on these names

    # --- helpers ---

    def _host_allowed(self) -> bool:
        """Refuse requests addressed to another host name (DNS rebinding); answer 403 when refused."""
        allowed = self.server.allowed_hosts()
        if allowed is None or self.headers.get("Host", "") in allowed:
            return True
        self._json(403, {"ok": False, "error": "unexpected Host header"})
        return False

    def _same_origin(self) -> bool:
        """Whether an action comes from the demo's own page; answer 403 when it does not (cross-site requests).

        Browsers send `Origin` on every POST, the page's own included, so a missing one means a client that is
        not the page. The origin must match the very host the request was addressed to (already checked).
        """
        origin = self.headers.get("Origin", "")
        site = self.headers.get("Sec-Fetch-Site")
        if origin == f"http://{self.headers.get('Host', '')}" and (site is None or site in _FETCH_SITES):
            return True
        log.warning("demo: refused an action from another origin (Origin %.100r, Sec-Fetch-Site %.40r)", origin, site)
        self._refuse(403, "actions are accepted only from the demo page itself")
        return False

    def _person(self, user: str) -> bool:
        """Whether `user` is one of the demo's people; answer 400 when not."""
        if any(person.id == user for person in self.server.sources.people):
            return True
        self._json(400, {"ok": False, "error": "unknown person"})
        return False

    def _read_json(self) -> dict[str, Any] | None:
        """The request's JSON object body, bounded; answer 4xx (and return None) when it is not one."""
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            self._refuse(415, "actions are sent as application/json")
            return None
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length") is None:
            self._refuse(411, "a Content-Length is required")
            return None
        length = self._length()
        if length is None or length < 0:
            self._refuse(400, "bad Content-Length")
            return None
        if length > _MAX_BODY:
            self._refuse(413, f"the body is over {_MAX_BODY // 1024} kB")
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            body = None
        if not isinstance(body, dict):
            self._json(400, {"ok": False, "error": "the body must be a JSON object"})
            return None
        return body

    def _length(self) -> int | None:
        """The declared Content-Length, or None when it is not a number."""
        text = self.headers.get("Content-Length", "").strip()
        return int(text) if text.isdigit() else None

    def _drain(self) -> None:
        """Read and drop a refused body (up to 1 MiB, in small pieces) so the client reads the answer, not a reset."""
        length = self._length()
        if length is None or length > _DRAIN_MAX or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        try:
            while length > 0:
                piece = self.rfile.read(min(length, 64 * 1024))
                if not piece:
                    break
                length -= len(piece)
        except OSError:
            self.close_connection = True

    def _refuse(self, status: int, error: str) -> None:
        """Answer a refused action without acting on (or keeping) its body."""
        self._drain()
        self._json(status, {"ok": False, "error": error})

    def _static(self, name: str) -> None:
        """Send one of the page's files."""
        resource = _STATIC / name
        if not _STATIC_NAME.fullmatch(name) or not resource.is_file():
            self._json(404, {"ok": False, "error": "not_found"})
            return
        self._send(200, resource.read_bytes(), _TYPES[name.rsplit(".", 1)[1]])

    def _json(self, status: int, payload: Any) -> None:
        """Send a JSON answer."""
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        """Send a complete answer with the security headers; a browser that went away is ignored."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**_HEADERS, **(extra or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            log.debug("demo: the browser went away before the answer to %s", self.path)
