"""Auto-approval rules: harmless tasks are approved by a named rule, announced all the same, within a daily cap."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time

from bot.core.decisions import Decider
from bot.core.policy import Policy
from bot.db.store import Store
from bot.lexi.models import Task

log = logging.getLogger(__name__)

#: The actor prefix of decisions made by a rule (shown on the card as "Auto-approved by rule …").
RULE_PREFIX = "rule:"


class AutoApprover:
    """Applies a task type's auto-approval rule right after the task is announced."""

    def __init__(self, policy: Policy, store: Store, decider: Decider) -> None:
        self._policy = policy
        self._store = store
        self._decider = decider
        self._capped_day: str | None = None

    def after_announce(self, task: Task) -> bool:
        """Approve the task if its type's rule covers it and today's cap allows; True when it was approved."""
        section = self._policy.for_type(task.type)
        rule = section.auto_approve
        if rule is None or not section.auto_approves(task.affected_count):
            return False
        if self._decider.approvals_needed(task) > 1:
            return False  # a quorum means people must agree: no rule overrides that
        midnight = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
        done = self._store.count_audit("decided", surface="rule", since=midnight)
        if done >= self._policy.auto_approve_daily_cap:
            day = midnight.date().isoformat()
            if self._capped_day != day:
                log.warning(
                    "auto-approvals stopped for today: the cap of %d is reached (a runaway loop?)",
                    self._policy.auto_approve_daily_cap,
                )
                self._capped_day = day
            self._store.audit(
                "auto_approve_capped",
                task.id,
                actor=f"{RULE_PREFIX}{rule.name}",
                surface="rule",
                detail=f"cap {self._policy.auto_approve_daily_cap} reached",
            )
            return False
        outcome = self._decider.decide(
            task.id,
            action="approve",
            user=f"{RULE_PREFIX}{rule.name}",
            surface="rule",
            by_rule=True,
            tell=lambda text: log.info("auto-approval of %s: %s", task.id, text),
        )
        return outcome.decided
