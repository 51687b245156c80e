"""Decisions carried out in the thread that acknowledged them (bot.core.workqueue.Inline): bounded, drained."""

from __future__ import annotations

import threading
import time

import pytest

from bot.core.workqueue import Inline


def test_work_runs_here_while_a_slot_is_free_and_draining_waits_for_it() -> None:
    """Two slots: two runs hold them, a third is refused (its caller queues it), and a drain waits for both."""
    inline = Inline(2)
    release = threading.Event()
    ran: list[str] = []
    started = threading.Barrier(3)

    def hold(name: str) -> None:
        started.wait(5)
        release.wait(5)
        ran.append(name)

    threads = [threading.Thread(target=inline.run, args=(hold, n)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    started.wait(5)
    assert inline.running == 2
    assert inline.run(ran.append, "refused") is False and ran == []
    assert inline.drain(time.monotonic() + 0.05) is False
    release.set()
    assert inline.drain(time.monotonic() + 5)
    for thread in threads:
        thread.join(5)
    assert sorted(ran) == ["a", "b"] and inline.running == 0
    assert inline.run(ran.append, "c") is True and ran[-1] == "c"


def test_a_failure_is_logged_and_frees_its_slot(caplog: pytest.LogCaptureFixture) -> None:
    """Work that raises is logged, not raised into the listener, and its slot is free again."""
    inline = Inline(1)

    def fail() -> None:
        raise RuntimeError("the database went away")

    assert inline.run(fail) is True
    assert inline.running == 0 and "failed" in caplog.text
    assert inline.run(lambda: None) is True
