"""LeadLex's rate limits (bot.lexi.ratelimit): the per-minute limit of each plan."""

from __future__ import annotations

from bot.lexi.ratelimit import minute_limit


def test_per_minute_limits_of_the_plans() -> None:
    """Starter, Pro and Org allow 10, 50 and 200 calls a minute; unknown plans have no known limit."""
    assert [minute_limit(n) for n in (100, 1_000, 10_000, 5_000, None)] == [10, 50, 200, None, None]
