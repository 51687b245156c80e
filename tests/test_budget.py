"""The polling budget policy, as a pure function of LeadLex's rate-limit headers."""

from __future__ import annotations

import pytest

from bot.core.budget import DAY, BudgetPolicy
from bot.lexi.ratelimit import Budget

NOW = 1_800_000_000.0
POLICY = BudgetPolicy()


def _fresh(limit: int) -> Budget:
    """A full budget at the start of a UTC day."""
    return Budget(limit=limit, remaining=limit, reset=NOW + DAY, seen_at=NOW)


@pytest.mark.parametrize(("limit", "expected"), [(100, 1728.0), (1_000, 172.8), (10_000, 60.0)])
def test_polling_uses_at_most_half_of_each_plan(limit: int, expected: float) -> None:
    """A one-call cycle is spread so polling spends at most half the day's limit (never below POLL_INTERVAL)."""
    plan = POLICY.plan(_fresh(limit), 1.0, NOW, 60.0)
    assert plan.interval == pytest.approx(expected)
    assert DAY / plan.interval <= limit * 0.5 + 1e-9


def test_stretching_says_why() -> None:
    """A stretched interval carries a reason naming the limit and the reserve; an unstretched one none."""
    assert "100 LeadLex calls a day, keeping 20 for decisions" in POLICY.plan(_fresh(100), 1, NOW, 60).reason
    assert POLICY.plan(_fresh(10_000), 1, NOW, 60).reason is None


def test_reserve_is_a_fifth_and_at_least_ten() -> None:
    """The reserve is 20 % of the limit by default, and never below 10 calls."""
    assert POLICY.reserve(1_000) == 200
    assert POLICY.reserve(30) == 10
    assert BudgetPolicy(reserve_percent=50).reserve(1_000) == 500


def test_polling_never_spends_the_reserve() -> None:
    """With only the reserve left, polling waits for the daily reset."""
    budget = Budget(limit=100, remaining=20, reset=NOW + 5_000, seen_at=NOW)
    plan = POLICY.plan(budget, 1.0, NOW, 60.0)
    assert plan.interval > 5_000 and "daily reset" in plan.reason


def test_a_spent_morning_slows_polling_until_the_reset() -> None:
    """When earlier spending leaves little, the remaining calls are spread over the hours left."""
    budget = Budget(limit=1_000, remaining=250, reset=NOW + 36_000, seen_at=NOW)  # 50 spendable, 10 h left
    plan = POLICY.plan(budget, 1.0, NOW, 60.0)
    assert plan.interval == pytest.approx(36_000 / 50)


def test_expensive_cycles_poll_less_often() -> None:
    """A cycle that costs three calls is planned three times as far apart."""
    one = POLICY.plan(_fresh(1_000), 1.0, NOW, 60.0).interval
    three = POLICY.plan(_fresh(1_000), 3.0, NOW, 60.0).interval
    assert three == pytest.approx(3 * one)


def test_unknown_budget_keeps_the_wanted_interval() -> None:
    """Before any rate-limit header was seen, the configured interval stands."""
    assert POLICY.plan(Budget(), 1.0, NOW, 42.0).interval == 42.0


def test_polling_never_exceeds_its_share_whatever_it_spent() -> None:
    """What polling already spent today is paced over the hours left; a spent share waits for the reset."""
    budget = Budget(limit=1_000, remaining=900, reset=NOW + 43_200, seen_at=NOW)  # half a day left
    half = POLICY.plan(budget, 1.0, NOW, 60.0, polling_spent=400)  # 100 of the 500 share left
    assert half.interval == pytest.approx(43_200 / 100)
    spent = POLICY.plan(budget, 1.0, NOW, 60.0, polling_spent=500)
    assert spent.interval > 43_200 and "its share" in spent.reason
