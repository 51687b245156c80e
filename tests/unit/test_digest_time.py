"""When the daily digest is due: the policy's time in its own zone, across daylight saving, and how late it may go."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from bot.core.digest import LATE_LIMIT, digest_text, due_at, due_day
from bot.core.policy import DailyDigest

BERLIN = DailyDigest(time(9, 0), "Europe/Berlin")


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A UTC moment."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_nine_in_berlin_is_eight_utc_in_winter_and_seven_in_summer() -> None:
    """09:00 Berlin follows the clocks: 08:00 UTC before the change to summer time, 07:00 UTC after, and back."""
    assert due_at(BERLIN, date(2026, 3, 28)) == _utc(2026, 3, 28, 8, 0)
    assert due_at(BERLIN, date(2026, 3, 29)) == _utc(2026, 3, 29, 7, 0)  # summer time began at 01:00 UTC that night
    assert due_at(BERLIN, date(2026, 10, 24)) == _utc(2026, 10, 24, 7, 0)
    assert due_at(BERLIN, date(2026, 10, 25)) == _utc(2026, 10, 25, 8, 0)  # back to winter time


def test_the_zone_is_the_policy_s_not_the_machine_s() -> None:
    """The same wall-clock time in another zone is another moment (New York's 09:00 is 14:00 UTC in winter)."""
    assert due_at(DailyDigest(time(9, 0), "America/New_York"), date(2026, 12, 7)) == _utc(2026, 12, 7, 14, 0)
    assert due_at(DailyDigest(time(9, 0), "UTC"), date(2026, 12, 7)) == _utc(2026, 12, 7, 9, 0)


def test_a_time_the_clocks_skip_falls_just_after_the_jump_and_a_repeated_one_on_its_first_occurrence() -> None:
    """Berlin skips 02:30 on 29 March 2026 (read as 03:30 summer time) and has it twice on 25 October (the first)."""
    night = DailyDigest(time(2, 30), "Europe/Berlin")
    assert due_at(night, date(2026, 3, 29)) == _utc(2026, 3, 29, 1, 30)
    assert due_at(night, date(2026, 10, 25)) == _utc(2026, 10, 25, 0, 30)


def test_the_digest_is_due_from_its_time_until_the_late_limit() -> None:
    """Before 09:00 nothing is due; from 09:00 the day's digest is, until six hours later; then the day is skipped."""
    nine = _utc(2026, 7, 1, 7, 0)  # 09:00 in Berlin (summer time)
    assert due_day(BERLIN, nine - timedelta(seconds=1)) is None
    assert due_day(BERLIN, nine) == date(2026, 7, 1)
    assert due_day(BERLIN, nine + timedelta(minutes=20)) == date(2026, 7, 1)
    assert due_day(BERLIN, nine + LATE_LIMIT - timedelta(seconds=1)) == date(2026, 7, 1)
    assert due_day(BERLIN, nine + LATE_LIMIT) is None


def test_a_late_evening_digest_is_still_due_after_midnight_on_its_own_day() -> None:
    """A 22:00 digest looked at by a bot that starts at 01:00 is the previous day's, sent late."""
    evening = DailyDigest(time(22, 0), "Europe/Berlin")
    assert due_day(evening, _utc(2026, 12, 8, 0, 0)) == date(2026, 12, 7)  # 01:00 on 8 December in Berlin
    assert due_day(evening, _utc(2026, 12, 8, 3, 1)) is None  # 04:01: more than six hours after 22:00


def test_a_digest_counts_its_tasks_and_says_how_many_it_does_not_list() -> None:
    """The text says how many wait, one bullet per listed line, and "…and N more" past the listed ones."""
    assert (
        digest_text(["<https://x|Find CFOs>"], 1)
        == "*Daily digest: 1 task still waits for a decision*\n• <https://x|Find CFOs>"
    )
    text = digest_text([f"line {n}" for n in range(20)], 23)
    assert text.startswith("*Daily digest: 23 tasks still wait for a decision*\n• line 0\n")
    assert text.count("\n• ") == 20 and text.endswith("\n_…and 3 more: see the App Home._")
