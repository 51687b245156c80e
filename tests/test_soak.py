"""A short soak (bench/soak.py): random LeadLex and Slack faults, SIGKILLs and SIGTERMs of a subprocess bot."""

from __future__ import annotations

import logging

import pytest

from bench.soak import Report, run

pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.timeout(400)]

log = logging.getLogger(__name__)

#: Seconds of faults and kills (the full soak, `python -m bench.soak`, runs 10 minutes).
SECONDS = 40


@pytest.fixture(scope="module")
def soak() -> Report:
    """One short soak on SQLite, shared by the tests below."""
    report = run(SECONDS, seed=12, lifetime=(6.0, 15.0), kill_after_ack=0.1, settle=90.0, say=log.warning)
    log.warning(
        "soak: %s, %d tasks, %d clicks acknowledged, stops %s, faults %s, claims left %s",
        report.zero_counts(),
        report.tasks,
        report.clicks_acknowledged,
        dict(report.stops),
        dict(report.faults),
        report.stuck,
    )
    return report


def test_soak_loses_and_doubles_no_task(soak: Report) -> None:
    """Through faults, kills and restarts every task is announced exactly once and decided at most once."""
    assert sum(soak.stops.values()) >= 2 and soak.tasks > 10 and soak.clicks_acknowledged > 0  # it did soak
    assert soak.lost == []
    assert soak.posted_twice == []
    assert soak.decided_twice == []


def test_soak_carries_out_every_acknowledged_decision(soak: Report) -> None:
    """Every click the bot acknowledged reaches LeadLex (or is refused by LeadLex), and no claim is left open."""
    assert soak.acknowledged_lost == []
    assert soak.settled, soak.stuck
