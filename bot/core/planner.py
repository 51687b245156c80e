"""The poll planner: what to poll when — a full reconcile or only the status sync — within LeadLex's budget."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.core.budget import BudgetPolicy
from bot.db.store import Store
from bot.lexi.client import LexiClient
from bot.lexi.models import TaskState

log = logging.getLogger("bot.core.poller")  # its lines are the poller's, as they always were


class Planner:
    """Plans the next poll from the interval, the webhooks' reconcile schedule and the budget (bot.core.budget)."""

    def __init__(
        self,
        store: Store,
        lexi: LexiClient,
        *,
        interval: float,
        policy: BudgetPolicy | None = None,
        webhooks: bool = False,
        reconcile_interval: float = 3600.0,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._lexi = lexi
        self.interval = interval
        self._policy = policy or BudgetPolicy()
        self.webhooks = webhooks
        self.reconcile_interval = reconcile_interval
        self._clock = clock
        self._next_reconcile = 0.0
        self._cost = {"full": 1.0, "sync": 2.0}  # LeadLex calls per cycle, a moving average
        self._stretched: str | None = None
        self._polling_day = 0
        self._polling_spent = 0

    def full_due(self, now: float) -> bool:
        """Whether this cycle is a full reconcile: always without webhooks, else once per reconcile interval."""
        return not self.webhooks or now >= self._next_reconcile

    def reconciled(self, now: float) -> None:
        """A full reconcile ran at `now`: the next one is due a reconcile interval later."""
        self._next_reconcile = now + self.reconcile_interval

    def spent(self, calls: int, *, full: bool) -> None:
        """A cycle (full or sync) made `calls` LeadLex calls: fold them into its cost and today's spending."""
        kind = "full" if full else "sync"
        self._cost[kind] = 0.7 * self._cost[kind] + 0.3 * calls
        self._count_polling(calls)

    def _count_polling(self, calls: int) -> None:
        """Add to the calls polling made in the current UTC day (LeadLex's budget resets at 00:00 UTC)."""
        day = int(self._clock() // 86_400)
        if day != self._polling_day:
            self._polling_day, self._polling_spent = day, 0
        self._polling_spent += calls

    def plan(self) -> float:
        """The next interval: POLL_INTERVAL, or until the next reconcile when nothing waits, budget permitting."""
        now = self._clock()
        wanted = self.interval
        kind = "full"
        if self.webhooks:
            until_reconcile = max(self._next_reconcile - now, 1.0)
            if self._store.in_states((TaskState.APPROVED,), limit=1):
                wanted, kind = min(self.interval, until_reconcile), "sync"
            else:
                wanted = until_reconcile
        self._count_polling(0)  # a new day starts with nothing spent
        plan = self._policy.plan(self._lexi.budget, self._cost[kind], now, wanted, self._polling_spent)
        if plan.reason != self._stretched:
            if plan.reason:
                log.warning("polling every %.1fs instead of %.1fs %s", plan.interval, wanted, plan.reason)
            else:
                log.info("the LeadLex budget allows polling every %.1fs again", wanted)
            self._stretched = plan.reason
        return plan.interval
