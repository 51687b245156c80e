"""One LeadLex workspace inside the sandbox: its keys, tasks, budget, webhooks, call log and faults.

A request reaches a workspace by its Bearer key and sees nothing else: another workspace's task ids are unknown
to it (404 not_found, as LeadLex answers for any unknown id), its budget and rate-limit headers are its own, its
webhook events are signed with its own webhooks' secrets. What the workspaces of one sandbox share is in
`Services`: the clock, the key table, the timers that complete and generate tasks, and the webhook couriers.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from bot.dev.sandbox_data import plan_chat, random_proposal, seed_proposals
from bot.dev.sandbox_faults import Fault, Faults
from bot.dev.sandbox_http import ApiError, Reply, dump, object_body
from bot.dev.sandbox_timers import Timers
from bot.dev.sandbox_webhooks import Couriers, WebhookRegistry, iso
from bot.lexi.models import STATUSES, TaskState, parse_time

__all__ = ["DEMO_DAILY_LIMIT", "DEMO_MINUTE_LIMIT", "GATEWAY_PREFIX", "PLANS", "Call", "SandboxWorkspace", "Services"]

log = logging.getLogger("bot.sandbox")
_T = TypeVar("_T")

#: The path prefix of the real API gateway; every route is also served under it.
GATEWAY_PREFIX = "/functions/v1/api-gateway"
#: The default plan: no real LeadLex plan, but large enough that `lexi-bot run --sandbox` polls at its 5-second
#: demo pace (an Org plan's 10,000 calls a day would stretch it to 17 s). Tests pass the real plans' limits.
DEMO_DAILY_LIMIT = 500_000
DEMO_MINUTE_LIMIT = 5_000
#: LeadLex's plans: calls per day and per minute.
PLANS: dict[str, tuple[int, int]] = {"starter": (100, 10), "pro": (1_000, 50), "org": (10_000, 200)}

_STATUS_EVENTS: dict[str, str] = {
    TaskState.APPROVED: "task.approved",
    TaskState.DISMISSED: "task.dismissed",
    TaskState.PENDING: "task.updated",
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


@dataclass(frozen=True)
class ApiRequest:
    """A request as the endpoints see it: the path without the gateway prefix, the query parsed."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Grant:
    """What a key opens: its workspace, with or without the Lexi permission."""

    workspace: SandboxWorkspace
    lexi: bool


@dataclass
class Services:
    """What every workspace of one sandbox shares."""

    clock: Callable[[], float]
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Every valid key, and what it opens.
    keys: dict[str, Grant] = field(default_factory=dict)
    #: Completions of approved tasks and generated tasks, for all workspaces, on one thread started with the server.
    timers: Timers = field(default_factory=lambda: Timers("sandbox-lifecycle", autostart=False))
    couriers: Couriers = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        """Make the couriers, which need the clock and the stop signal."""
        self.couriers = Couriers(self.clock, self.stopping)


