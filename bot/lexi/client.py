"""The LeadLex API client: one place that maps HTTP answers to typed errors, retries and tracks the budget."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx
import tenacity

from bot.errors import (
    InvalidKey,
    InvalidRequest,
    LexiError,
    NotFound,
    NotPending,
    OutOfCredits,
    PermissionDenied,
    RateLimited,
    TransientError,
)
from bot.lexi import tolerant_json
from bot.lexi.models import PLAIN_DESCRIPTION, STATUSES, Task, TaskState, read_task
from bot.lexi.ratelimit import Budget, minute_limit
from bot.ops.logs import clip, safe_repr
from bot.ops.tls import SharedConnections, client_context

log = logging.getLogger(__name__)

#: Tasks that could not be read in full, remembered so each is logged once (the oldest is forgotten first).
_UNPARSEABLE_REMEMBERED = 10_000
_ERRORS: dict[int, type[LexiError]] = {
    400: InvalidRequest,
    409: InvalidRequest,
    401: InvalidKey,
    402: OutOfCredits,
    403: PermissionDenied,
    404: NotFound,
}


@dataclass(frozen=True)
class ChatReply:
    """What Lexi answered to a chat message."""

    response: str
    task_id: str | None
    requires_approval: bool
    conversation_id: str | None


def _number(value: str | None) -> float | None:
    """Parse a header value as a number, or None."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LexiClient:
    """A synchronous LeadLex client; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        max_wait: float = 20.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_response: Callable[[str, str, int], None] | None = None,
        on_unparseable: Callable[[str], None] | None = None,
        connections: SharedConnections | None = None,
    ) -> None:
        """Each thread that calls LeadLex gets an HTTP client (and a kept-alive connection) of its own.

        One shared client would hold every connection in one pool: httpx allows 100 unless told otherwise (the
        101st click's approve waited for a slow answer to come back), and its pool scans every connection on each
        request and response, which costs more CPU than the request itself when hundreds wait on a slow LeadLex.
        With `connections`, the thread's client is the one those share with other LexiClients (closed by their
        owner, not by `close`).
        """
        self._connections = connections
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "lexi-bot"}
        self._client_options: dict[str, Any] = {
            "base_url": base_url.rstrip("/"),
            "timeout": timeout,
            "verify": client_context(),  # one per process: loading the CA bundle for each client costs ~20 ms
        }
        self._local = threading.local()
        self._clients: weakref.WeakSet[httpx.Client] = weakref.WeakSet()  # to close them; a thread's dies with it
        self._attempts = attempts
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._on_response = on_response
        self._on_unparseable = on_unparseable
        self._unparseable_seen: dict[str, None] = {}  # insertion-ordered: tasks already reported
        self._budget = Budget()
        self._lock = threading.Lock()
        self.sent = 0  # requests sent, for the poller's cost accounting
        self._recent: deque[float] = deque()  # when the requests of the last minute were sent

    @property
    def budget(self) -> Budget:
        """The rate-limit budget from the latest response."""
        return self._budget

    def close(self) -> None:
        """Close every thread's client and its connection."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()

    def _http(self) -> httpx.Client:
        """The calling thread's HTTP client, created on its first call (or the shared connections' for it)."""
        if self._connections is not None:
            return self._connections.client(self._client_options["base_url"], self._client_options["timeout"])
        client: httpx.Client | None = getattr(self._local, "http", None)
        if client is None:
            client = httpx.Client(**self._client_options)
            self._local.http = client
            with self._lock:
                self._clients.add(client)
        return client

    # --- endpoints -------------------------------------------------------------------------------

    def list_tasks(self, status: str = TaskState.PENDING) -> list[Task]:
        """List the tasks in one status, each read on its own: one unreadable task never hides the others.

        A task with a usable id but unreadable parts comes back cut down (no metadata, a short
        description); one without a usable id is skipped. Either is reported once (see `unparseable`).
        """
        # Decoded member by member down to each task's fields when the whole answer cannot be decoded.
        data = self._call("GET", "/v1/lexi/tasks", params={"status": status}, levels=4)
        raw = data.get("tasks") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise TransientError("LeadLex answered the task list without a list of tasks")
        tasks = []
        for item in raw:
            task, problem = _read_item(item)
            if problem is not None:
                self._note_unparseable(item, task, problem)
            if task is not None:
                tasks.append(task)
        return tasks

    def _note_unparseable(self, item: Any, task: Task | None, problem: str) -> None:
        """Log and count a task that could not be read in full, once per task (it is listed every poll)."""
        key = task.id if task is not None else f"{problem}: {safe_repr(item, 300)}"
        with self._lock:
            if key in self._unparseable_seen:
                return
            self._unparseable_seen[key] = None
            while len(self._unparseable_seen) > _UNPARSEABLE_REMEMBERED:  # bounded: forget the oldest first
                self._unparseable_seen.pop(next(iter(self._unparseable_seen)))
        if task is None:
            log.warning("skipping a task that cannot be shown (%s): %s", problem, safe_repr(item, 200))
        else:
            log.warning(
                "task %r could not be read in full (%s); it is shown without its details",
                clip(task.id),
                problem,
                extra={"task_id": clip(task.id)},
            )
        if self._on_unparseable is not None:
            self._on_unparseable(_problem_kind(problem))

    def approve(self, task_id: str) -> dict[str, Any]:
        """Approve a pending task."""
        return self._call("POST", f"/v1/lexi/tasks/{_segment(task_id)}/approve")

    def dismiss(self, task_id: str, reason: str | None = None) -> dict[str, Any]:
        """Dismiss a pending task, with an optional reason."""
        body = {"reason": reason} if reason else None
        return self._call("POST", f"/v1/lexi/tasks/{_segment(task_id)}/dismiss", json=body)

    def chat(self, message: str, *, conversation_id: str | None = None) -> ChatReply:
        """Send a message to Lexi; chat is not retried after it may have reached LeadLex (it costs credits)."""
        context = {"conversation_id": conversation_id} if conversation_id else {}
        data = self._call("POST", "/v1/lexi/chat", json={"message": message, "context": context}, retry=False)
        task_id = data.get("task_id")
        return ChatReply(
            response=str(data.get("response") or ""),
            task_id=str(task_id) if task_id else None,
            requires_approval=bool(data.get("requires_approval")),
            conversation_id=str(data["conversation_id"]) if data.get("conversation_id") else None,
        )

    def create_webhook(self, url: str, events: list[str], description: str | None = None) -> dict[str, Any]:
        """Register a webhook; the answer holds its signing secret, shown only this once."""
        body: dict[str, Any] = {"url": url, "events": events}
        if description:
            body["description"] = description
        webhook = self._call("POST", "/v1/webhooks", json=body, retry=False).get("webhook")
        if not isinstance(webhook, dict):
            raise TransientError("LeadLex answered without the webhook")
        return webhook

    def list_webhooks(self) -> list[dict[str, Any]]:
        """The registered webhooks (without secrets)."""
        data = self._call("GET", "/v1/webhooks")
        hooks = data.get("webhooks")
        return [h for h in hooks if isinstance(h, dict)] if isinstance(hooks, list) else []

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook."""
        self._call("DELETE", f"/v1/webhooks/{_segment(webhook_id)}")

    def find_task(self, task_id: str, statuses: Iterable[str] = STATUSES) -> Task | None:
        """Find a task's real state by listing each status in turn (LeadLex has no get-one endpoint)."""
        for status in statuses:
            for task in self.list_tasks(status):
                if task.id == task_id:
                    return task
        return None

    # --- plumbing --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, retry: bool = True, levels: int = 0, **kwargs: Any) -> dict[str, Any]:
        """Send one request, retrying transient failures with backoff, and return the `data` object."""
        attempts = tenacity.stop_after_attempt(self._attempts if retry else 1)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            stop=lambda state: attempts(state) or self._stop_when_wait_too_long(state),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: log.info(
                "LeadLex %s %r failed (%r); retrying in %.1fs",
                method,
                clip(path, 300),
                clip(str(state.outcome.exception()) if state.outcome else "?", 500),
                state.next_action.sleep if state.next_action else 0,
            ),
        )
        attempt_no = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempt_no += 1
                    return self._once(method, path, levels=levels, **kwargs)
        except LexiError as exc:
            exc.attempts = attempt_no
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Wait what LeadLex asked for on 429, else exponential backoff with jitter."""
        exc = state.outcome.exception() if state.outcome else None
        backoff = tenacity.wait_exponential_jitter(multiplier=0.5, max=8.0)(state)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return max(exc.retry_after, 0.0)
        return backoff

    def _stop_when_wait_too_long(self, state: tenacity.RetryCallState) -> bool:
        """Give up (rather than block) when LeadLex asks for a wait beyond what a caller can afford."""
        exc = state.outcome.exception() if state.outcome else None
        waited = state.seconds_since_start or 0.0
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return waited + exc.retry_after > self._max_wait
        return waited > self._max_wait

    def _once(self, method: str, path: str, *, levels: int = 0, **kwargs: Any) -> dict[str, Any]:
        """Send a request once and map its answer (decoded member by member `levels` deep if need be)."""
        self._pace()
        with self._lock:
            self.sent += 1
        try:
            response = self._http().request(method, path, headers=self._headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"LeadLex did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"could not reach LeadLex ({type(exc).__name__})") from exc
        self._note_budget(response)
        if self._on_response is not None:
            self._on_response(method, path, response.status_code)
        return self._parse(response, levels)

    def _pace(self) -> None:
        """Keep within the plan's per-minute limit: wait for a free slot, or raise when it is too far off."""
        limit = minute_limit(self._budget.limit)
        with self._lock:
            now = self._clock()
            while self._recent and self._recent[0] <= now - 60:
                self._recent.popleft()
            full = limit is not None and len(self._recent) >= limit
            wait = self._recent[0] + 60 - now if full else 0.0
            if wait > self._max_wait:
                raise RateLimited(f"the plan allows {limit} LeadLex calls a minute", retry_after=wait)
            if wait > 0:
                self._recent.popleft()  # that slot is taken over by this request once the wait is over
            self._recent.append(now + wait)
        if wait > 0:
            log.info("pacing LeadLex calls to %d a minute: waiting %.1fs", limit, wait)
            self._sleep(wait)

    def _note_budget(self, response: httpx.Response) -> None:
        """Remember the rate-limit headers of a response."""
        headers = response.headers
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        if remaining is None:
            return
        limit = _number(headers.get("X-RateLimit-Limit"))
        reset = _number(headers.get("X-RateLimit-Reset"))
        with self._lock:
            self._budget = Budget(
                limit=int(limit) if limit is not None else None,
                remaining=int(remaining),
                reset=reset,
                seen_at=self._clock(),
            )

    def _parse(self, response: httpx.Response, levels: int = 0) -> dict[str, Any]:
        """Return the `data` of a success envelope or raise the typed error of an error envelope."""
        status = response.status_code
        request_id = clip(response.headers.get("X-Request-ID"), 100) or None
        try:
            body = tolerant_json.loads(response.text, levels)
        except (ValueError, RecursionError):  # not JSON, or (levels 0) nested beyond Python's decoder
            body = None
        if not isinstance(body, dict):
            raise TransientError(
                f"LeadLex answered HTTP {status} without a JSON body", status=status, request_id=request_id
            )
        if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
            data = body.get("data")
            if not isinstance(data, dict):
                raise TransientError("LeadLex answered without a data object", status=status, request_id=request_id)
            return data
        raw_error = body.get("error")
        error = raw_error if isinstance(raw_error, dict) else {}
        # LeadLex's words end up in logs and in Slack: quoted and cut, so they cannot forge a log line.
        code = clip(_str(error.get("code")) or "unknown", 100)
        message = clip(_str(error.get("message")) or f"HTTP {status}", 500)
        text = f"LeadLex {status} {code}: {message}"
        if request_id:
            log.info("LeadLex error %s %r (request id %r)", status, code, request_id, extra={"request_id": request_id})
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            raise RateLimited(
                text, retry_after=self._retry_after(response), status=status, code=code, request_id=request_id
            )
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
            raise TransientError(text, status=status, code=code, request_id=request_id)
        error_class = (
            NotPending
            if status == HTTPStatus.BAD_REQUEST and code == "validation_error"
            else _ERRORS.get(status, LexiError)
        )
        raise error_class(text, status=status, code=code, request_id=request_id)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """The wait a 429 implies: Retry-After when sent, else the time to the daily reset when exhausted."""
        retry_after = _number(response.headers.get("Retry-After"))
        if retry_after is not None:
            return retry_after
        reset = _number(response.headers.get("X-RateLimit-Reset"))
        remaining = _number(response.headers.get("X-RateLimit-Remaining"))
        if reset is not None and remaining is not None and remaining <= 0:
            return max(reset - self._clock(), 0.0)
        return None


