"""Reminders, escalation and expiry for tasks left waiting.

Thread replies that mention the approvers, with growing gaps; past `escalate_after`, the card sent to the people it
is escalated to (bot.core.escalations); and, past the policy's expiry, a card that says "expired — not decided"
(never "dismissed").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.core.approvers import Approvers
from bot.core.decisions import Decider
from bot.core.escalations import Escalations
from bot.core.policy import Policy, human_duration, reminder_due
from bot.db.store import Store, TaskRow
from bot.lexi.models import TaskState
from bot.slack.messenger import Messenger, slack_error_text

log = logging.getLogger(__name__)


class Reminders:
    """Checks pending tasks against the policy's reminder, escalation and expiry times, once per poll cycle."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        messenger: Messenger,
        decider: Decider,
        approvers: Approvers | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._store = store
        self._messenger = messenger
        self._decider = decider
        self._approvers = approvers
        self.clock = clock
        #: Escalates what waited past its escalation age, on this clock (run after the reminders each cycle).
        self.escalations = Escalations(policy, store, messenger, approvers)

    def run(self) -> None:
        """Expire what is overdue, remind about what waits, and escalate it (only pending tasks are looked at)."""
        sections = (self._policy.default, *self._policy.types.values())
        if not any(p.remind_after or p.expire_after for p in sections) and not self.escalations.enabled:
            return
        now = self.clock()
        for row in self._store.in_states((TaskState.PENDING,)):
            section = self._policy.for_type(row.task.type)
            age = now - row.announced_at.timestamp()
            if section.expire_after is not None and age >= section.expire_after:
                self._expire(row, section.expire_after, dismiss=section.dismiss_on_expiry)
            elif section.remind_after is not None:
                self._remind(row, age, section.remind_after, section.remind_max)
        self.escalations.run(now)  # after the expiries: an expired task is no longer pending, never escalated

    def _remind(self, row: TaskRow, age: float, remind_after: float, remind_max: int) -> None:
        """Post the next reminder in the card's thread when it is due."""
        sent = self._store.count_audit("reminder", task_id=row.task_id)
        if sent >= remind_max or age < reminder_due(remind_after, sent) or row.message_ts is None:
            return
        who = self._approvers.describe(row.task.type, "approve") if self._approvers else "anyone in the channel"
        # Whole multiples of the policy's own duration read as the policy wrote it ("after 2s", "after 12h"),
        # where the measured age would carry the poll's jitter.
        waited = human_duration(remind_after * (age // remind_after))
        text = f"⏰ Still waiting for a decision after {waited} — {who}, please approve or dismiss it."
        try:
            self._messenger.reply_in_thread(row, text)
        except SlackApiError as exc:
            log.warning("task %s: could not post a reminder: %s", row.task_id, slack_error_text(exc))
            return
        self._store.audit(
            "reminder",
            row.task_id,
            actor="rule:reminder",
            surface="rule",
            detail=f"{sent + 1} of {remind_max} after {waited}",
        )

    def _expire(self, row: TaskRow, expire_after: float, *, dismiss: bool) -> None:
        """Expire the task through the decider; it is dismissed in LeadLex only when the policy says so."""
        outcome = self._decider.expire(row.task_id, human_duration(expire_after), dismiss=dismiss)
        if outcome.state != TaskState.EXPIRED:
            return  # decided at the last moment (in Slack or in LeadLex)
        log.info("task %s expired at %s", row.task_id, datetime.now(UTC).isoformat(timespec="seconds"))
