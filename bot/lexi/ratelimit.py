"""LeadLex's rate limits: the daily budget its rate-limit headers report, and the per-minute limit of each plan."""

from __future__ import annotations

from dataclasses import dataclass

#: Per-minute limits of LeadLex's plans, by their daily limit (leadlex-api.md).
MINUTE_LIMITS = {100: 10, 1_000: 50, 10_000: 200}


def minute_limit(daily_limit: int | None) -> int | None:
    """The per-minute limit of the plan with this daily limit, when it is a known plan."""
    return MINUTE_LIMITS.get(daily_limit) if daily_limit is not None else None


@dataclass(frozen=True)
class Budget:
    """The daily API budget as LeadLex last reported it in its rate-limit headers."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    seen_at: float | None = None
