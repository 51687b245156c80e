"""Applying LeadLex's state.

The one way the poller, the webhook receiver and the decider record a state LeadLex reports, update the card, and
post the thread reply of a final state (completed / failed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from bot.db.store import Store, TaskRow
from bot.lexi.models import STATUSES, Task, TaskState
from bot.ops.logs import clip
from bot.slack.messenger import Messenger

log = logging.getLogger(__name__)

#: Runs a Slack job now or later: (key it waits under, the job, its arguments).
Later = Callable[..., None]
#: The states whose thread reply is posted once the record reaches them.
FINAL = (TaskState.COMPLETED, TaskState.FAILED)


def now(_key: str, fn: Callable[..., object], *args: object) -> None:
    """Run a Slack job at once (the default of `StateApplier`: no queue)."""
    fn(*args)


class StateApplier:
    """Moves a record to the state LeadLex reports (only from `from_states`), then shows it in Slack."""

    def __init__(
        self,
        store: Store,
        messenger: Messenger,
        *,
        later: Later = now,
        sync_card: Callable[[str], None] | None = None,
        logger: logging.Logger = log,
    ) -> None:
        """`later` runs the card update and the thread reply (a keyed queue, or at once).

        `sync_card` replaces the messenger's card update (e.g. one that logs Slack's failure instead of raising
        it); `logger`: where the change is logged (the caller's own logger, so its lines keep their name).
        """
        self._store = store
        self._messenger = messenger
        self._later = later
        self._sync_card = sync_card or messenger.sync_card
        self._log = logger

    def apply(
        self,
        task_id: str,
        state: str,
        *,
        from_states: Iterable[str],
        task: Task | None = None,
        signed_at: datetime | None = None,
        said: str | None = None,
        shown_id: str | None = None,
    ) -> TaskRow | None:
        """Record `state` if the record is in one of `from_states`; then update the card and post a final reply.

        With `signed_at`, only when the record holds no newer content; the thread reply is for completed or failed.
        `task` refreshes the stored content too. `said`: where LeadLex said so, for the log line ("in LeadLex",
        "(webhook 'task.updated')"); None logs nothing. `shown_id`: the task id as that line shows it (default: cut
        to 200 characters). The changed record, or None when nothing changed.
        """
        changed = self._store.apply_lexi_state(
            task_id, state, from_states=tuple(from_states), task=task, signed_at=signed_at
        )
        if changed is None:
            return None
        if said is not None:
            shown = state if state in (*STATUSES, TaskState.GONE) else repr(clip(state, 40))  # LeadLex's word, quoted
            self._log.info(
                "task %r is now %s %s", shown_id or clip(task_id), shown, said, extra={"task_id": shown_id or task_id}
            )
        self.show(changed)
        return changed

    def show(self, row: TaskRow) -> None:
        """Update a record's card and, when it is completed or failed, post its one thread reply."""
        self._later(f"card:{row.task_id}", self._sync_card, row.task_id)
        if row.state in FINAL:
            self._later(f"reply:{row.task_id}", self._messenger.reply_final, row)
