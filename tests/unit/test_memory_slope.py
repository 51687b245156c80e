"""The memory benchmark's growth figure: a least-squares slope, in MiB per ten minutes."""

from __future__ import annotations

import pytest

from bench.memory import slope_per_10_min


def test_steady_growth_is_reported_per_ten_minutes() -> None:
    """RSS growing 1 MiB a minute is +10 MiB per ten minutes, whatever it started at."""
    points = [(60.0 * minute, 80.0 + minute) for minute in range(6)]
    assert slope_per_10_min(points) == pytest.approx(10.0)


def test_flat_or_too_short_runs_report_no_growth() -> None:
    """A flat line, one sample, or samples all at one moment give 0, never a division by zero."""
    assert slope_per_10_min([(0.0, 80.0), (60.0, 80.0), (120.0, 80.0)]) == 0
    assert slope_per_10_min([(0.0, 80.0)]) == 0
    assert slope_per_10_min([(5.0, 80.0), (5.0, 90.0)]) == 0