def _read_item(item: Any) -> tuple[Task | None, str | None]:
    """Read one listed task; parts the decoder could not read are dropped and named as the problem."""
    if isinstance(item, tolerant_json.Unreadable):
        return None, f"unreadable JSON ({item.reason})"
    if not isinstance(item, dict):
        return read_task(item)
    lost = sorted(key for key, value in item.items() if isinstance(value, tolerant_json.Unreadable))
    if not lost:
        return read_task(item)
    kept = {key: value for key, value in item.items() if key not in lost}
    task, _ = read_task({**kept, "metadata": {}})
    if task is not None:
        task = replace(task, description=task.description[:PLAIN_DESCRIPTION])
    return task, f"unreadable {', '.join(lost)} ({item[lost[0]].reason})"


def _problem_kind(problem: str) -> str:
    """A short, bounded label for a problem (the metric's label; the log says the details)."""
    if problem in ("no usable id", "not an object"):
        return "no_id"
    if "nested" in problem:
        return "too_deep"
    if problem == "unreadable created_at":
        return "created_at"
    return "unreadable"


def _str(value: Any) -> str:
    """Text of an error field, without ever raising."""
    try:
        return value if isinstance(value, str) else ("" if value is None else str(value))
    except ValueError:
        return ""


def _segment(task_id: str) -> str:
    """Quote a task id for use as one URL path segment."""
    return quote(task_id, safe="")
