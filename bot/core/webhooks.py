"""LeadLex webhooks: verify each delivery, answer at once, and apply it idempotently by task id and state.

Deliveries can be retried, replayed or reordered. Handling therefore never goes backwards in a task's
lifecycle (pending → approved | dismissed; approved → completed | failed), never touches a decision in
progress in Slack, and remembers tasks decided before they were announced so a late `task.created` posts nothing.

What is proven, and how a delivery is answered:
- 401: not proven authentic and fresh. The HMAC of the raw body does not match (checked first, before the
  body is parsed), or the envelope's signed `timestamp` is missing, unreadable, older than MAX_AGE or more
  than MAX_AHEAD in the future. The `X-LeadLex-Timestamp` header is not signed, so it decides nothing.
- 400: signed and fresh, but not a well-formed delivery (not UTF-8 JSON, not an object, nested too deeply,
  NaN or infinite numbers, text that cannot be stored, `event` not text, `data` not an object, a task that
  is not an object or has no usable id). The answer says why.
- 200 `{"ok": true, "duplicate": true}`: this exact body was already accepted (a replay cache of body
  hashes, in the database so every replica shares it); nothing is done again, and LeadLex stops retrying.
- 200 `{"ok": true, "ignored": true}`: a well-formed envelope of an event the bot does not handle.
Content is ordered by its signed time: per task the bot keeps the signed time of the content last applied
(`content_signed_at`) and drops anything signed earlier, so a late retry never rolls a task back.
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

from sqlalchemy.exc import SQLAlchemyError

from bot.core.announcer import Announcer
from bot.core.apply import StateApplier
from bot.db.store import Store
from bot.lexi.models import Task, TaskState, parse_time
from bot.ops.metrics import Metrics
from bot.slack.messenger import Messenger

log = logging.getLogger(__name__)

TASK_EVENTS = ("task.created", "task.updated", "task.approved", "task.dismissed")
#: The oldest signed envelope accepted. LeadLex retries about 5 s, 30 s, 5 min, 1 h and 6 h after a failed
#: attempt, so its last retry leaves about 7 h 06 min after the event; half an hour more covers slow attempts.
MAX_AGE = timedelta(hours=7, minutes=30)
#: How far ahead of our clock a signed envelope may be (clock skew between LeadLex and us).
MAX_AHEAD = timedelta(minutes=5)
#: The deepest nesting accepted: LeadLex tasks are shallow, and deeper values would strain every renderer.
MAX_DEPTH = 64
#: The longest task id accepted (the width of tasks.task_id).
MAX_ID = 255
#: How much of a text taken from a delivery is logged.
LOG_TEXT = 100
#: For each state LeadLex can report, the states of ours it may move a record from: only forwards, and
#: never from `deciding` (a click in progress records its own outcome, with who decided).
FORWARD: dict[str, tuple[str, ...]] = {
    TaskState.APPROVED: (TaskState.ANNOUNCING, TaskState.PENDING),
    TaskState.DISMISSED: (TaskState.ANNOUNCING, TaskState.PENDING),
    TaskState.COMPLETED: (TaskState.ANNOUNCING, TaskState.PENDING, TaskState.APPROVED),
    TaskState.FAILED: (TaskState.ANNOUNCING, TaskState.PENDING, TaskState.APPROVED),
}


class Refused(Exception):
    """A delivery that is not applied: the HTTP status and the reason told to the sender."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """A verified, well-formed delivery: its event, the time LeadLex signed it, its task, its body's hash."""

    event: str
    signed_at: datetime
    task: Task | None
    digest: str


def clip(value: Any) -> str:
    """A text from a request, cut short for a log line (log it with %r, so newlines stay escaped)."""
    text = value if isinstance(value, str) else str(value)
    return text[:LOG_TEXT] + "…" if len(text) > LOG_TEXT else text


def verify(secret: str, body: bytes, signature: str | None) -> str | None:
    """Check a delivery's signature over the raw body (constant time); the reason it is refused, or None."""
    if not signature or not signature.startswith("sha256="):
        return "missing or malformed X-LeadLex-Signature"
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "signature does not match"
    return None


def _no_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which JSON does not allow and no database column takes."""
    raise Refused(400, f"the body holds {name}, which is not a JSON number")


def _finite(text: str) -> float:
    """Parse a JSON float, refusing one that overflows to infinity (1e999)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise Refused(400, "the body holds a number too large to represent")
    return value


