"""Escalation: a task nobody decided in time goes to the policy's `escalate_to`, who may then decide it too.

Each waiting task is escalated once: the one process whose conditional UPDATE took the escalation (audited in the
same transaction) sends a DM copy of the card to each escalation person (each copy claimed before it is posted) and
says so in the card's thread. Every copy is kept in sync with the decision like any other (Messenger.sync_card).
A process that died between taking the escalation and sending its cards leaves them to the next cycle of any
process: for RESUME_WINDOW after an escalation, the cards its people lack are sent (never twice: each is claimed).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.core.approvers import Approvers
from bot.core.policy import Policy, TypePolicy, human_duration
from bot.db.store import Store, TaskRow
from bot.lexi.models import TaskState
from bot.slack.messenger import Messenger, slack_error_text

log = logging.getLogger(__name__)

#: How long after an escalation the cards its people lack (their process died before sending them) are still sent.
RESUME_WINDOW = 3600.0

#: A Slack user id as it may appear in a mention (anything else, whoever said it, is never written into a message).
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


class Escalations:
    """Escalates the pending tasks older than their type's escalation age, once per poll cycle (see Reminders)."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        messenger: Messenger,
        approvers: Approvers | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._store = store
        self._messenger = messenger
        self._approvers = approvers
        self.clock = clock

    @property
    def enabled(self) -> bool:
        """Whether some type's tasks are ever escalated."""
        return any(p.escalation_age is not None for p in (self._policy.default, *self._policy.types.values()))

    def run(self, now: float | None = None) -> int:
        """Escalate every pending task that waited past its type's escalation age; how many this call escalated."""
        if not self.enabled:
            return 0
        now = self.clock() if now is None else now
        escalated = 0
        for row in self._store.in_states((TaskState.PENDING,)):
            section = self._policy.for_type(row.task.type)
            after = section.escalation_age
            if after is None or row.message_ts is None:
                continue
            if row.escalated_at is not None:
                if now - row.escalated_at.timestamp() < RESUME_WINDOW:
                    self._resume(row, section)
            elif now - row.announced_at.timestamp() >= after:
                escalated += self._escalate(row, section, after, now)
        return escalated

    def _resume(self, row: TaskRow, section: TypePolicy) -> None:
        """Send the escalation's cards its people lack (the process that took it died before sending them all)."""
        held = {copy.channel for copy in self._store.copies(row.task_id)} if row.has_copies else set()
        for user in self._people(section):
            try:
                dm = self._messenger.open_dm(user)
            except SlackApiError:
                continue  # logged when the escalation was taken; tried again next cycle
            if dm != row.channel and dm not in held:
                log.info("task %s: sending the escalation's card to %s (its process stopped before)", row.task_id, user)
                self._send(row, user)

    def _escalate(self, row: TaskRow, section: TypePolicy, after: float, now: float) -> bool:
        """Take the task's escalation (once, whichever process asks), then send its card and say so in its thread."""
        waited = human_duration(after)
        at = datetime.fromtimestamp(now, UTC)
        taken = self._store.escalate(row.task_id, section.escalate_to, waited, at=at)
        if taken is None:
            return False  # decided meanwhile, or escalated by another process
        people = self._people(section)
        for user in people:
            self._send(taken, user)
        who = ", ".join(f"<@{user}>" for user in people) or "nobody I could reach"
        text = f"⏫ Escalated to {who} after {waited}: nobody decided. They may now approve or dismiss it."
        try:
            self._messenger.reply_in_thread(taken, text)
        except SlackApiError as exc:
            log.warning("task %s: could not say it was escalated: %s", row.task_id, slack_error_text(exc))
        log.info("task %s escalated after %s", row.task_id, waited, extra={"task_id": row.task_id})
        return True

    def _people(self, section: TypePolicy) -> list[str]:
        """The escalation's people (user groups expanded), the bot left out; only well-formed user ids."""
        if self._approvers is not None:
            people = self._approvers.escalation_recipients(section)
        else:
            people = sorted(e for e in section.escalate_to if not e.startswith("S"))
        bot = self._messenger.own_user()
        return [user for user in people if user != bot and _USER_ID.fullmatch(user)]

    def _send(self, row: TaskRow, user: str) -> None:
        """Post a copy of the card in `user`'s DM (claimed first: never twice); a failure is logged, never raised."""
        try:
            dm = self._messenger.open_dm(user)
        except SlackApiError as exc:
            log.warning("task %s: no DM with %s to escalate to: %s", row.task_id, user, slack_error_text(exc))
            return
        if dm == row.channel:
            return  # the record's own card is in their DM already
        try:
            self._messenger.post_copy(row.task_id, dm, "dm")
        except Exception:
            log.exception("task %s: could not send its card to %s", row.task_id, user)
