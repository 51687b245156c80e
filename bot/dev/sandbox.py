"""A local LeadLex-compatible API server, for trying the bot without real data and for tests.

It serves the Lexi task, chat and webhook endpoints at `/v1/...` and under the real gateway prefix, with
LeadLex's envelopes, error codes, rate-limit headers and signed webhook deliveries, and lets its owner change
state (as the dashboard would), inject faults and observe every call. Run: `python -m bot.dev.sandbox`.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from bot.dev.sandbox_data import plan_chat, random_proposal, seed_proposals
from bot.dev.sandbox_http import ApiError, Reply, SandboxServer, body_value, dump, object_body, phrase
from bot.dev.sandbox_webhooks import Delivery, WebhookRegistry, iso
from bot.lexi.models import STATUSES, TaskState, parse_time

__all__ = ["GATEWAY_PREFIX", "Call", "Delivery", "Sandbox", "main"]

log = logging.getLogger("bot.sandbox")
_T = TypeVar("_T")

#: The path prefix of the real API gateway; every route is also served under it.
GATEWAY_PREFIX = "/functions/v1/api-gateway"

_TICK = 0.05  # seconds between checks of the background thread (completions, generated tasks)
_STATUS_EVENTS: dict[str, str] = {
    TaskState.APPROVED: "task.approved",
    TaskState.DISMISSED: "task.dismissed",
    TaskState.PENDING: "task.updated",
}
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
_CORS = {  # lets a browser page (the demo) call the sandbox and read its rate-limit headers
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
    "X-Request-ID, Retry-After",
}
_UNSET: Any = object()


@dataclass(frozen=True)
class Call:
    """One request received: `path` (query kept, gateway prefix removed); `body` is JSON, text or None."""

    method: str
    path: str
    status: int
    at: float
    body: Any


@dataclass
class _Fault:
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


@dataclass(frozen=True)
class _Request:
    """A request as the endpoints see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


_Endpoint = Callable[..., dict[str, Any]]
#: The default plan: no real LeadLex plan, but large enough that `lexi-bot run --sandbox` polls at its 5-second
#: demo pace (an Org plan's 10,000 calls a day would stretch it to 17 s). Tests pass the real plans' limits.
DEMO_DAILY_LIMIT = 500_000
DEMO_MINUTE_LIMIT = 5_000


