"""Accepted decisions outlive their process: leased while they wait or run, taken over when the lease runs out.

A click is journaled (bot.db.models.Decision) before Slack is acknowledged, leased to this process for a few
seconds. The keeper, a thread in every process, renews the leases of the decisions this process holds and takes
over any whose lease ran out (their process died), so that a decision Slack was told was accepted is carried out
within seconds of a crash, by the restarted bot or by another replica. On SQLite, where one process alone may use
the file (bot.db.guard), every decision another process held is taken over at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.db.store import DecisionRow, Replayed, Store

log = logging.getLogger(__name__)

#: How long a lease lasts without renewal: a dead process's decisions are resumed about this long after it died.
LEASE = timedelta(seconds=8)
#: How often the keeper renews leases and looks for decisions to take over.
INTERVAL = 1.0
#: How long a carried-out decision stays in the journal.
KEEP_DONE = timedelta(days=1)


class NotRecorded(Exception):
    """Raised when the database could not journal a decision: nothing was sent to LeadLex; the person retries."""


class Leases:
    """The decisions this process carries out: journaled under its name, held in memory, renewed by the keeper."""

    def __init__(
        self, store: Store, *, lease: timedelta = LEASE, orphans: bool = False, owner: str | None = None
    ) -> None:
        #: This process's name on the leases it holds.
        self.owner = owner or f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self._store = store
        self._orphans = orphans
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def accept(
        self,
        task_id: str,
        *,
        actor: str,
        action: str,
        surface: str,
        reason: str | None = None,
        note: str | None = None,
        reply: dict[str, Any] | None = None,
        sighting: tuple[str, datetime] | None = None,
        claim_at: int | None = None,
    ) -> DecisionRow:
        """Journal a decision under this process's lease; NotRecorded when the database cannot.

        With `sighting`, the request is remembered in the same write; Replayed when it was seen before. With
        `claim_at`, the task is claimed in that write too while its record is at that version (Store.accept_decision).
        """
        try:
            decision = self._store.accept_decision(
                task_id,
                actor=actor,
                action=action,
                surface=surface,
                reason=reason,
                note=note,
                reply=reply or {},
                owner=self.owner,
                lease=self.lease,
                sighting=sighting,
                claim_at=claim_at,
            )
        except Replayed:
            raise
        except Exception as exc:
            log.warning("could not record a decision on task %s: %s", task_id[:100], type(exc).__name__)
            raise NotRecorded(type(exc).__name__) from exc
        self.hold(decision.id)
        return decision

    def hold(self, decision_id: int) -> None:
        """Keep renewing this decision's lease (it is queued or running here)."""
        with self._lock:
            self._held.add(decision_id)

    def drop(self, decision_id: int) -> None:
        """Stop renewing this decision's lease (carried out, or left for another process to resume)."""
        with self._lock:
            self._held.discard(decision_id)

    def held(self) -> list[int]:
        """The decisions this process holds now."""
        with self._lock:
            return sorted(self._held)

    def renew(self) -> None:
        """Extend the leases of every decision this process holds."""
        self._store.renew_leases(self.owner, self.held(), self.lease)

    def take_over(self) -> list[DecisionRow]:
        """Take the decisions whose process died; they are held (and renewed) here from now on."""
        taken = self._store.take_over_decisions(self.owner, self.lease, orphans=self._orphans, exclude=self.held())
        for decision in taken:
            self.hold(decision.id)
            log.info(
                "task %s: resuming %s by %s (its process stopped)",
                decision.task_id,
                decision.action,
                decision.actor,
                extra={"task_id": decision.task_id, "slack_user": decision.actor},
            )
        return taken


class Keeper:
    """Renews this process's leases and hands decisions whose process died to `resume`, every `interval`."""

    def __init__(
        self, leases: Leases, store: Store, resume: Callable[[DecisionRow], object], *, interval: float = INTERVAL
    ) -> None:
        self._leases = leases
        self._store = store
        self._resume = resume
        self.interval = interval
        self._next_prune = 0.0

    def tick(self) -> int:
        """Renew, then take over and resume what died; how many decisions were taken over."""
        self._leases.renew()
        taken = self._leases.take_over()
        for decision in taken:
            self._resume(decision)
        if time.monotonic() >= self._next_prune:
            self._store.prune_decisions(KEEP_DONE)
            self._next_prune = time.monotonic() + 3600
        return len(taken)

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` (at once first: a restarted bot resumes what its predecessor left)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the keeper; it retries
                log.warning("could not renew or resume decisions: %s", type(exc).__name__)
            stop.wait(self.interval)