class SandboxWorkspace:
    """A LeadLex workspace of the sandbox, whose state tests and demos change and observe as its dashboard would."""

    def __init__(
        self,
        services: Services,
        *,
        workspace_id: str,
        api_key: str,
        no_lexi_key: str | None,
        plan: str | None = None,
        daily_limit: int = DEMO_DAILY_LIMIT,
        minute_limit: int = DEMO_MINUTE_LIMIT,
        credits: int = 1000,  # noqa: A002 - LeadLex's word for the workspace balance
        seed: bool = True,
        complete_after: float | None = None,
        fail_ratio: float = 0.0,
        generate_every: float | None = None,
        random_seeds: tuple[Any, Any] | None = None,
    ) -> None:
        self.id, self.plan = workspace_id, plan
        self.api_key, self.no_lexi_key = api_key, no_lexi_key
        self.daily_limit, self.minute_limit, self.credits = daily_limit, minute_limit, credits
        self.complete_after, self.fail_ratio, self.generate_every = complete_after, fail_ratio, generate_every
        #: Seconds every request to this workspace waits before it is answered.
        self.latency = 0.0
        #: Every request this workspace answered, in order.
        self.calls: list[Call] = []
        self._services = services
        self._clock = services.clock
        self._stopping = services.stopping
        self._lock = threading.RLock()
        self._webhooks = WebhookRegistry(services.couriers, workspace_id, services.clock)
        #: Every delivery attempt of this workspace's webhook events, in order.
        self.deliveries = self._webhooks.deliveries
        self._tasks: list[Any] = []
        self._due: dict[str, object] = {}  # task id → the token of its scheduled completion
        self._conversations: dict[str, int] = {}
        self._faults = Faults()
        self._day = self._minute = -1
        self._day_used = self._minute_used = 0
        self._seeds = random_seeds or (f"{workspace_id}:outcomes", f"{workspace_id}:tasks")
        self._random: tuple[random.Random, random.Random] | None = None  # made when first needed: 5 kB each
        with services.lock:
            taken = [key for key in (api_key, no_lexi_key) if key is not None and key in services.keys]
            if taken or api_key == no_lexi_key:
                raise ValueError("a key can belong to one workspace only, with or without the Lexi permission")
            services.keys[api_key] = Grant(self, lexi=True)
            if no_lexi_key is not None:
                services.keys[no_lexi_key] = Grant(self, lexi=False)
        if seed:
            now = self._clock()
            for seconds_ago, proposal in seed_proposals():
                self.add_task(proposal.type, proposal.description, proposal.metadata, created_at=iso(now - seconds_ago))

    def __repr__(self) -> str:
        """The workspace by its id and plan."""
        return f"<{type(self).__name__} {self.id} plan={self.plan or 'demo'}>"

    @property
    def allow_private_webhooks(self) -> bool:
        """Whether plain-HTTP and private or loopback webhook URLs are accepted (sandbox-wide; LeadLex refuses them)."""
        return self._services.couriers.allow_private

    @allow_private_webhooks.setter
    def allow_private_webhooks(self, allow: bool) -> None:
        self._services.couriers.allow_private = allow

    # --- keys ---

    def add_key(self, *, lexi: bool = True) -> str:
        """Make another key for this workspace (with or without the Lexi permission) and return it."""
        key = new_key()
        with self._services.lock:
            self._services.keys[key] = Grant(self, lexi=lexi)
        return key

    def revoke_key(self, key: str) -> None:
        """Revoke one of this workspace's keys: from now on it gets 401 invalid_key, as an expired key does."""
        with self._services.lock:
            grant = self._services.keys.get(key)
            if grant is None or grant.workspace is not self:
                raise KeyError("not a key of this workspace")
            del self._services.keys[key]

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

    def remaining(self) -> int:
        """How many requests today's daily budget still allows."""
        with self._lock:
            self._roll(self._clock())
            return max(0, self.daily_limit - self._day_used)

    # --- observation and fault injection ---

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        """Return the calls with this method whose path (gateway prefix removed) starts with `path_prefix`."""
        prefix = route_path(path_prefix)
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
        """Answer the next `times` matching requests to this workspace with this status (a JSON error, or `body`)."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.add(
            Fault(
                method.upper() if method else None,
                route_path(path_prefix) if path_prefix else None,
                status,
                code,
                body,
                times,
                retry_after,
                delay,
                dict(headers or {}),
            )
        )

    # --- answering a request routed here (by its key, or for want of one) ---

    def answer(self, request: ApiRequest, grant: Grant | None) -> Reply:
        """Answer a request: latency, an injected fault, or authentication, budget and the endpoint."""
        self._stopping.wait(self.latency)
        fault = self._faults.take(request.method, request.path)
        if fault is not None:
            self._stopping.wait(fault.delay)
            return fault.reply()
        try:
            return self._dispatch(request, grant)
        except ApiError as error:
            return error.reply()
        except Exception:  # a bug here must still answer like the API does
            log.exception("sandbox failed on %s %s", request.method, request.path)
            return ApiError(500, "internal_error", "Internal server error").reply()

    def record(self, call: Call) -> None:
        """Keep a request this workspace answered in its call log."""
        with self._lock:
            self.calls.append(call)

    def standard_headers(self) -> dict[str, str]:
        """Return the headers every response carries: this workspace's rate limits, a request id and CORS."""
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

    def _dispatch(self, request: ApiRequest, grant: Grant | None) -> Reply:
        """Authenticate, rate-limit and route a request; raise ApiError for error answers."""
        if grant is None or grant.workspace is not self:
            raise ApiError(401, "invalid_key", "Invalid or expired API key")
        self._consume()
        for method, pattern, endpoint, success in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                if request.path.startswith("/v1/lexi/") and not grant.lexi:
                    raise ApiError(403, "insufficient_permissions", "This API key lacks the Lexi permission")
                data = endpoint(self, request, *(unquote(group) for group in match.groups()))
                return Reply(success, dump({"data": data}))
        raise ApiError(404, "not_found", f"No endpoint {request.method} {request.path}")

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
            token = self._due[task_id] = object()
            self._services.timers.after(self.complete_after, lambda: self._finish(task_id, token))
        event = _STATUS_EVENTS.get(status)  # LeadLex sends no events for completed or failed tasks
        if event:
            self._webhooks.emit(event, task)

    # --- the background: completions and generated tasks (run by the sandbox's timers) ---

    def start_generating(self) -> None:
        """Add a generated task every `generate_every` seconds from now on, when it is set."""
        if self.generate_every:
            self._services.timers.after(self.generate_every, self._generate)

    def _finish(self, task_id: str, token: object) -> None:
        """Complete (or fail, by `fail_ratio`) an approved task whose time has come, unless it changed since."""
        with self._lock:
            if self._due.get(task_id) is not token:
                return  # decided again, removed or completed by hand meanwhile
            outcomes = self._rngs()[0]
            outcome = TaskState.FAILED if outcomes.random() < self.fail_ratio else TaskState.COMPLETED
            self._change(self._existing(task_id), outcome)

    def _generate(self) -> None:
        """Add one generated pending task, and schedule the next."""
        if self._stopping.is_set():
            return
        with self._lock:
            proposal = random_proposal(self._rngs()[1])
        self.add_task(proposal.type, proposal.description, proposal.metadata)
        self.start_generating()

    def _rngs(self) -> tuple[random.Random, random.Random]:
        """The random sources of outcomes and of generated tasks, made on first use (caller holds the lock)."""
        if self._random is None:
            self._random = (random.Random(self._seeds[0]), random.Random(self._seeds[1]))
        return self._random

    # --- endpoints: each returns the `data` object or raises ApiError ---

    def _list_tasks(self, request: ApiRequest) -> dict[str, Any]:
        """GET /v1/lexi/tasks?status=S."""
        status = request.query.get("status", [TaskState.PENDING])[0]
        if status not in STATUSES:
            raise ApiError(400, "validation_error", f"Invalid status: {status!r}", {"allowed": list(STATUSES)})
        return {"tasks": self.tasks(status)}

    def _approve(self, _request: ApiRequest, task_id: str) -> dict[str, Any]:
        """POST /v1/lexi/tasks/{id}/approve."""
        with self._lock:
            self._change(self._pending(task_id), TaskState.APPROVED)
        return {"task_id": task_id, "status": TaskState.APPROVED, "execution_started": True}

    def _dismiss(self, request: ApiRequest, task_id: str) -> dict[str, Any]:
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

    def _chat(self, request: ApiRequest) -> dict[str, Any]:
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

    def _list_webhooks(self, _request: ApiRequest) -> dict[str, Any]:
        """GET /v1/webhooks, without secrets."""
        return {"webhooks": self._webhooks.registered()}

    def _create_webhook(self, request: ApiRequest) -> dict[str, Any]:
        """POST /v1/webhooks: the only answer that shows the secret."""
        return {"webhook": self._webhooks.create(object_body(request.body))}

    def _update_webhook(self, request: ApiRequest, webhook_id: str) -> dict[str, Any]:
        """PATCH /v1/webhooks/{id}."""
        return {"webhook": self._webhooks.update(webhook_id, object_body(request.body))}

    def _delete_webhook(self, _request: ApiRequest, webhook_id: str) -> dict[str, Any]:
        """DELETE /v1/webhooks/{id}."""
        self._webhooks.delete(webhook_id)
        return {"id": webhook_id, "deleted": True}


