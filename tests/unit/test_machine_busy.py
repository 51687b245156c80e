"""The clicker's reading of /proc/stat: how long the machine's cores were busy."""

from __future__ import annotations

import os

import pytest

from bench.clicker import busy_seconds

TICK = os.sysconf("SC_CLK_TCK")


def test_busy_time_is_everything_but_idle_and_waiting_for_io() -> None:
    """Busy: user + nice + system + irq + softirq + steal, summed over cores (the first line), in seconds."""
    stat = (
        "cpu  100 20 30 5000 40 1 2 3 7 0\n"  # guest (7) is already inside user: not counted again
        "cpu0 50 10 15 2500 20 1 1 2 0 0\n"
        "intr 12345\n"
    )
    assert busy_seconds(stat) == pytest.approx((100 + 20 + 30 + 1 + 2 + 3) / TICK)


def test_a_text_without_the_cpu_line_is_refused() -> None:
    """Never a silent zero: a figure built on it would say the machine was idle."""
    with pytest.raises(ValueError, match="no cpu line"):
        busy_seconds("intr 1\nctxt 2\n")
