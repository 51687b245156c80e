"""In-memory stand-ins for what bot.core talks to: LeadLex, Slack (the messenger), the announcer.

They are for unit tests that need no HTTP: each fake implements the protocol of the calls core makes, and records
them.
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bot.db import migrate
from bot.db.store import Store, TaskRow
from bot.errors import LexiError, NotFound, NotPending
from bot.lexi.models import STATUSES, Task

CHANNEL = "C0LEXI"


class LeadLexCalls(Protocol):
    """The LeadLex calls the decider and the reconciler make (bot.lexi.client.LexiClient)."""

    sent: int

    def approve(self, task_id: str) -> dict[str, Any]:
        """Approve a pending task."""
        ...

    def dismiss(self, task_id: str, reason: str | None = None) -> dict[str, Any]:
        """Dismiss a pending task."""
        ...

    def find_task(self, task_id: str, statuses: Iterable[str] = STATUSES) -> Task | None:
        """A task's current state, or None when LeadLex no longer has it."""
        ...

    def list_tasks(self, status: str) -> list[Task]:
        """The tasks in one status."""
        ...


class CardsAndReplies(Protocol):
    """The Slack side core uses (bot.slack.messenger.Messenger)."""

    def sync_card(self, task_id: str, row: TaskRow | None = None) -> None:
        """Make a task's card show its record (`row`: as a transaction just left it)."""
        ...

    def reply_final(self, row: TaskRow) -> None:
        """Post the thread reply of a completed or failed task."""
        ...

    def tell(self, channel: str, user: str, text: str) -> bool:
        """Say something privately to one person."""
        ...


class FakeLeadLex:
    """LeadLex in memory: tasks by id, every approve / dismiss recorded, errors to raise on demand."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        #: Raised by the next approve/dismiss of that task id (the call is still recorded).
        self.fail: dict[str, LexiError] = {}
        self.sent = 0
        self._lock = threading.Lock()

    def add(self, task_id: str, status: str = "pending", type_: str = "contact_update") -> Task:
        """Put a task in LeadLex."""
        task = Task(id=task_id, type=type_, status=status, description=f"task {task_id}")
        self.tasks[task_id] = task
        return task

    def set_status(self, task_id: str, status: str) -> None:
        """Change a task's status, as someone in LeadLex (or LeadLex itself) does."""
        self.tasks[task_id] = dataclasses.replace(self.tasks[task_id], status=status)

    def _decide(self, kind: str, task_id: str, reason: str | None, status: str) -> dict[str, Any]:
        """Record a decision call and carry it out like LeadLex."""
        with self._lock:
            self.sent += 1
            self.calls.append((kind, task_id, reason))
            if task_id in self.fail:
                raise self.fail.pop(task_id)
            task = self.tasks.get(task_id)
            if task is None:
                raise NotFound("not found", status=404, code="not_found")
            if task.status != "pending":
                raise NotPending("the task is not pending", status=400, code="validation_error")
            self.set_status(task_id, status)
            return self.tasks[task_id].to_api()

    def approve(self, task_id: str) -> dict[str, Any]:
        """Approve a pending task."""
        return self._decide("approve", task_id, None, "approved")

    def dismiss(self, task_id: str, reason: str | None = None) -> dict[str, Any]:
        """Dismiss a pending task."""
        return self._decide("dismiss", task_id, reason, "dismissed")

    def find_task(
        self,
        task_id: str,
        statuses: Iterable[str] = STATUSES,  # noqa: ARG002 - the protocol's; the fake keeps every task in one place
    ) -> Task | None:
        """A task's current state, or None when LeadLex no longer has it."""
        self.sent += 1
        return self.tasks.get(task_id)

    def list_tasks(self, status: str) -> list[Task]:
        """The tasks in one status."""
        self.sent += 1
        return [t for t in self.tasks.values() if t.status == status]


class FakeMessenger:
    """Slack in memory: which cards were updated (showing which state), which replies posted, who was told what."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.cards: list[tuple[str, str]] = []
        self.replies: list[tuple[str, str]] = []
        self.told: list[tuple[str, str]] = []

    def sync_card(self, task_id: str, row: TaskRow | None = None) -> None:
        """Note the state the card now shows (the record given, or read now)."""
        row = row or self._store.get(task_id)
        self.cards.append((task_id, row.state if row is not None else "?"))

    def reply_final(self, row: TaskRow) -> None:
        """Post the one thread reply (claimed in the store, as the real messenger does)."""
        if row.message_ts is not None and self._store.claim_reply(row.task_id, row.state):
            self.replies.append((row.task_id, row.state))

    def tell(self, channel: str, user: str, text: str) -> bool:  # noqa: ARG002 - the protocol's; one channel here
        """Note a private message."""
        self.told.append((user, text))
        return True


class FakeAnnouncer:
    """The announcer's side the reconciler and the webhook receiver use: what they queued for announcing."""

    class _Policy:
        """A policy of one channel."""

        def channels(self) -> list[str]:
            """The channels cards go to."""
            return [CHANNEL]

    def __init__(self) -> None:
        self.channel = CHANNEL
        self.policy = self._Policy()
        self.restored: set[str] = set()
        self.backlog = None
        self.queued: list[str] = []

    def enqueue(self, task: Task, *, signed_at: datetime | None = None) -> bool:  # noqa: ARG002 - callers pass it; unused here
        """Queue a task for its announcement."""
        self.queued.append(task.id)
        return True

    def restore(self, channels: list[str]) -> None:
        """Nothing to restore."""

    def recover(self) -> None:
        """Nothing to recover."""

    def recover_copies(self) -> None:
        """No copy to recover."""


@contextmanager
def sqlite_store(folder: Path) -> Iterator[Store]:
    """A real, migrated Store on a temporary SQLite file."""
    store = Store.from_url(f"sqlite:///{folder}/unit.db")
    migrate.upgrade(store.engine)
    try:
        yield store
    finally:
        store.close()


def announced(store: Store, lexi: FakeLeadLex, task_id: str, status: str = "pending") -> None:
    """A task in LeadLex whose card is posted: its record is pending."""
    task = lexi.add(task_id, status="pending")
    assert store.claim_announcement(task, CHANNEL)
    store.record_message(task_id, CHANNEL, f"100.{zlib.crc32(task_id.encode())}", rendered_version=1)
    if status != "pending":
        lexi.set_status(task_id, status)
