"""Finding a task: the bot's record of it, or LeadLex's list it is in (LeadLex has no get-one endpoint).

The /lexi subcommands look tasks up through this, not through the store and LeadLex's client themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.db.store import Store, TaskRow
from bot.lexi.client import LexiClient
from bot.lexi.models import STATUSES, Task, TaskState


class TaskLookup:
    """Finds tasks the bot knows (its records) or LeadLex lists (one list call per status asked)."""

    def __init__(self, store: Store, lexi: LexiClient) -> None:
        self._store = store
        self._lexi = lexi

    def record(self, task_id: str) -> TaskRow | None:
        """The bot's record of a task, or None when it has none."""
        return self._store.get(task_id)

    def known(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these task ids the bot has a record of."""
        return self._store.known(task_ids)

    def waiting(self, limit: int) -> tuple[list[TaskRow], int]:
        """The bot's records of tasks waiting for a decision (at most `limit`), and how many wait in all.

        Read from the database alone: answering "what is waiting?" costs no LeadLex call.
        """
        return self._store.in_states((TaskState.PENDING,), limit=limit), self._store.count_in_state(TaskState.PENDING)

    def listed(self, status: str = TaskState.PENDING) -> list[Task]:
        """The tasks LeadLex lists in one status."""
        return self._lexi.list_tasks(status)

    def pending(self, task_id: str) -> Task | None:
        """The task as LeadLex lists it among the pending ones, or None when it is not pending there."""
        return self._lexi.find_task(task_id, (TaskState.PENDING,))

    def decided(self, task_id: str) -> Task | None:
        """The task as LeadLex lists it in any state past pending, or None when it is in none of them."""
        return self._lexi.find_task(task_id, STATUSES[1:])
