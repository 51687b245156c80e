"""The sandbox's shared timers: jobs run at their time, in order, on a fixed set of threads, and stop when told."""

from __future__ import annotations

import threading
import time

import pytest

from bot.dev.sandbox_timers import Timers


def test_jobs_run_in_due_order_not_submission_order() -> None:
    """Jobs added out of order run by due time, each not before it."""
    timers = Timers("test-timers")
    ran: list[tuple[str, float]] = []
    done = threading.Event()
    start = time.monotonic()
    for name, delay in (("late", 0.3), ("soon", 0.05), ("middle", 0.15)):
        timers.at(start + delay, lambda name=name: ran.append((name, time.monotonic() - start)))
    timers.at(start + 0.35, done.set)
    try:
        assert done.wait(5.0)
        assert [name for name, _ in ran] == ["soon", "middle", "late"]
        assert all(at >= delay for (_, at), delay in zip(ran, (0.05, 0.15, 0.3)))
    finally:
        timers.stop(time.monotonic() + 1.0)


def test_a_failing_job_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """A job that raises is logged; the thread goes on to the next job."""
    timers = Timers("test-timers")
    done = threading.Event()

    def broken() -> None:
        raise RuntimeError("boom")

    try:
        timers.after(0.0, broken)
        timers.after(0.05, done.set)
        assert done.wait(5.0)
        assert "sandbox job failed" in caplog.text
    finally:
        timers.stop(time.monotonic() + 1.0)


def test_stop_drops_waiting_jobs_and_refuses_new_ones() -> None:
    """After stop() a job not yet due never runs, and one added later is ignored."""
    timers = Timers("test-timers")
    ran: list[str] = []
    timers.after(0.2, lambda: ran.append("dropped"))
    timers.stop(time.monotonic() + 1.0)
    timers.after(0.0, lambda: ran.append("late"))
    time.sleep(0.3)
    assert ran == [] and timers.pending() == 0


def test_without_autostart_nothing_runs_before_start() -> None:
    """Timers made with autostart=False keep due jobs until start(), then run them."""
    timers = Timers("test-timers", autostart=False)
    done = threading.Event()
    timers.after(0.0, done.set)
    try:
        assert not done.wait(0.2)
        timers.start()
        assert done.wait(5.0)
    finally:
        timers.stop(time.monotonic() + 1.0)


def test_threads_run_due_jobs_side_by_side() -> None:
    """With four threads, four slow jobs due together run at once rather than one after another."""
    timers = Timers("test-timers", threads=4)
    barrier = threading.Barrier(4, timeout=5.0)
    passed: list[int] = []
    lock = threading.Lock()

    def job() -> None:
        barrier.wait()  # only returns when all four are running together
        with lock:
            passed.append(1)

    try:
        for _ in range(4):
            timers.after(0.0, job)
        deadline = time.monotonic() + 5.0
        while len(passed) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(passed) == 4
    finally:
        timers.stop(time.monotonic() + 1.0)