class Sandbox:
    """A LeadLex-compatible API on a loopback port, whose state tests and demos can change and observe."""

    def __init__(
        self,
        *,
        api_key: str = "wbk_sandbox",
        no_lexi_key: str | None = "wbk_nolexi",
        daily_limit: int = DEMO_DAILY_LIMIT,
        minute_limit: int = DEMO_MINUTE_LIMIT,
        credits: int = 1000,  # noqa: A002 - LeadLex's word for the workspace balance
        seed: bool = True,
        complete_after: float | None = None,
        fail_ratio: float = 0.0,
        generate_every: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key, self.no_lexi_key = api_key, no_lexi_key
        self.daily_limit, self.minute_limit, self.credits = daily_limit, minute_limit, credits
        self.complete_after, self.fail_ratio, self.generate_every = complete_after, fail_ratio, generate_every
        #: Seconds every request waits before it is answered.
        self.latency = 0.0
        self.calls: list[Call] = []
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._webhooks = WebhookRegistry(clock, self._stopping)
        #: Every webhook delivery attempt, in order.
        self.deliveries: list[Delivery] = self._webhooks.deliveries
        self._tasks: list[Any] = []
        self._due: dict[str, float] = {}
        self._conversations: dict[str, int] = {}
        self._faults: list[_Fault] = []
        self._day = self._minute = -1
        self._day_used = self._minute_used = 0
        self._outcomes = random.Random(0)
        self._generator = random.Random(1)
        self._server: SandboxServer | None = None
        self._threads: list[threading.Thread] = []
        self._routes: list[tuple[str, re.Pattern[str], _Endpoint, int]] = [
            ("GET", re.compile(r"/v1/lexi/tasks"), self._list_tasks, 200),
            ("POST", re.compile(r"/v1/lexi/tasks/([^/]+)/approve"), self._approve, 200),
            ("POST", re.compile(r"/v1/lexi/tasks/([^/]+)/dismiss"), self._dismiss, 200),
            ("POST", re.compile(r"/v1/lexi/chat"), self._chat, 200),
            ("GET", re.compile(r"/v1/webhooks"), self._list_webhooks, 200),
            ("POST", re.compile(r"/v1/webhooks"), self._create_webhook, 201),
            ("PATCH", re.compile(r"/v1/webhooks/([^/]+)"), self._update_webhook, 200),
            ("DELETE", re.compile(r"/v1/webhooks/([^/]+)"), self._delete_webhook, 200),
        ]
        if seed:
            now = clock()
            for seconds_ago, proposal in seed_proposals():
                self.add_task(proposal.type, proposal.description, proposal.metadata, created_at=iso(now - seconds_ago))

    # --- serving ---

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Start serving on `host:port` (0 picks a free port) in daemon threads, and return self."""
        if self._server is not None:
            raise RuntimeError("a sandbox can be started only once")
        self._server = SandboxServer((host, port), self._respond)
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": _TICK}, name="sandbox-http", daemon=True
            ),
            threading.Thread(target=self._run_background, name="sandbox-lifecycle", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the server, the background thread and webhook retries; calling it again does nothing."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        deadline = time.monotonic() + 2.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._webhooks.join(deadline)

    def __enter__(self) -> Self:
        """Start the sandbox on a free loopback port."""
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop the sandbox."""
        self.stop()

    @property
    def allow_private_webhooks(self) -> bool:
        """Whether plain-HTTP and private or loopback webhook URLs are accepted (LeadLex refuses them)."""
        return self._webhooks.allow_private

    @allow_private_webhooks.setter
    def allow_private_webhooks(self, allow: bool) -> None:
        self._webhooks.allow_private = allow

    @property
    def url(self) -> str:
        """The base URL, like http://127.0.0.1:PORT, to which clients append /v1/...."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"  # noqa: S104 - a comparison

    # --- state, as the LeadLex dashboard or Lexi would change it ---

    def add_task(
        self,
        type: str = "prospect_search",  # noqa: A002 - the task field it sets
        description: str = "Find prospects in the sandbox",
        metadata: Any = _UNSET,
        *,
        status: str = TaskState.PENDING,
        created_at: str | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """Add a task (odd values are stored as given; omitted metadata is {}) and return a copy of it."""
        task = {
            "id": task_id if task_id is not None else str(uuid.uuid4()),
            "type": type,
            "status": status,
            "description": description,
            "created_at": created_at if created_at is not None else iso(self._clock()),
            "metadata": {} if metadata is _UNSET else metadata,
        }
        with self._lock:
            if self._find(str(task["id"])) is not None:
                raise ValueError(f"a task with id {task['id']!r} already exists")
            self._tasks.append(task)
            self._webhooks.emit("task.created", task)
            return _copy(task)

    def add_raw_task(self, obj: Any) -> None:
        """Insert any JSON value verbatim into the task list (for malformed-task tests); no event is sent."""
        with self._lock:
            self._tasks.append(obj)

    def set_status(self, task_id: str, status: str) -> dict[str, Any]:
        """Set a task's status, as the dashboard or LeadLex's executor would; return a copy of the task."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        with self._lock:
            task = self._existing(task_id)
            self._change(task, status)
            return _copy(task)

    def update_task(self, task_id: str, *, description: Any = _UNSET, metadata: Any = _UNSET) -> dict[str, Any]:
        """Change a task's description or metadata (sends task.updated) and return a copy of the task."""
        with self._lock:
            task = self._existing(task_id)
            if description is not _UNSET:
                task["description"] = description
            if metadata is not _UNSET:
                task["metadata"] = metadata
            self._webhooks.emit("task.updated", task)
            return _copy(task)

    def complete(self, task_id: str, *, ok: bool = True) -> dict[str, Any]:
        """Finish an approved task now, as completed (or failed when not `ok`), and return a copy of it."""
        with self._lock:
            task = self._existing(task_id)
            if _status_of(task) != TaskState.APPROVED:
                raise ValueError(f"task {task_id} is {_status_of(task)}, not approved")
            self._change(task, TaskState.COMPLETED if ok else TaskState.FAILED)
            return _copy(task)

    def remove_task(self, task_id: str) -> None:
        """Make a task vanish, so that later calls about it get 404."""
        with self._lock:
            self._tasks.remove(self._existing(task_id))
            self._due.pop(task_id, None)

    def task(self, task_id: str) -> dict[str, Any] | None:
        """Return a copy of a task, or None when there is none with this id."""
        with self._lock:
            return _copy(self._find(task_id))

    def tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        """Return copies of all tasks, or of those with `status`, oldest first."""
        with self._lock:
            return [
                _copy(task) for task in sorted(self._tasks, key=_age) if status is None or _status_of(task) == status
            ]

    def set_remaining(self, remaining: int) -> None:
        """Set how many requests today's daily budget still allows (for tests of a spent budget)."""
        with self._lock:
            self._roll(self._clock())
            self._day_used = self.daily_limit - remaining

    # --- observation and fault injection ---

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        """Return the calls with this method whose path (gateway prefix removed) starts with `path_prefix`."""
        prefix = _route_path(path_prefix)
        with self._lock:
            return [call for call in self.calls if call.method == method.upper() and call.path.startswith(prefix)]

    def reset_calls(self) -> None:
        """Forget the calls received so far."""
        with self._lock:
            self.calls.clear()

    def fail_next(
        self,
        method: str | None = None,
        path_prefix: str | None = None,
        *,
        status: int = 500,
        code: str | None = None,
        body: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` matching requests with this status (a JSON error, or `body` verbatim)."""
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = _Fault(
            method.upper() if method else None,
            _route_path(path_prefix) if path_prefix else None,
            status,
            code,
            body,
            times,
            retry_after,
            delay,
            dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)

    # --- task state internals (callers hold the lock) ---

    def _find(self, task_id: str) -> dict[str, Any] | None:
        """Return the stored task with this id, or None."""
        matches = (
            task
            for task in self._tasks
            if isinstance(task, dict) and task.get("id") is not None and str(task["id"]) == task_id
        )
        return next(matches, None)

    def _existing(self, task_id: str) -> dict[str, Any]:
        """Return the stored task with this id, or raise KeyError."""
        task = self._find(task_id)
        if task is None:
            raise KeyError(task_id)
        return task

    def _change(self, task: dict[str, Any], status: str) -> None:
        """Set a stored task's status, schedule its completion when approved, and send the matching event."""
        task["status"] = status
        task_id = str(task["id"])
        self._due.pop(task_id, None)
        if status == TaskState.APPROVED and self.complete_after is not None:
            self._due[task_id] = time.monotonic() + self.complete_after
        event = _STATUS_EVENTS.get(status)  # LeadLex sends no events for completed or failed tasks
        if event:
            self._webhooks.emit(event, task)

    def _run_background(self) -> None:
        """Complete approved tasks when due and generate new tasks, until stop()."""
        every = self.generate_every or 0.0
        next_generation = time.monotonic() + every if every > 0 else math.inf
        while not self._stopping.wait(_TICK):
            now = time.monotonic()
            with self._lock:
                for task_id in [task_id for task_id, due in self._due.items() if due <= now]:
                    outcome = TaskState.FAILED if self._outcomes.random() < self.fail_ratio else TaskState.COMPLETED
                    self._change(self._existing(task_id), outcome)
            if now >= next_generation:
                proposal = random_proposal(self._generator)
                self.add_task(proposal.type, proposal.description, proposal.metadata)
                next_generation = now + every

    # --- HTTP ---

    def _respond(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request and record it."""
        split = urlsplit(target)
        request = _Request(
            method, _route_path(split.path), parse_qs(split.query, keep_blank_values=True), headers, body
        )
        if method == "OPTIONS":  # a browser's CORS preflight: no auth, never counted
            reply = Reply(
                204,
                headers={
                    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                },
            )
        else:
            self._stopping.wait(self.latency)
            fault = self._take_fault(method, request.path)
            if fault is not None:
                self._stopping.wait(fault.delay)
                reply = _fault_reply(fault)
            else:
                try:
                    reply = self._dispatch(request)
                except ApiError as error:
                    reply = error.reply()
                except Exception:  # a bug here must still answer like the API does
                    log.exception("sandbox failed on %s %s", method, target)
                    reply = ApiError(500, "internal_error", "Internal server error").reply()
        reply.headers = {**self._standard_headers(), **reply.headers}
        with self._lock:
            path = request.path + (f"?{split.query}" if split.query else "")
            self.calls.append(Call(method, path, reply.status, self._clock(), body_value(body)))
        return reply

    def _dispatch(self, request: _Request) -> Reply:
        """Authenticate, rate-limit and route a request; raise ApiError for error answers."""
        key = _bearer(request.headers.get("authorization", ""))
        if not key or key not in (self.api_key, self.no_lexi_key):
            raise ApiError(401, "invalid_key", "Invalid or expired API key")
        self._consume()
        for method, pattern, handler, success in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                if request.path.startswith("/v1/lexi/") and key != self.api_key:
                    raise ApiError(403, "insufficient_permissions", "This API key lacks the Lexi permission")
                data = handler(request, *(unquote(group) for group in match.groups()))
                return Reply(success, dump({"data": data}))
        raise ApiError(404, "not_found", f"No endpoint {request.method} {request.path}")

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        """Return (and use up once) the first fault matching this request, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method) and path.startswith(fault.path_prefix or ""):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _roll(self, now: float) -> None:
        """Start new day and minute counters when the clock has moved past the current ones."""
        day, minute = int(now // 86400), int(now // 60)
        if day != self._day:
            self._day, self._day_used = day, 0
        if minute != self._minute:
            self._minute, self._minute_used = minute, 0

    def _consume(self) -> None:
        """Count one authenticated request, or raise 429 when the daily or per-minute budget is spent."""
        now = self._clock()
        with self._lock:
            self._roll(now)
            if self._day_used >= self.daily_limit:
                raise ApiError(
                    429,
                    "rate_limited",
                    "Daily request limit reached; it resets at 00:00 UTC",
                    {"limit": self.daily_limit, "reset": _next_midnight(now)},
                )
            if self._minute_used >= self.minute_limit:
                retry_after = max(1, math.ceil(60 - now % 60))
                raise ApiError(
                    429,
                    "rate_limited",
                    "Too many requests per minute",
                    {"per_minute": self.minute_limit, "retry_after": retry_after},
                    {"Retry-After": str(retry_after)},
                )
            self._day_used += 1
            self._minute_used += 1

    def _standard_headers(self) -> dict[str, str]:
        """Return the headers every response carries: rate limits, a request id and CORS."""
        now = self._clock()
        with self._lock:
            self._roll(now)
            remaining = max(0, self.daily_limit - self._day_used)
        return {
            "X-RateLimit-Limit": str(self.daily_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(_next_midnight(now)),
            "X-Request-ID": str(uuid.uuid4()),
            **_CORS,
        }

    # --- endpoints: each returns the `data` object or raises ApiError ---

    def _list_tasks(self, request: _Request) -> dict[str, Any]:
        """GET /v1/lexi/tasks?status=S."""
        status = request.query.get("status", [TaskState.PENDING])[0]
        if status not in STATUSES:
            raise ApiError(400, "validation_error", f"Invalid status: {status!r}", {"allowed": list(STATUSES)})
        return {"tasks": self.tasks(status)}

    def _approve(self, _request: _Request, task_id: str) -> dict[str, Any]:
        """POST /v1/lexi/tasks/{id}/approve."""
        with self._lock:
            self._change(self._pending(task_id), TaskState.APPROVED)
        return {"task_id": task_id, "status": TaskState.APPROVED, "execution_started": True}

    def _dismiss(self, request: _Request, task_id: str) -> dict[str, Any]:
        """POST /v1/lexi/tasks/{id}/dismiss with an optional reason."""
        reason = object_body(request.body).get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ApiError(400, "validation_error", "reason must be a string", {"field": "reason"})
        with self._lock:
            task = self._pending(task_id)
            if reason is not None:
                task["dismiss_reason"] = reason
            self._change(task, TaskState.DISMISSED)
        return {"task_id": task_id, "status": TaskState.DISMISSED}

    def _pending(self, task_id: str) -> dict[str, Any]:
        """Return the stored pending task with this id, or raise the API's 404 or 400."""
        task = self._find(task_id)
        if task is None:
            raise ApiError(404, "not_found", f"Task not found: {task_id}")
        if _status_of(task) != TaskState.PENDING:
            raise ApiError(400, "validation_error", f"Task is not pending (status: {_status_of(task)})")
        return task

    def _chat(self, request: _Request) -> dict[str, Any]:
        """POST /v1/lexi/chat: Lexi answers, may propose a task, and charges credits."""
        body = object_body(request.body)
        message, context = body.get("message"), body.get("context") or {}
        if not isinstance(message, str) or not message.strip():
            raise ApiError(400, "validation_error", "message is required", {"field": "message"})
        if not isinstance(context, dict):
            raise ApiError(400, "validation_error", "context must be an object", {"field": "context"})
        with self._lock:
            conversation_id = context.get("conversation_id")
            if not isinstance(conversation_id, str) or conversation_id not in self._conversations:
                conversation_id = f"conv_{uuid.uuid4().hex[:16]}"
            turn = self._conversations.get(conversation_id, 0) + 1
            plan = plan_chat(message, turn)
            if self.credits < plan.cost:
                raise ApiError(
                    402,
                    "insufficient_credits",
                    "Not enough credits for this message",
                    {"required": plan.cost, "available": self.credits},
                )
            self.credits -= plan.cost
            self._conversations[conversation_id] = turn
            task = None
            if plan.proposal is not None:
                proposal = plan.proposal
                task = self.add_task(proposal.type, proposal.description, proposal.metadata)
        return {
            "response": plan.response,
            "task_id": task["id"] if task else None,
            "requires_approval": task is not None,
            "conversation_id": conversation_id,
        }

    def _list_webhooks(self, _request: _Request) -> dict[str, Any]:
        """GET /v1/webhooks, without secrets."""
        return {"webhooks": self._webhooks.registered()}

    def _create_webhook(self, request: _Request) -> dict[str, Any]:
        """POST /v1/webhooks: the only answer that shows the secret."""
        return {"webhook": self._webhooks.create(object_body(request.body))}

    def _update_webhook(self, request: _Request, webhook_id: str) -> dict[str, Any]:
        """PATCH /v1/webhooks/{id}."""
        return {"webhook": self._webhooks.update(webhook_id, object_body(request.body))}

    def _delete_webhook(self, _request: _Request, webhook_id: str) -> dict[str, Any]:
        """DELETE /v1/webhooks/{id}."""
        self._webhooks.delete(webhook_id)
        return {"id": webhook_id, "deleted": True}


def _fault_reply(fault: _Fault) -> Reply:
    """Build the reply an injected fault gives: a JSON error envelope, or its body verbatim."""
    if fault.body is None:
        fallback = "internal_error" if fault.status >= HTTPStatus.INTERNAL_SERVER_ERROR else "error"
        code = fault.code or _DEFAULT_CODES.get(fault.status, fallback)
        reply = ApiError(fault.status, code, phrase(fault.status)).reply()
    else:
        json_like = fault.body.lstrip().startswith(("{", "["))
        content_type = "application/json" if json_like else "text/html; charset=utf-8"
        reply = Reply(fault.status, fault.body.encode(), content_type)
    if fault.retry_after is not None:
        reply.headers["Retry-After"] = f"{fault.retry_after:g}"
    reply.headers.update(fault.headers)
    return reply


def _bearer(header: str) -> str | None:
    """Return the key of an `Authorization: Bearer <key>` header, or None."""
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def _copy(value: _T) -> _T:
    """A deep copy, or the value itself when it is nested too deeply to copy (malformed-task tests)."""
    try:
        return copy.deepcopy(value)
    except RecursionError:
        return value


def _status_of(task: Any) -> str:
    """Return a stored task's status; anything without a text status counts as pending, as clients read it."""
    status = task.get("status") if isinstance(task, dict) else None
    return status if isinstance(status, str) else TaskState.PENDING


def _age(task: Any) -> float:
    """Sort key putting tasks oldest first, and those without a readable created_at last."""
    created = parse_time(task.get("created_at")) if isinstance(task, dict) else None
    return created.timestamp() if created else math.inf


def _route_path(path: str) -> str:
    """Remove the gateway prefix and any trailing slash from a path."""
    if path.startswith(GATEWAY_PREFIX + "/"):
        path = path[len(GATEWAY_PREFIX) :]
    return path.rstrip("/") or "/"


def _next_midnight(now: float) -> int:
    """Return the Unix seconds of the next 00:00 UTC."""
    return (int(now // 86400) + 1) * 86400


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox from the command line until Ctrl-C; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.dev.sandbox",
        description="Serve a local LeadLex-compatible API with sample Lexi tasks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8787, help="port to listen on, 0 for any free port (default: %(default)s)"
    )
    parser.add_argument(
        "--complete-after",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="complete approved tasks after SECONDS, 0 for never (default: %(default)s)",
    )
    parser.add_argument(
        "--generate-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="add a new pending task every SECONDS, 0 for never (default: never)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    sandbox = Sandbox(complete_after=args.complete_after or None, generate_every=args.generate_every or None)
    try:
        sandbox.start(args.host, args.port)
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    print(
        f"LeadLex sandbox listening on {sandbox.url}\n"
        f"  use: LEXI_API_URL={sandbox.url} LEXI_API_KEY={sandbox.api_key}\n"
        f"  a key without the Lexi permission: {sandbox.no_lexi_key}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("sandbox stopped", flush=True)
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
