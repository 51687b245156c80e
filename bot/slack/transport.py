"""Slack Web API calls on kept-alive HTTP/1.1 connections, for the bot's WebClient (bot.slack.messenger).

slack_sdk sends each call with urllib on a new connection: a TCP (and in production a TLS) handshake per call.
`Connections` keeps a few open connections per host instead, with the standard library's http.client, the
lightest client there is: a card update costs about a third of the CPU it cost through httpx, and the bot makes
two or three Slack calls per click.

A connection is taken from the pool for one request and given back after its answer has been read whole, so
threads never share one. One that the server closed while it sat idle is noticed before it is used (its socket
reads as ready: end of file) and replaced, so a request is never sent on a connection known to be dead.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from dataclasses import dataclass
from http.client import HTTPMessage
from urllib.error import URLError
from urllib.parse import urlsplit

from bot.ops.tls import client_context

__all__ = ["Answer", "Connections"]

#: Idle connections kept per host (more concurrent calls open more, closed after their answer).
KEEP_PER_HOST = 16

_Key = tuple[str, str, int]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read whole: status, reason, headers and body."""

    status: int
    reason: str
    headers: HTTPMessage
    body: bytes


class Connections:
    """Kept-alive connections to HTTP(S) hosts, at most `keep` idle per host, safe to use from many threads."""

    def __init__(self, timeout: float, context: ssl.SSLContext | None = None, *, keep: int = KEEP_PER_HOST) -> None:
        """Connect with `timeout` seconds for each step (connect, send, each read) and `context` for HTTPS."""
        self._timeout = timeout
        self._context = context
        self._keep = keep
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def request(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Answer:
        """Send one request and read its answer.

        A failure to connect raises URLError (as urlopen does); a broken or timed-out exchange afterwards raises
        TimeoutError or URLError, and the connection is dropped.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise URLError(f"cannot send to {url!r}")
        key = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection = self._take(key) or self._connect(key)
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.reason, response.msg, response.read())
        except TimeoutError:
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise URLError(OSError(str(exc) or type(exc).__name__)) from exc
        if response.will_close:
            connection.close()
        else:
            self._give(key, connection)
        return answer

    def close(self) -> None:
        """Close every idle connection; connections in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle = [connection for connections in self._idle.values() for connection in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def _connect(self, key: _Key) -> http.client.HTTPConnection:
        """A new connection, connected (a failure is URLError, as urlopen raises it)."""
        scheme, host, port = key
        connection: http.client.HTTPConnection
        if scheme == "https":
            context = self._context if self._context is not None else client_context()  # built once per process
            connection = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise URLError(exc) from exc
        return connection

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        """An idle connection to `key` still open at the other end, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection = idle.pop()  # the most recently used: the likeliest to be still open
            if _still_open(connection):
                return connection
            connection.close()

    def _give(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        """Keep a connection whose answer was read whole for the next request (or close it: enough are kept)."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if not self._closed and len(idle) < self._keep:
                idle.append(connection)
                return
        connection.close()


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection can carry a request: a socket that reads as ready was closed (or sent junk)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        poller = select.poll()  # not select.select: it fails on descriptors past 1024
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):  # closed underneath
        return False
