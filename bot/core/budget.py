"""Plan polling against LeadLex's daily API budget, always keeping a reserve for decisions made in Slack.

The budget itself, as LeadLex's rate-limit headers report it, is bot.lexi.ratelimit's.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.lexi.ratelimit import Budget

DAY = 86_400.0


@dataclass(frozen=True)
class Plan:
    """When to poll next, and why it is later than asked (None when it is not)."""

    interval: float
    reason: str | None = None


@dataclass(frozen=True)
class BudgetPolicy:
    """How much of the day's budget polling may use.

    - `reserve_percent`: kept for decisions (at least `min_reserve` calls); polling never dips into it.
    - `polling_share`: the largest part of the daily limit polling may spend over a day.
    """

    reserve_percent: float = 20.0
    min_reserve: int = 10
    polling_share: float = 0.5

    def reserve(self, limit: int) -> int:
        """Calls kept for decisions."""
        return max(self.min_reserve, int(limit * self.reserve_percent / 100))

    def plan(self, budget: Budget, calls_per_cycle: float, now: float, wanted: float, polling_spent: int = 0) -> Plan:
        """The interval before the next cycle: `wanted`, stretched when the budget demands it.

        `polling_spent` is what polling has already spent today; its share of the day's limit is paced over
        the hours left, so a day's polling never exceeds the share, however the cycles' costs varied.
        """
        if budget.limit is None or budget.remaining is None or budget.limit <= 0:
            return Plan(wanted)
        cost = max(calls_per_cycle, 1.0)
        reserve = self.reserve(budget.limit)
        allowance = min(budget.limit * self.polling_share, budget.limit - reserve)
        if allowance <= 0:
            return Plan(max(wanted, DAY), f"the daily limit of {budget.limit} calls leaves nothing after the reserve")
        steady = cost * DAY / allowance  # spreads the polling share evenly over a day
        seconds_left = max((budget.reset or now + DAY) - now, 1.0)
        share_left = allowance - polling_spent
        if share_left < cost:
            return Plan(
                max(wanted, seconds_left + 1.0),
                f"polling has used its share ({allowance:.0f} of {budget.limit} calls) of today's budget; "
                "it waits for the daily reset",
            )
        pace = cost * seconds_left / share_left
        spendable = budget.remaining - reserve
        if spendable < cost:
            return Plan(
                max(wanted, seconds_left + 1.0),
                f"only {budget.remaining} calls are left today and {reserve} are kept for decisions; "
                "polling waits for the daily reset",
            )
        catch_up = cost * seconds_left / spendable  # never spend the reserve before the reset
        interval = max(wanted, steady, pace, catch_up)
        if interval <= wanted * 1.01:
            return Plan(wanted)
        return Plan(
            interval,
            f"to stay within {budget.limit} LeadLex calls a day, keeping {reserve} for decisions",
        )
