"""Why a service could not be reached, in words a person can act on: refused, unknown host, no answer in time."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from urllib.error import URLError

import httpx

#: What the command catches around a call to Slack (urllib) when the service is out of reach.
UNREACHABLE = (OSError, http.client.HTTPException)

#: How many causes are looked at: a chain is short, and a cycle must not loop.
_MAX_CHAIN = 20


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what caused it (explicit causes, implicit contexts, a URLError's reason), each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < _MAX_CHAIN:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None) if isinstance(current, URLError) else None
        todo.extend(e for e in (reason, current.__cause__, current.__context__) if isinstance(e, BaseException))


def unreachable_reason(exc: BaseException, timeout: float) -> str:
    """Words for a failure to reach a service over HTTP (refused, unknown host, timeout, TLS), from its causes."""
    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused — is the URL right, and is the service running?"
        if isinstance(cause, socket.gaierror):
            return "host name not found — check the URL's host name and this machine's DNS"
        if isinstance(cause, TimeoutError | httpx.TimeoutException):
            return f"no answer within {timeout:g}s — check the URL and any proxy or firewall in between"
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause}) — check the URL's scheme and certificates"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
    return type(causes[-1]).__name__
