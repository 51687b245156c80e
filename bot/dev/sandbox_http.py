"""The sandbox's HTTP plumbing: LeadLex's JSON envelopes and a quiet threaded server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("bot.sandbox")


@dataclass
class Reply:
    """A response about to be sent."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Raised by an endpoint to answer with LeadLex's error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}

    def reply(self) -> Reply:
        """Return the error as a JSON reply."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return Reply(self.status, dump({"error": error}), headers=dict(self.headers))


#: Answers one request: (method, target with query, lower-cased headers, body) → reply.
Responder = Callable[[str, str, Mapping[str, str], bytes], Reply]


class SandboxServer(ThreadingHTTPServer):
    """A threaded HTTP server that passes every request to a responder and logs connection errors quietly."""

    daemon_threads = True
    #: Connections waiting to be accepted: many workspaces' pollers and clicks arrive together. socketserver's 5
    #: overflows when a hundred clients connect at once, and the dropped connection came back a second later (or
    #: was reset) as a "slow" call in a benchmark.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], respond: Responder) -> None:
        self.respond = respond
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 - socketserver's signature
        """Log a connection that failed outside the responder (e.g. a client that hung up) at debug level."""
        log.debug("connection from %s failed", client_address, exc_info=True)  # noqa: LOG014 - called in an except block


class _RequestHandler(BaseHTTPRequestHandler):
    """Hands every request to the server's responder and writes its reply."""

    server: SandboxServer
    server_version = "LeadLexSandbox/1.0"
    #: Connections are kept alive between requests, as LeadLex's are (every reply carries its Content-Length).
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        """Read the body, let the responder answer, and send the reply unless the client has gone."""
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.respond(self.command, self.path, headers, body)
        try:
            self.send_response(reply.status)
            for name, value in {"Content-Type": reply.content_type, **reply.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client hung up before the reply to %s %s", self.command, self.path)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = _handle  # noqa: N815 - http.server dispatches on these names

    def log_message(self, fmt: str, *args: Any) -> None:
        """Log requests at debug level instead of printing them."""
        log.debug("%s - " + fmt, self.address_string(), *args)  # noqa: G003 - http.server's format string


def object_body(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (an empty body is {}); raise a 400 otherwise."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise ApiError(400, "validation_error", "The request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "validation_error", "The request body must be a JSON object")
    return value


def body_value(body: bytes) -> Any:
    """Return a request body as recorded: parsed JSON, else text, else None when empty."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def phrase(status: int) -> str:
    """Return the standard reason phrase of an HTTP status."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def dump(value: Any) -> bytes:
    """Encode a value as UTF-8 JSON, however deep or long its numbers (LeadLex's encoder has neither limit)."""
    try:
        return json.dumps(value, ensure_ascii=False).encode()
    except (RecursionError, ValueError):
        return _dump_deep(value).encode()


def _dump_deep(value: Any) -> str:
    """Encode a value as JSON without recursion: a stack of pieces still to write."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Literal):
            out.append(item.text)
        elif isinstance(item, dict):
            pieces: list[Any] = [_Literal("{")]
            for index, (key, child) in enumerate(item.items()):
                comma = "," if index else ""
                pieces += [_Literal(comma + json.dumps(str(key), ensure_ascii=False) + ":"), child]
            stack.extend(reversed([*pieces, _Literal("}")]))
        elif isinstance(item, (list, tuple)):
            pieces = [_Literal("[")]
            for index, child in enumerate(item):
                pieces += [_Literal(","), child] if index else [child]
            stack.extend(reversed([*pieces, _Literal("]")]))
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(_int_text(item))
        else:
            out.append(json.dumps(item, ensure_ascii=False))
    return "".join(out)


def _int_text(number: int) -> str:
    """An integer's decimal digits, however many (Python's str() refuses beyond 4300 digits)."""
    chunk = 10**4000
    sign, number, parts = "-" if number < 0 else "", abs(number), []
    while number >= chunk:
        number, rest = divmod(number, chunk)
        parts.append(str(rest).zfill(4000))
    return sign + str(number) + "".join(reversed(parts))


@dataclass(frozen=True)
class _Literal:
    """JSON text already encoded, waiting on the encoder's stack."""

    text: str
