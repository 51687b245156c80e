"""The bot's own work queues, for slow work that must not hold Bolt's threads: one per kind of work."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from bot.core.announcer import Backlog
from bot.core.workqueue import INLINE_DECISIONS, Inline, WorkQueue
from bot.ops.metrics import Metrics

log = logging.getLogger("bot.runtime")

#: The bot's work queues: (worker threads, most work waiting). Each kind of work has its own, so that none waits
#: behind another: people's decisions (sized for many slow LeadLex calls at once), the rules' auto-approvals,
#: slash commands and private answers, card updates and thread replies (webhook deliveries too), Home refreshes,
#: and the reminders' runs.
#: Announcements have a queue of their own per channel (bot.core.announcer.Backlog), paced as Slack wants.
QUEUES = {
    # Threads start only when needed; each decision holds one for LeadLex's answer (seconds when it is slow), so
    # as many as the clicks that may arrive at once: 32 made the 200th of a burst wait 30 s for its call.
    "decisions": (256, 2_000),
    "rules": (1, 2_000),  # auto-approvals, one at a time: the daily cap is counted, then spent
    "work": (8, 1_000),
    "cards": (4, 20_000),
    "home": (2, 200),
    "chores": (1, 10),
}


def _backlog_of(queue: WorkQueue) -> Callable[[], float]:
    """A gauge reading: the work waiting in `queue`."""
    return lambda: float(queue.backlog)


def _running_in(queue: WorkQueue) -> Callable[[], float]:
    """A gauge reading: the work running in `queue`."""
    return lambda: float(queue.running)


def _running_here(inline: Inline) -> Callable[[], float]:
    """A gauge reading: the decisions running in the threads that acknowledged them."""
    return lambda: float(inline.running)


class Workers:
    """The named work queues (QUEUES), their gauges, and how work is submitted to them and drained from them."""

    def __init__(self, metrics: Metrics, sizes: dict[str, tuple[int, int]] | None = None) -> None:
        """Create the queues (their threads start with the first work) and export their backlog as gauges."""
        self.queues = {name: WorkQueue(name, workers, limit) for name, (workers, limit) in (sizes or QUEUES).items()}
        #: Decisions carried out in the threads of the listeners that acknowledged them (before the queue's).
        self.inline = Inline(INLINE_DECISIONS)
        metrics.queue_running.labels("decisions-inline").set_function(_running_here(self.inline))
        for name, queue in self.queues.items():
            metrics.queue_backlog.labels(name).set_function(_backlog_of(queue))
            metrics.queue_running.labels(name).set_function(_running_in(queue))

    def __getitem__(self, name: str) -> WorkQueue:
        """The queue called `name`."""
        return self.queues[name]

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any] | None:
        """Run slow work (slash commands, private answers) on the general queue, logging any failure.

        None (logged) when that queue is full or shut down: a listener must still answer Slack in time.
        """
        try:
            return self.queues["work"].submit(fn, *args, **kwargs)
        except RuntimeError as exc:
            log.warning("refused background work %s: %s", getattr(fn, "__name__", fn), exc)
            return None

    def submit_home(self, fn: Callable[..., Any], *args: Any, scope: str = "") -> Future[Any] | None:
        """Publish Home tabs on their own queue; when it is full the refresh is skipped (the next change redoes it).

        A refresh already waiting for the same arguments stands for this one (ten decisions, one Home update);
        `scope` (a workspace id) keeps the refreshes of workspaces sharing the queue apart (user ids may repeat).
        """
        key: tuple[Any, ...] | None = (scope, getattr(fn, "__name__", fn), *args)
        try:
            hash(key)
        except TypeError:  # arguments that cannot be compared (a Home's extra blocks): queued as they come
            key = None
        try:
            return self.queues["home"].submit(fn, *args, key=key)
        except RuntimeError:  # full (QueueFull), or shut down
            log.warning("skipped a Home refresh: the home queue is full")
            return None

    def backlog(self) -> dict[str, int]:
        """Work waiting, per queue."""
        return {name: queue.backlog for name, queue in self.queues.items()}

    def drain(self, timeout: float, announcements: Backlog | None = None) -> bool:
        """Wait (bounded) until no work is queued or running in any queue, announcements included; True when none."""
        deadline = time.monotonic() + timeout
        while True:  # work in one queue may queue more in another: settled when all are idle at once
            idle = self.inline.drain(deadline)
            idle = all(queue.drain(deadline) for queue in self.queues.values()) and idle
            if announcements is not None:
                idle = announcements.drain(deadline) and idle
            if (
                idle
                and self.inline.running == 0
                and all(queue.backlog == 0 and queue.running == 0 for queue in self.queues.values())
                and (announcements is None or announcements.idle)
            ):
                return True
            if time.monotonic() >= deadline:
                return False

    def shutdown(self) -> None:
        """Stop every queue's workers (work not started is dropped)."""
        for queue in self.queues.values():
            queue.shutdown()