#: The API's routes: method, path pattern, endpoint, status on success. One table for every workspace.
_ROUTES: list[tuple[str, re.Pattern[str], Callable[..., dict[str, Any]], int]] = [
    ("GET", re.compile(r"/v1/lexi/tasks"), SandboxWorkspace._list_tasks, 200),  # noqa: SLF001 - the class's own
    ("POST", re.compile(r"/v1/lexi/tasks/([^/]+)/approve"), SandboxWorkspace._approve, 200),  # noqa: SLF001
    ("POST", re.compile(r"/v1/lexi/tasks/([^/]+)/dismiss"), SandboxWorkspace._dismiss, 200),  # noqa: SLF001
    ("POST", re.compile(r"/v1/lexi/chat"), SandboxWorkspace._chat, 200),  # noqa: SLF001
    ("GET", re.compile(r"/v1/webhooks"), SandboxWorkspace._list_webhooks, 200),  # noqa: SLF001
    ("POST", re.compile(r"/v1/webhooks"), SandboxWorkspace._create_webhook, 201),  # noqa: SLF001
    ("PATCH", re.compile(r"/v1/webhooks/([^/]+)"), SandboxWorkspace._update_webhook, 200),  # noqa: SLF001
    ("DELETE", re.compile(r"/v1/webhooks/([^/]+)"), SandboxWorkspace._delete_webhook, 200),  # noqa: SLF001
]


def new_key() -> str:
    """A fresh workspace key, in LeadLex's `wbk_` form."""
    return f"wbk_{secrets.token_hex(16)}"


def new_workspace_id() -> str:
    """A fresh workspace id, as sent in webhook envelopes."""
    return f"ws_{secrets.token_hex(8)}"


def route_path(path: str) -> str:
    """Remove the gateway prefix and any trailing slash from a path."""
    if path.startswith(GATEWAY_PREFIX + "/"):
        path = path[len(GATEWAY_PREFIX) :]
    return path.rstrip("/") or "/"


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


def _next_midnight(now: float) -> int:
    """Return the Unix seconds of the next 00:00 UTC."""
    return (int(now // 86400) + 1) * 86400
