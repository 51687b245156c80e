"""Faults a test injects into one sandbox workspace: answers given instead of the normal ones, a few times."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http import HTTPStatus

from bot.dev.sandbox_http import ApiError, Reply, phrase

#: The error code a fault sends for its status when the test names none.
_DEFAULT_CODES = {
    400: "validation_error",
    401: "invalid_key",
    402: "insufficient_credits",
    403: "insufficient_permissions",
    404: "not_found",
    409: "conflict",
    429: "rate_limited",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass
class Fault:
    """A response to give instead of the normal one to the next `times` matching requests."""

    method: str | None
    path_prefix: str | None
    status: int
    code: str | None
    body: str | None
    times: int
    retry_after: float | None
    delay: float
    headers: dict[str, str]

    def reply(self) -> Reply:
        """The reply this fault gives: a JSON error envelope, or its body verbatim."""
        if self.body is None:
            fallback = "internal_error" if self.status >= HTTPStatus.INTERNAL_SERVER_ERROR else "error"
            code = self.code or _DEFAULT_CODES.get(self.status, fallback)
            reply = ApiError(self.status, code, phrase(self.status)).reply()
        else:
            json_like = self.body.lstrip().startswith(("{", "["))
            content_type = "application/json" if json_like else "text/html; charset=utf-8"
            reply = Reply(self.status, self.body.encode(), content_type)
        if self.retry_after is not None:
            reply.headers["Retry-After"] = f"{self.retry_after:g}"
        reply.headers.update(self.headers)
        return reply


class Faults:
    """The faults waiting for a workspace's requests, first injected first used."""

    def __init__(self) -> None:
        self._waiting: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        """Keep a fault for the next matching requests."""
        with self._lock:
            self._waiting.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """Return (and use up once) the first fault matching this request, or None."""
        with self._lock:
            for fault in self._waiting:
                if fault.method in (None, method) and path.startswith(fault.path_prefix or ""):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._waiting.remove(fault)
                    return fault
        return None