def _check_shape(value: Any) -> None:
    """Refuse values nested deeper than MAX_DEPTH and text that cannot be stored (NUL, lone surrogates).

    Iterative, so that checking a hostile value cannot itself exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Refused(400, f"the body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise Refused(400, "the body holds a NUL character")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise Refused(400, "the body holds text that is not valid Unicode") from None


def parse_envelope(body: bytes) -> dict[str, Any]:
    """The envelope object of a body whose signature matched; Refused(400) when it is not one."""
    try:
        envelope = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except Refused:
        raise
    except RecursionError:
        raise Refused(400, "the body is nested too deeply") from None
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8") from None
    except json.JSONDecodeError:
        raise Refused(400, "the body is not JSON") from None
    except ValueError:  # an integer of more digits than Python converts
        raise Refused(400, "the body holds a number too large to read") from None
    if not isinstance(envelope, dict):
        raise Refused(400, "the body is not a JSON object")
    _check_shape(envelope)
    return envelope


def signed_time(envelope: dict[str, Any], now: datetime) -> datetime:
    """The envelope's signed `timestamp`; Refused(401) when it is missing, unreadable, too old or ahead."""
    try:
        signed = parse_time(envelope.get("timestamp"))
    except Exception:  # noqa: BLE001 - an unreadable time (e.g. one that overflows) is no time at all
        signed = None
    if signed is None:
        raise Refused(401, "missing or malformed signed timestamp in the body")
    if now - signed > MAX_AGE:
        raise Refused(401, "signed timestamp is older than LeadLex's retries")
    if signed - now > MAX_AHEAD:
        raise Refused(401, "signed timestamp is more than 5 minutes in the future")
    return signed


def delivered_task(envelope: dict[str, Any]) -> Task:
    """The task of a task event (`data.task`, or `data` being the task itself); Refused(400) when unusable."""
    data = envelope["data"]
    raw = data.get("task", data)
    if not isinstance(raw, dict):
        raise Refused(400, "data.task is not an object")
    try:
        task = Task.from_api(raw)
    except Exception:  # noqa: BLE001 - whatever the parser cannot read is malformed, not a server error
        raise Refused(400, "the task could not be read") from None
    if task is None:
        raise Refused(400, "the task has no usable id")
    if len(task.id) > MAX_ID:
        raise Refused(400, f"the task id is longer than {MAX_ID} characters")
    return task


