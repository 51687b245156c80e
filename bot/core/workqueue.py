"""Named, bounded work queues, each with worker threads of its own.

So one kind of work never waits behind another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

log = logging.getLogger(__name__)


#: Decisions carried out in the thread of the listener that acknowledged them, at most this many at once (Bolt's
#: listener pool has this many threads more than the HTTP front's, so acknowledgements never wait for them). The
#: LeadLex call then follows the ack with no hand-over: waking another thread to make it cost 50–130 ms of waiting
#: for the interpreter lock under load. Beyond that number, decisions wait on the decisions queue.
INLINE_DECISIONS = 240


class Inline:
    """Work run in the calling thread while fewer than `limit` run so; counted, so that draining waits for it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running = 0
        self._changed = threading.Condition()

    @property
    def running(self) -> int:
        """Work running here now."""
        with self._changed:
            return self._running

    def run(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run `fn(*args)` in this thread, logging a failure, when a slot is free (True); False when none is."""
        with self._changed:
            if self._running >= self.limit:
                return False
            self._running += 1
        try:
            fn(*args)
        except Exception:
            log.exception("work %s failed (in the thread that took it)", getattr(fn, "__name__", fn))
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()
        return True

    def drain(self, deadline: float) -> bool:
        """Wait until nothing runs here, or until `deadline` (time.monotonic); True when idle."""
        with self._changed:
            return self._changed.wait_for(lambda: self._running == 0, max(0.0, deadline - time.monotonic()))


class QueueFull(RuntimeError):
    """A queue holds as much work as it may: the caller says "busy, try again" instead of queueing more."""


class WorkQueue:
    """A small pool of named threads over a bounded backlog; work with a `key` is queued at most once at a time."""

    def __init__(self, name: str, workers: int, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lexi-{name}")
        self._lock = threading.Lock()
        self._inflight: set[Future[Any]] = set()
        self._queued = 0  # submitted and not started yet: the backlog
        self._keyed: dict[Hashable, Future[Any]] = {}  # keyed work not started yet

    @property
    def backlog(self) -> int:
        """Work submitted and not started yet."""
        with self._lock:
            return self._queued

    @property
    def running(self) -> int:
        """Work started and not finished yet."""
        with self._lock:
            return len(self._inflight) - self._queued

    def submit(self, fn: Callable[..., Any], *args: Any, key: Hashable | None = None, **kwargs: Any) -> Future[Any]:
        """Queue `fn(*args, **kwargs)`, logging any failure; QueueFull when the backlog is at its limit.

        With `key`, work already queued under that key and not started yet stands for this one (a repeat of the
        same refresh adds nothing); once started, the same key queues again, so a later change is never missed.
        """
        future: Future[Any]
        with self._lock:
            if key is not None and key in self._keyed:
                return self._keyed[key]
            if self._queued >= self.limit:
                raise QueueFull(f"the {self.name} queue is full ({self.limit} waiting)")
            self._queued += 1
            started = threading.Event()

            def run() -> Any:
                with self._lock:
                    self._queued -= 1
                    if key is not None and self._keyed.get(key) is future:
                        del self._keyed[key]
                started.set()
                try:
                    return fn(*args, **kwargs)
                except Exception:
                    log.exception("background work %s failed (%s queue)", getattr(fn, "__name__", fn), self.name)
                    raise

            try:
                future = self._pool.submit(run)
            except RuntimeError:  # shut down: nothing will run it
                self._queued -= 1
                raise
            self._inflight.add(future)
            if key is not None:
                self._keyed[key] = future
        future.add_done_callback(lambda done: self._done(done, started))
        return future

    def _done(self, future: Future[Any], started: threading.Event) -> None:
        """Forget finished work (work cancelled before it started still counted as waiting)."""
        with self._lock:
            self._inflight.discard(future)
            if not started.is_set():
                self._queued -= 1
                for key, queued in list(self._keyed.items()):
                    if queued is future:
                        del self._keyed[key]

    def drain(self, deadline: float) -> bool:
        """Wait until nothing is queued or running here, or until `deadline` (time.monotonic); True when idle."""
        while time.monotonic() < deadline:
            with self._lock:
                pending = list(self._inflight)
            if not pending:
                return True
            wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            return not self._inflight

    def alive(self) -> bool:
        """Whether the queue still takes work with every thread it started (a killed thread is lost)."""
        threads = getattr(self._pool, "_threads", ())
        return not getattr(self._pool, "_shutdown", False) and all(t.is_alive() for t in threads)

    def shutdown(self) -> None:
        """Take no more work and drop what has not started (work in flight finishes on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
