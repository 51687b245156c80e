"""LeadLex webhooks: verify each delivery, answer at once, and apply it idempotently by task id and state.

Deliveries can be retried, replayed or reordered. Handling therefore never goes backwards in a task's
lifecycle (pending → approved | dismissed; approved → completed | failed), never touches a decision in
progress in Slack, and remembers tasks decided before they were announced so a late `task.created` posts nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.announcer import Announcer
from bot.db.store import Store
from bot.lexi.models import Task, parse_time
from bot.messenger import Messenger
from bot.metrics import Metrics

log = logging.getLogger(__name__)

TASK_EVENTS = ("task.created", "task.updated", "task.approved", "task.dismissed")
#: How far a delivery's timestamp may be from our clock.
MAX_SKEW = timedelta(minutes=5)
#: The largest body we read (LeadLex sends one task per delivery).
MAX_BODY = 1_000_000
#: For each state LeadLex can report, the states of ours it may move a record from: only forwards, and
#: never from `deciding` (a click in progress records its own outcome, with who decided).
FORWARD: dict[str, tuple[str, ...]] = {
    "approved": ("announcing", "pending"),
    "dismissed": ("announcing", "pending"),
    "completed": ("announcing", "pending", "approved"),
    "failed": ("announcing", "pending", "approved"),
}


def verify(secret: str, body: bytes, signature: str | None, timestamp: str | None, now: datetime) -> str | None:
    """Check a delivery's signature (constant time) and timestamp; the reason it is refused, or None."""
    if not signature or not signature.startswith("sha256="):
        return "missing or malformed X-LeadLex-Signature"
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "signature does not match"
    sent = parse_time(timestamp)
    if sent is None:
        return "missing or malformed X-LeadLex-Timestamp"
    if abs(now - sent) > MAX_SKEW:
        return "timestamp more than 5 minutes off"
    return None


def parse_delivery(body: bytes) -> tuple[str, Task | None]:
    """The event name and task of a delivery body (`data.task`, or `data` being the task itself)."""
    envelope = json.loads(body)
    if not isinstance(envelope, dict):
        raise ValueError("the body is not a JSON object")
    event = str(envelope.get("event") or "")
    data = envelope.get("data")
    raw = data.get("task", data) if isinstance(data, dict) else None
    return event, Task.from_api(raw)


class PerKeySerial:
    """Runs jobs for one key one at a time, in the order they arrived; different keys run in parallel."""

    def __init__(self, submit: Callable[..., Any]) -> None:
        self._submit = submit
        self._queues: dict[str, deque[tuple[Callable[..., Any], tuple[Any, ...]]]] = {}
        self._lock = threading.Lock()

    def run(self, key: str, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)` behind earlier jobs of the same key."""
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:
                queue.append((fn, args))
                return
            self._queues[key] = deque([(fn, args)])
        self._submit(self._drain, key)

    def _drain(self, key: str) -> None:
        """Run the key's jobs until its queue is empty."""
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                fn, args = queue.popleft()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one failed delivery must not block the task's later ones
                log.exception("webhook handling failed for task %s", key)


@dataclass(frozen=True)
class Receipt:
    """What the HTTP handler answers."""

    status: int
    body: dict[str, Any]


class WebhookReceiver:
    """Turns verified deliveries into announcements and card updates."""

    def __init__(
        self,
        secret: str,
        store: Store,
        announcer: Announcer,
        messenger: Messenger,
        *,
        submit: Callable[..., Any],
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._secret = secret
        self._store = store
        self._announcer = announcer
        self._messenger = messenger
        self._serial = PerKeySerial(submit)
        self._clock = clock
        self.accepted = 0
        self.refused = 0
        self.last_delivery: datetime | None = None

    def receive(self, body: bytes, headers: dict[str, str]) -> Receipt:
        """Verify a delivery and queue its handling; answers within milliseconds, refuses without side effects."""
        reason = verify(
            self._secret, body, headers.get("x-leadlex-signature"), headers.get("x-leadlex-timestamp"), self._clock()
        )
        if reason is not None:
            self._count("refused")
            log.warning("refused a webhook delivery (%s; delivery %s)", reason, headers.get("x-leadlex-delivery-id"))
            return Receipt(401, {"ok": False, "error": reason})
        try:
            event, task = parse_delivery(body)
        except ValueError:
            self._count("refused")
            return Receipt(400, {"ok": False, "error": "the body is not a JSON delivery"})
        self._count("accepted")
        self.last_delivery = self._clock()
        if event not in TASK_EVENTS or task is None:
            log.info("ignoring webhook event %r", event)
            return Receipt(200, {"ok": True, "ignored": True})
        self._serial.run(task.id, self.apply, event, task)  # in arrival order for each task
        return Receipt(200, {"ok": True})

    def _count(self, result: str) -> None:
        """Count a delivery as accepted or refused."""
        if result == "accepted":
            self.accepted += 1
        else:
            self.refused += 1
        if self._metrics is not None:
            self._metrics.webhooks.labels(result).inc()

    def apply(self, event: str, task: Task) -> None:
        """Bring our record and the card to what the delivery says, if that moves the task forwards."""
        row = self._store.get(task.id)
        if task.status == "pending":
            if row is None:
                self._announcer.announce(task)
            elif event == "task.updated" and self._store.update_payload(task) is not None:
                self._messenger.sync_card(task.id)
            return
        from_states = FORWARD.get(task.status)
        if from_states is None:
            return
        if row is None:
            self._store.remember_unannounced(task, self._announcer.channel, task.status)
            return
        changed = self._store.apply_lexi_state(task.id, task.status, from_states=from_states)
        if changed is not None:
            log.info("task %s is now %s (webhook %s)", task.id, task.status, event, extra={"task_id": task.id})
            self._messenger.sync_card(task.id)
            if task.status in ("completed", "failed"):
                self._messenger.reply_final(changed)

