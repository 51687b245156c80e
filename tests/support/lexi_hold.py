"""A loopback HTTP proxy in front of the LeadLex sandbox that can hold, then drop or pass, chosen calls.

A held call has reached "LeadLex's network" but not LeadLex: the test can kill the bot that made it and then
drop the call (it never lands) or pass it on (it lands after its caller died).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class HoldingProxy:
    """Forwards every request to `upstream`; while `hold(path_part)` is on, matching requests wait for a verdict."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._hold: str | None = None
        self._arrived = threading.Event()
        self._verdict = threading.Event()
        self._drop = False
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                """Forward a GET."""
                proxy._forward(self)

            def do_POST(self) -> None:
                """Forward a POST."""
                proxy._forward(self)

            def do_PATCH(self) -> None:
                """Forward a PATCH."""
                proxy._forward(self)

            def do_DELETE(self) -> None:
                """Forward a DELETE."""
                proxy._forward(self)

            def log_message(self, *args: Any) -> None:
                """Stay quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._client = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        """The proxy's base URL (give it to the bot as LEXI_API_URL)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hold(self, path_part: str) -> None:
        """Hold the next requests whose path contains `path_part` until `drop()` or `release()`."""
        with self._lock:
            self._hold, self._drop = path_part, False
            self._arrived.clear()
            self._verdict.clear()

    def wait_arrived(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until a held request has arrived."""
        assert self._arrived.wait(timeout), "no held request arrived in time"

    def drop(self) -> None:
        """Drop the held requests (they never reach LeadLex) and stop holding."""
        with self._lock:
            self._hold, self._drop = None, True
        self._verdict.set()

    def release(self) -> None:
        """Pass the held requests on to LeadLex and stop holding."""
        with self._lock:
            self._hold, self._drop = None, False
        self._verdict.set()

    def close(self) -> None:
        """Stop the proxy."""
        self.drop()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        """Pass one request on (after its verdict, when held) and copy the answer back."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            held = self._hold is not None and self._hold in handler.path
        if held:
            self._arrived.set()
            self._verdict.wait(60)
            with self._lock:
                dropped = self._drop
            if dropped:
                handler.close_connection = True
                return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        try:
            response = self._client.request(
                handler.command, self.upstream + handler.path, headers=headers, content=body
            )
        except httpx.HTTPError:
            handler.close_connection = True
            return
        handler.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in _HOP and key.lower() != "content-encoding":
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)
