"""The sandbox's webhooks: registration checked as LeadLex checks it, and signed deliveries with retries.

Each workspace has its own registry (webhooks, secrets, deliveries); one set of couriers delivers for all of them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import uuid
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.dev.sandbox_http import ApiError, dump
from bot.dev.sandbox_timers import Timers

#: Events a webhook can subscribe to (LeadLex sends none for completed or failed tasks).
TASK_EVENTS = ("task.created", "task.updated", "task.approved", "task.dismissed")
#: Pauses before each redelivery: LeadLex's schedule, scaled down to seconds.
RETRY_DELAYS = (0.5, 2.0, 5.0)
#: The id of the sandbox's default workspace, sent in the envelope of its events.
WORKSPACE_ID = "ws_sandbox"
#: Threads that deliver webhook events, shared by every workspace of a sandbox.
DELIVERY_THREADS = 16


@dataclass(frozen=True)
class Delivery:
    """One delivery attempt; `status` is None when the receiver could not be reached."""

    webhook_id: str
    url: str
    event: str
    delivery_id: str
    attempt: int
    status: int | None
    error: str | None
    at: float
    payload: dict[str, Any]
    body: bytes = b""  # the exact bytes signed and sent


def iso(seconds: float) -> str:
    """Format Unix seconds as an ISO-8601 UTC timestamp ending in Z."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def signed_time(seconds: float) -> str:
    """Format Unix seconds as the envelope's signed `timestamp`: ISO-8601 UTC to the millisecond.

    Finer than whole seconds so that receivers can order two edits made within one second.
    """
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(secret: str, body: bytes) -> str:
    """Return the X-LeadLex-Signature value of a raw body: sha256=<hex HMAC-SHA256 keyed with the secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Parcel:
    """One event on its way to one webhook: what each attempt sends, and where attempts are recorded."""

    hook: dict[str, Any]
    event: str
    payload: dict[str, Any]
    body: bytes
    record: Callable[[Delivery], None]


class Couriers:
    """Delivers every workspace's webhook events: a few shared threads and one HTTP client, not a thread per event."""

    def __init__(self, clock: Callable[[], float], stopping: threading.Event, threads: int = DELIVERY_THREADS) -> None:
        #: Accept plain-HTTP and private or loopback URLs (LeadLex refuses them; local receivers need them).
        self.allow_private = False
        self._clock = clock
        self._stopping = stopping
        self._timers = Timers("sandbox-webhook", threads)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def send(
        self, hook: dict[str, Any], event: str, payload: dict[str, Any], record: Callable[[Delivery], None]
    ) -> None:
        """Deliver one event to one webhook now, then retry a failed delivery after each of RETRY_DELAYS."""
        parcel = _Parcel(hook, event, payload, dump(payload), record)
        self._timers.after(0.0, lambda: self._attempt(parcel, 1))

    def join(self, deadline: float) -> None:
        """Drop the retries not yet due and wait, until the time.monotonic() `deadline` at most, for deliveries."""
        self._timers.stop(deadline)

    def _http(self) -> httpx.Client:
        """The client every delivery shares (created on the first), so that its SSL context is made once."""
        with self._client_lock:
            if self._client is None:
                # trust_env=False: LeadLex would not go through this machine's proxy to reach the receiver. No
                # keep-alive: each delivery opens its connection, so none fails on one the receiver closed while idle.
                self._client = httpx.Client(
                    timeout=10.0, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
                )
            return self._client

    def _attempt(self, parcel: _Parcel, attempt: int) -> None:
        """POST one signed attempt, record it, and schedule the next one when it failed and retries remain."""
        if self._stopping.is_set():
            return
        hook, event, payload, body = parcel.hook, parcel.event, parcel.payload, parcel.body
        delivery_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "LeadLex-Webhook/1.0",
            "X-LeadLex-Signature": sign(hook["secret"], body),
            "X-LeadLex-Timestamp": iso(self._clock()),
            "X-LeadLex-Delivery-ID": delivery_id,
        }
        status, error = None, None
        try:
            status = self._http().post(hook["url"], content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        parcel.record(
            Delivery(hook["id"], hook["url"], event, delivery_id, attempt, status, error, self._clock(), payload, body)
        )
        if status is not None and HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
            return
        if attempt <= len(RETRY_DELAYS):
            self._timers.after(RETRY_DELAYS[attempt - 1], lambda: self._attempt(parcel, attempt + 1))


class WebhookRegistry:
    """One workspace's registered webhooks; its events go out through the sandbox's shared couriers."""

    def __init__(self, couriers: Couriers, workspace_id: str, clock: Callable[[], float]) -> None:
        #: Every delivery attempt of this workspace's events, in order.
        self.deliveries: list[Delivery] = []
        self._couriers = couriers
        self._workspace_id = workspace_id
        self._clock = clock
        self._lock = threading.Lock()
        self._hooks: dict[str, dict[str, Any]] = {}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a webhook from a request body; return it with its secret, the only time it is shown."""
        missing = [name for name in ("url", "events") if body.get(name) is None]
        if missing:
            raise ApiError(
                400, "missing_required_field", f"Missing required field: {', '.join(missing)}", {"fields": missing}
            )
        hook: dict[str, Any] = {
            "id": f"wh_{uuid.uuid4().hex[:16]}",
            "url": self._check_url(body["url"]),
            "events": _check_events(body["events"]),
            "active": _check_active(body.get("active", True)),
            "description": _check_description(body.get("description")),
            "secret": f"whsec_{secrets.token_hex(24)}",
            "created_at": iso(self._clock()),
        }
        with self._lock:
            self._refuse_duplicate(hook["url"], hook["id"])
            self._hooks[hook["id"]] = hook
            return dict(hook)

    def registered(self) -> list[dict[str, Any]]:
        """Return the registered webhooks, without secrets."""
        with self._lock:
            return [_public(hook) for hook in self._hooks.values()]

    def update(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Change a webhook's url, events, active flag or description and return it without its secret."""
        checks: dict[str, Callable[[Any], Any]] = {
            "url": self._check_url,
            "events": _check_events,
            "active": _check_active,
            "description": _check_description,
        }
        changes = {name: check(body[name]) for name, check in checks.items() if name in body}
        with self._lock:
            hook = self._hooks.get(webhook_id)
            if hook is None:
                raise ApiError(404, "not_found", f"Webhook not found: {webhook_id}")
            if "url" in changes:
                self._refuse_duplicate(changes["url"], webhook_id)
            hook.update(changes)
            return _public(hook)

    def delete(self, webhook_id: str) -> None:
        """Remove a webhook."""
        with self._lock:
            if self._hooks.pop(webhook_id, None) is None:
                raise ApiError(404, "not_found", f"Webhook not found: {webhook_id}")

    def emit(self, event: str, task: dict[str, Any]) -> None:
        """Deliver `event` about `task` to every active subscribed webhook, without waiting for any delivery."""
        with self._lock:
            hooks = [dict(hook) for hook in self._hooks.values() if hook["active"] and event in hook["events"]]
        if not hooks:
            return
        payload = {
            "event": event,
            "timestamp": signed_time(self._clock()),
            "workspace_id": self._workspace_id,
            "data": {"task": deepcopy(task)},
        }
        for hook in hooks:
            self._couriers.send(hook, event, payload, self._record)

    def _record(self, delivery: Delivery) -> None:
        """Keep one delivery attempt in this workspace's list."""
        with self._lock:
            self.deliveries.append(delivery)

    def _check_url(self, value: Any) -> str:
        """Return a valid webhook URL (public HTTPS unless `allow_private`), or raise 400 invalid_url."""
        try:
            parts = urlsplit(value) if isinstance(value, str) else None
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = None
        allow_private = self._couriers.allow_private
        schemes = ("https", "http") if allow_private else ("https",)
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            raise ApiError(400, "invalid_url", "The webhook URL must be an absolute HTTPS URL")
        if not allow_private and _is_private(parts.hostname):
            raise ApiError(400, "invalid_url", "The webhook URL must point to a public address")
        return str(value)

    def _refuse_duplicate(self, url: str, webhook_id: str) -> None:
        """Raise 409 duplicate_webhook when another webhook already has this URL (caller holds the lock)."""
        if any(hook["url"] == url and hook["id"] != webhook_id for hook in self._hooks.values()):
            raise ApiError(409, "duplicate_webhook", "A webhook with this URL already exists")


def _check_events(value: Any) -> list[str]:
    """Return a valid, de-duplicated list of events; raise 400 invalid_events otherwise."""
    if not isinstance(value, list) or not value or not all(event in TASK_EVENTS for event in value):
        allowed = ", ".join(TASK_EVENTS)
        raise ApiError(
            400, "invalid_events", f"events must be a non-empty subset of: {allowed}", {"allowed": list(TASK_EVENTS)}
        )
    return list(dict.fromkeys(value))


def _check_active(value: Any) -> bool:
    """Return the `active` flag; raise 400 when it is not a boolean."""
    if not isinstance(value, bool):
        raise ApiError(400, "validation_error", "active must be a boolean", {"field": "active"})
    return value


def _check_description(value: Any) -> str | None:
    """Return a description (text or null); raise 400 otherwise."""
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "validation_error", "description must be a string", {"field": "description"})
    return value


def _is_private(host: str) -> bool:
    """Tell whether a host is local or private, judged by its name or address alone (no DNS lookup)."""
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _public(hook: dict[str, Any]) -> dict[str, Any]:
    """Return a webhook as listed: without its secret."""
    return {name: value for name, value in hook.items() if name != "secret"}