def parse_delivery(body: bytes, now: datetime) -> Delivery:
    """Read a delivery whose signature matched: its envelope, signed time and task; Refused when it is unusable."""
    envelope = parse_envelope(body)
    signed_at = signed_time(envelope, now)
    event = envelope.get("event")
    if not isinstance(event, str):
        raise Refused(400, "event is not a string")
    if not isinstance(envelope.get("data"), dict):
        raise Refused(400, "data is not an object")
    task = delivered_task(envelope) if event in TASK_EVENTS else None
    return Delivery(event, signed_at, task, hashlib.sha256(body).hexdigest())


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
        try:
            self._submit(self._drain, key)
        except Exception:
            with self._lock:  # nothing will drain this key: let a later job start afresh
                self._queues.pop(key, None)
            raise

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
            except Exception:
                log.exception("webhook handling failed for task %r", clip(key))


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
        self._applier = StateApplier(store, messenger, logger=log)
        self._serial = PerKeySerial(submit)
        self._clock = clock
        self.accepted = 0
        self.refused = 0
        self.last_delivery: datetime | None = None

    def receive(self, body: bytes, headers: dict[str, str]) -> Receipt:
        """Verify a delivery and queue its handling; answers within milliseconds, refuses without side effects.

        Never raises: whatever a signed body holds is answered 4xx, and only an unreachable database 503
        (so that LeadLex retries).
        """
        delivery_id = headers.get("x-leadlex-delivery-id") or ""
        reason = verify(self._secret, body, headers.get("x-leadlex-signature"))
        if reason is not None:  # before the body is parsed at all
            return self._refuse(Refused(401, reason), delivery_id)
        try:
            delivery = parse_delivery(body, self._clock())
        except Refused as refused:
            return self._refuse(refused, delivery_id)
        except Exception:
            log.exception("could not read a signed webhook delivery (delivery %r)", clip(delivery_id))
            return self._refuse(Refused(400, "the body is not a usable delivery"), delivery_id)
        return self._accept(delivery, delivery_id)

    def _accept(self, delivery: Delivery, delivery_id: str) -> Receipt:
        """Queue the handling of a verified, readable delivery (`receive`), unless it repeats one or cannot wait."""
        task = delivery.task
        if task is None:
            self._count("accepted")
            log.info("ignoring webhook event %r (delivery %r)", clip(delivery.event), clip(delivery_id))
            return Receipt(200, {"ok": True, "ignored": True})
        backlog = self._announcer.backlog
        if task.status == TaskState.PENDING and backlog is not None and backlog.full and task.id not in backlog:
            # Accepting it would leave it unannounced until the next full poll: LeadLex retries it instead.
            log.warning(
                "answered a webhook delivery 503: the announcement backlog is full (delivery %r)", clip(delivery_id)
            )
            return Receipt(503, {"ok": False, "error": "the bot is busy; retry later"})
        key = f"webhook:{delivery.digest}"
        try:
            # Kept until the signed timestamp itself would be refused: past that, the body cannot come back.
            first = self._store.first_sighting(key, delivery.signed_at + MAX_AGE)
        except SQLAlchemyError as exc:
            log.warning("could not check a webhook delivery against the replay cache: %s", type(exc).__name__)
            return Receipt(503, {"ok": False, "error": "the bot's database is unavailable; retry later"})
        if not first:
            self._count("duplicate")
            log.info(
                "webhook delivery %r repeats a body already accepted (%r for task %r); nothing to do",
                clip(delivery_id),
                clip(delivery.event),
                clip(task.id),
            )
            return Receipt(200, {"ok": True, "duplicate": True})
        try:
            self._serial.run(task.id, self.apply, delivery.event, task, delivery.signed_at)  # arrival order per task
        except RuntimeError:  # the queue is full or shutting down (QueueFull is one): LeadLex retries later
            self._store.forget_sighting(key)
            return Receipt(503, {"ok": False, "error": "the bot is busy or shutting down; retry later"})
        self._count("accepted")
        self.last_delivery = self._clock()
        return Receipt(200, {"ok": True})

    def _refuse(self, refused: Refused, delivery_id: str) -> Receipt:
        """Count, log (quoted and cut short) and answer a refused delivery."""
        self._count("refused")
        log.warning("refused a webhook delivery (%s; delivery %r)", refused.reason, clip(delivery_id))
        return Receipt(refused.status, {"ok": False, "error": refused.reason})

    def _count(self, result: str) -> None:
        """Count a delivery as accepted, refused or duplicate."""
        if result == "accepted":
            self.accepted += 1
        elif result == "refused":
            self.refused += 1
        if self._metrics is not None:
            self._metrics.webhooks.labels(result).inc()

    def apply(self, event: str, task: Task, signed_at: datetime | None = None) -> None:
        """Bring our record and the card to what the delivery says, if that moves the task forwards.

        `signed_at`, the envelope's signed time: content signed before what the record already holds is
        dropped (None: unknown, nothing to compare).
        """
        row = self._store.get(task.id)
        if task.status == TaskState.PENDING:
            if row is None:  # new, or still waiting in the backlog: it is posted (with the newest content) in turn
                if not self._announcer.enqueue(task, signed_at=signed_at):
                    log.warning(
                        "task %r waits for the next full poll: the announcement backlog is full",
                        clip(task.id),
                        extra={"task_id": clip(task.id)},
                    )
                return
            if event == "task.updated":
                if self._store.update_payload(task, signed_at=signed_at) is not None:
                    self._messenger.sync_card(task.id)
                else:
                    log.info(
                        "task %r: %r not applied (decided, or older than its content)",
                        clip(task.id),
                        clip(event),
                        extra={"task_id": clip(task.id)},
                    )
            return
        from_states = FORWARD.get(task.status)
        if from_states is None:
            return
        if row is None:
            self._store.remember_unannounced(task, self._announcer.channel, task.status, signed_at=signed_at)
            return
        self._applier.apply(
            task.id,
            task.status,
            from_states=from_states,
            signed_at=signed_at,
            said=f"(webhook {clip(event)!r})",
            shown_id=clip(task.id),
        )
