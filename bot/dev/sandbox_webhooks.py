"""The sandbox's webhooks: registration checked as LeadLex checks it, and signed deliveries with retries."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
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

#: Events a webhook can subscribe to (LeadLex sends none for completed or failed tasks).
TASK_EVENTS = ("task.created", "task.updated", "task.approved", "task.dismissed")
#: Pauses before each redelivery: LeadLex's schedule, scaled down to seconds.
RETRY_DELAYS = (0.5, 2.0, 5.0)
#: The workspace id sent in every envelope.
WORKSPACE_ID = "ws_sandbox"


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


class WebhookRegistry:
    """Registered webhooks, and the background threads that deliver events to them."""

    def __init__(self, clock: Callable[[], float], stopping: threading.Event) -> None:
        #: Accept plain-HTTP and private or loopback URLs (LeadLex refuses them; local receivers need them).
        self.allow_private = False
        self.deliveries: list[Delivery] = []
        self._clock = clock
        self._stopping = stopping
        self._lock = threading.Lock()
        self._hooks: dict[str, dict[str, Any]] = {}
        self._workers: set[threading.Thread] = set()

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
        """Deliver `event` about `task` to every active subscribed webhook, each in its own thread."""
        with self._lock:
            hooks = [dict(hook) for hook in self._hooks.values() if hook["active"] and event in hook["events"]]
            if not hooks or self._stopping.is_set():
                return
            payload = {
                "event": event,
                "timestamp": signed_time(self._clock()),
                "workspace_id": WORKSPACE_ID,
                "data": {"task": deepcopy(task)},
            }
            for hook in hooks:
                worker = threading.Thread(
                    target=self._deliver, args=(hook, event, payload), name=f"sandbox-webhook-{hook['id']}", daemon=True
                )
                self._workers.add(worker)
                worker.start()

    def join(self, deadline: float) -> None:
        """Wait, until the time.monotonic() `deadline` at most, for deliveries under way to end."""
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    def _deliver(self, hook: dict[str, Any], event: str, payload: dict[str, Any]) -> None:
        """POST one signed event, retrying a failed or non-2xx delivery after each of RETRY_DELAYS."""
        body = dump(payload)
        signature = sign(hook["secret"], body)
        try:
            # trust_env=False: LeadLex would not go through this machine's proxy to reach the receiver.
            with httpx.Client(timeout=10.0, trust_env=False) as client:
                for attempt, pause in enumerate((0.0, *RETRY_DELAYS), start=1):
                    if self._stopping.wait(pause):
                        return
                    delivery_id = str(uuid.uuid4())
                    headers = {
                        "Content-Type": "application/json",
                        "User-Agent": "LeadLex-Webhook/1.0",
                        "X-LeadLex-Signature": signature,
                        "X-LeadLex-Timestamp": iso(self._clock()),
                        "X-LeadLex-Delivery-ID": delivery_id,
                    }
                    status, error = None, None
                    try:
                        status = client.post(hook["url"], content=body, headers=headers).status_code
                    except httpx.HTTPError as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    with self._lock:
                        self.deliveries.append(
                            Delivery(
                                hook["id"],
                                hook["url"],
                                event,
                                delivery_id,
                                attempt,
                                status,
                                error,
                                self._clock(),
                                payload,
                                body,
                            )
                        )
                    if status is not None and HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
                        return
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _check_url(self, value: Any) -> str:
        """Return a valid webhook URL (public HTTPS unless `allow_private`), or raise 400 invalid_url."""
        try:
            parts = urlsplit(value) if isinstance(value, str) else None
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parts = None
        schemes = ("https", "http") if self.allow_private else ("https",)
        if parts is None or parts.scheme not in schemes or not parts.hostname:
            raise ApiError(400, "invalid_url", "The webhook URL must be an absolute HTTPS URL")
        if not self.allow_private and _is_private(parts.hostname):
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
