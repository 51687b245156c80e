"""Work the sandbox does later, for every workspace at once: one heap of due jobs, a fixed set of threads.

Completions of approved tasks, generated tasks and webhook (re)deliveries are jobs due at a time. However many
workspaces the sandbox serves, each job costs O(log n) to schedule and to start, and a thread waits for the next
due job rather than looking at every workspace on each tick.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("bot.sandbox")

#: Longest a waiting thread sleeps before looking again (a stop or a job added sooner wakes it at once).
_IDLE = 1.0


class Timers:
    """Runs jobs at their due time (time.monotonic()) on `threads` threads, from start() (or the first job)."""

    def __init__(self, name: str, threads: int = 1, *, autostart: bool = True) -> None:
        self._name, self._size, self._autostart = name, threads, autostart
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._started = self._stopped = False

    def at(self, due: float, job: Callable[[], None]) -> None:
        """Run `job` once time.monotonic() reaches `due` (soon if it has); nothing once stopped."""
        with self._ready:
            if self._stopped:
                return
            heapq.heappush(self._heap, (due, next(self._order), job))
            if self._heap[0][2] is job:
                self._ready.notify()
        if self._autostart:
            self.start()

    def after(self, seconds: float, job: Callable[[], None]) -> None:
        """Run `job` `seconds` from now."""
        self.at(time.monotonic() + seconds, job)

    def start(self) -> None:
        """Start the threads, unless they run already or the timers are stopped."""
        with self._ready:
            if self._started or self._stopped:
                return
            self._started = True
            self._threads = [
                threading.Thread(target=self._run, name=f"{self._name}-{n}", daemon=True) for n in range(self._size)
            ]
        for thread in self._threads:
            thread.start()

    def stop(self, deadline: float) -> None:
        """Drop the jobs not yet due and wait, until the time.monotonic() `deadline` at most, for those running."""
        with self._ready:
            self._stopped = True
            self._heap.clear()
            self._ready.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def pending(self) -> int:
        """How many jobs wait for their time."""
        with self._ready:
            return len(self._heap)

    def _run(self) -> None:
        """Take each job as it falls due and run it, until stop()."""
        while True:
            with self._ready:
                while not self._stopped:
                    wait = self._heap[0][0] - time.monotonic() if self._heap else _IDLE
                    if wait <= 0:
                        break
                    self._ready.wait(min(wait, _IDLE))
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._heap)
                if self._heap and self._heap[0][0] <= time.monotonic():
                    self._ready.notify()  # more is due: another idle thread may take it
            try:
                job()
            except Exception:  # one broken job must not stop the others
                log.exception("sandbox job failed in %s", threading.current_thread().name)
