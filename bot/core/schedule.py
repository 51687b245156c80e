"""The poll scheduler of multi-workspace mode: every replica polls the workspaces PostgreSQL hands it.

There is no polling leader. The registry holds each connected workspace's next_poll_at; a replica's scheduler
claims the due ones (Workspaces.claim_due: SELECT … FOR UPDATE SKIP LOCKED, in one short transaction), as many as
it has free worker threads, and polls each on its own thread. Each poll plans its own next one from that
workspace's LeadLex budget (the poller's planner): the scheduler records `now + the seconds it returned`.

The claim is a lease: it moves next_poll_at to `now + lease` (15 s), and the scheduler renews it every third of
the lease while the poll runs (Workspaces.renew_claims, only where next_poll_at is still what this replica wrote).
A replica that dies mid-poll stops renewing, so its workspaces are due again at most a lease later and another
replica polls them within `lease` plus one round (≤ 1 s), well within a poll interval (about a minute). A poll that
hangs is renewed for at most `longest` (two minutes: a poll's LeadLex and Slack calls each have a timeout of their
own, so a poll that takes longer is stuck, not slow); then its claim lapses and another replica may poll the
workspace, which is logged.

A poll that raises is logged (its message quoted and clipped; no secret is ever in one) and recorded as the
workspace's last_error; its next try backs off, doubling from the last gap up to `backoff`'s maximum. Since the
gap is read from the registry, the backoff holds across replicas.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from bot.db.store import is_connection_error, utcnow
from bot.db.workspaces import Workspace, Workspaces
from bot.ops.logs import clip
from bot.ops.metrics import Metrics

__all__ = ["Polled", "Scheduler"]

log = logging.getLogger(__name__)

#: The longest single wait of the loop: how soon a newly due workspace or a freed worker is noticed at the latest.
GRANULARITY = 1.0
#: The shortest wait between two rounds while due workspaces are held by another replica's claim in progress.
MIN_WAIT = 0.01
#: The backoff of a failing workspace, in seconds: the first retry, and the longest.
BACKOFF = (30.0, 1800.0)
#: The longest wait before asking an unreachable database again.
DATABASE_RETRY_MAX = 30.0
#: How long a stop waits for the polls in flight to finish.
DRAIN = 30.0
#: The longest error message recorded or logged.
ERROR_CLIP = 300


@dataclass(frozen=True)
class Polled:
    """What a poll may return instead of plain seconds: the seconds to its next poll, and more.

    LeadLex's budget left, and what stops the workspace's polling now (a refused key; kept as its last error).
    """

    delay: float
    budget_remaining: int | None = None
    problem: str | None = None


#: A poll of one workspace: seconds to its next poll (or a Polled). Tenants.poll runs the workspace's Poller.cycle().
Poll = Callable[[Workspace], "float | Polled"]


class Scheduler:
    """Claims the due workspaces of the registry and polls each on a bounded pool of threads (one per replica)."""

    def __init__(
        self,
        workspaces: Workspaces,
        poll: Poll,
        *,
        workers: int = 4,
        lease: timedelta = timedelta(seconds=15),
        longest: timedelta = timedelta(minutes=2),
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
        backoff: tuple[float, float] = BACKOFF,
        drain: float = DRAIN,
    ) -> None:
        """Poll with `poll` on `workers` threads; a stop waits `drain` s for polls in flight.

        A claim lasts `lease`, renewed while its poll runs, for at most `longest`.
        """
        if workers < 1:
            raise ValueError("a scheduler needs at least one worker")
        if lease <= timedelta(0):
            raise ValueError("the lease must be positive")
        self._workspaces = workspaces
        self._poll = poll
        self._workers = workers
        self._lease = lease
        self._longest = longest
        self._clock = clock
        self._metrics = metrics
        self._backoff = backoff
        self._drain = drain
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lexi-schedule")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[None]] = {}
        #: The claims held here: workspace id → (the next_poll_at this replica last wrote, when its claim began).
        self._claims: dict[str, tuple[datetime, datetime]] = {}
        self._renewed = time.monotonic()
        self._woken = threading.Event()
        self._database_failures = 0

    @property
    def free(self) -> int:
        """Worker threads not polling now: how many workspaces the next claim may take."""
        with self._lock:
            return self._workers - len(self._inflight)

    def claim(self, limit: int | None = None) -> list[Workspace]:
        """Claim up to `limit` due workspaces, never more than there are free workers (as read before the claim)."""
        free = self.free if limit is None else min(limit, self.free)
        now = self._clock()
        claimed = self._workspaces.claim_due(free, lease=self._lease, now=now)
        with self._lock:
            for workspace in claimed:
                if workspace.id in self._inflight and workspace.id not in self._claims:
                    continue  # its poll here is stuck (renewed no more): the claim lapses for whoever comes next
                # A poll in flight claimed again (this replica stalled past its lease) keeps when its claim began.
                began = self._claims[workspace.id][1] if workspace.id in self._claims else now
                self._claims[workspace.id] = (now + self._lease, began)
        return claimed

    def renew(self) -> int:
        """Extend the claims of the polls running here (for at most `longest` each); how many were renewed.

        A claim another replica took over meanwhile (this replica stalled past its lease) is let go, and logged.
        """
        now = self._clock()
        with self._lock:
            held = {wid: until for wid, (until, began) in self._claims.items() if now - began < self._longest}
            stuck = [wid for wid, (_, began) in self._claims.items() if now - began >= self._longest]
            for workspace_id in stuck:
                del self._claims[workspace_id]
        for workspace_id in stuck:
            log.warning(
                "workspace %s: its poll has run for more than %.0fs; its claim is no longer renewed and another "
                "replica may poll it",
                workspace_id,
                self._longest.total_seconds(),
            )
        self._renewed = time.monotonic()
        if not held:
            return 0
        until = now + self._lease
        renewed = self._workspaces.renew_claims(held, until)
        with self._lock:
            for workspace_id in held:
                if workspace_id not in self._claims:
                    continue  # its poll was recorded meanwhile: nothing to renew
                if workspace_id in renewed:
                    self._claims[workspace_id] = (until, self._claims[workspace_id][1])
                else:
                    del self._claims[workspace_id]
                    log.warning("workspace %s: another replica took its claim over during its poll", workspace_id)
        return len(renewed)

    def tick(self, timeout: float = 30.0) -> int:
        """One round: claim what the free workers can take, poll it, and wait (at most `timeout` s); how many."""
        futures = self._dispatch(self.claim())
        wait(futures, timeout)
        return len(futures)

    def run(self, stop: threading.Event) -> None:
        """Claim and poll until `stop` is set; then wait for the polls in flight (at most `drain` s) and return.

        The database going away pauses claims (logged once, by error type only) until it answers again; any other
        error in a round is logged in full and the next round comes a second later.
        """
        try:
            while not stop.is_set():
                try:
                    delay = self._round()
                except Exception:  # a bug must not stop every workspace's polling: logged in full, tried again
                    log.exception("a scheduling round failed unexpectedly; the scheduler carries on")
                    delay = GRANULARITY
                self._sleep(stop, delay)
        finally:
            self.close()

    def wake(self) -> None:
        """Start the next round now (a workspace was connected, or its poll was asked for sooner)."""
        self._woken.set()

    def close(self, timeout: float | None = None) -> None:
        """Wait for the polls in flight (at most `timeout`, default `drain`, seconds), then stop the threads."""
        with self._lock:
            running = list(self._inflight.values())
        _, unfinished = wait(running, self._drain if timeout is None else timeout)
        if unfinished:
            log.warning(
                "stopping with %d workspace poll(s) still running; their claims end by themselves", len(unfinished)
            )
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the loop -----------------------------------------------------------------------------------

    def _round(self) -> float:
        """Claim and dispatch what is due; the seconds to wait before the next round."""
        try:
            every = self._lease.total_seconds() / 3
            if self._holding() and time.monotonic() - self._renewed >= every:
                self.renew()
            self._dispatch(self.claim())
            delay = self._until_due()
            if self._holding():
                delay = min(delay, max(self._renewed + every - time.monotonic(), MIN_WAIT))
        except SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise
            self._database_failures += 1
            if self._database_failures == 1:
                log.warning("the scheduler cannot reach the database (%s); it tries again", type(exc).__name__)
            return min(2.0 ** (self._database_failures - 1), DATABASE_RETRY_MAX)
        if self._database_failures:
            log.info("the database answers again; the scheduler resumes")
            self._database_failures = 0
        return delay

    def _holding(self) -> bool:
        """Whether a claim is held here (a poll runs)."""
        with self._lock:
            return bool(self._claims)

    def _until_due(self) -> float:
        """Seconds until the soonest workspace is due, within [MIN_WAIT, GRANULARITY] (a freed worker wakes us)."""
        if self.free == 0:
            return GRANULARITY
        soonest = self._workspaces.next_due()
        if soonest is None:
            return GRANULARITY
        return min(max((soonest - self._clock()).total_seconds(), MIN_WAIT), GRANULARITY)

    def _sleep(self, stop: threading.Event, delay: float) -> None:
        """Wait `delay` seconds, or less when woken (by wake() or a finished poll) or stopped (seen within 1 s)."""
        deadline = time.monotonic() + delay
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._woken.wait(min(remaining, GRANULARITY)):
                self._woken.clear()
                return

    def _dispatch(self, claimed: list[Workspace]) -> list[Future[None]]:
        """Start a poll of each claimed workspace on the pool."""
        futures = []
        for workspace in claimed:
            with self._lock:
                if workspace.id in self._inflight:
                    # Its poll runs here still: the claim only postponed the next; that poll records it.
                    continue
                future = self._pool.submit(self._poll_one, workspace)
                self._inflight[workspace.id] = future
            future.add_done_callback(functools.partial(self._finished, workspace.id))
            futures.append(future)
        return futures

    def _finished(self, workspace_id: str, _future: Future[None]) -> None:
        """A poll ended: its worker is free, so the loop may claim again."""
        with self._lock:
            self._inflight.pop(workspace_id, None)
        self._woken.set()

    # --- one poll -----------------------------------------------------------------------------------

    def _poll_one(self, workspace: Workspace) -> None:
        """Poll one claimed workspace and record when its next poll is due (after a backoff when it failed)."""
        started = self._clock()
        if self._metrics is not None and workspace.next_poll_at is not None:
            self._metrics.poll_lag.observe(max((started - workspace.next_poll_at).total_seconds(), 0.0))
        error: str | None = None
        budget = workspace.budget_remaining
        try:
            delay, budget, error = _outcome(self._poll(workspace), budget)
        except Exception as exc:
            error = f"{type(exc).__name__}: {clip(str(exc), ERROR_CLIP)}"
            delay = self._retry(workspace)
            log.warning("workspace %s: poll failed: %r; next try in %.0fs", workspace.id, error, delay, exc_info=exc)
        if self._metrics is not None:
            self._metrics.workspace_polls.labels("failed" if error else "ok").inc()
        took = self._clock() - started
        if took > self._longest:
            log.warning(
                "workspace %s: its poll took %.1fs, longer than a claim is renewed (%.0fs): another replica may have "
                "polled it at the same time",
                workspace.id,
                took.total_seconds(),
                self._longest.total_seconds(),
            )
        with self._lock:  # before the record: a renewal from now on leaves the row to it
            self._claims.pop(workspace.id, None)
        try:
            self._workspaces.polled(
                workspace.id,
                next_poll_at=self._clock() + timedelta(seconds=delay),
                budget_remaining=budget,
                error=error,
            )
        except SQLAlchemyError as exc:
            log.warning(
                "workspace %s: its poll could not be recorded (%s); it is polled again when its claim ends",
                workspace.id,
                type(exc).__name__,
            )

    def _retry(self, workspace: Workspace) -> float:
        """The wait before a failed workspace's next try: the last gap doubled when it failed before, with jitter."""
        low, high = self._backoff
        gap = 0.0
        if workspace.last_error and workspace.last_poll_at and workspace.next_poll_at:
            gap = (workspace.next_poll_at - workspace.last_poll_at).total_seconds()
        # Jitter of at most a fifth: so each retry still waits at least 1.6 times the last until the maximum.
        return min(max(low, 2 * gap), high) * random.uniform(0.8, 1.0)  # noqa: S311 - backoff jitter, not cryptography


def _outcome(result: float | Polled, budget: int | None) -> tuple[float, int | None, str | None]:
    """The seconds to the next poll, the budget left and the problem from what a poll returned.

    ValueError when the seconds are unusable.
    """
    problem = None
    if isinstance(result, Polled):
        delay, budget = result.delay, result.budget_remaining if result.budget_remaining is not None else budget
        problem = clip(result.problem, ERROR_CLIP) if result.problem else None
    else:
        delay = result
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
        raise ValueError(f"the poll returned {clip(delay, 40)!r}, not a number of seconds")
    return float(delay), budget, problem
