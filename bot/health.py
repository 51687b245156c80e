"""The bot's health: which parts still run (/healthz), whether it can do its job now (/readyz), and its status."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.config import RunSettings
from bot.core.announcer import Announcer
from bot.core.poller import Poller
from bot.db.store import Store
from bot.lexi.client import LexiClient
from bot.lexi.models import TaskState
from bot.ops.leader import Leadership
from bot.ops.metrics import Metrics
from bot.slack.messenger import AUTH_ERRORS
from bot.slack.replies import BotStatus


class SlackHealth:
    """Remembers whether Slack still accepts the bot's token, and counts Slack errors."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics
        self.problem: str | None = None

    def note(self, error: str) -> None:
        """Record one Slack API error."""
        if self._metrics is not None:
            self._metrics.slack_errors.labels(error).inc()
        if error in AUTH_ERRORS:
            self.problem = f"Slack refuses the bot token ({error})"


class Health:
    """What the bot knows of its own state, from its parts; asks LeadLex nothing."""

    def __init__(
        self,
        *,
        settings: RunSettings,
        store: Store,
        lexi: LexiClient,
        poller: Poller,
        announcer: Announcer,
        slack_health: SlackHealth,
        backlog: Callable[[], dict[str, Any]],
        leadership: Leadership | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        """`backlog` reports the work waiting; nothing counts as dead once `stopping` is set."""
        self._settings = settings
        self._store = store
        self._lexi = lexi
        self._poller = poller
        self._announcer = announcer
        self.slack = slack_health
        self._backlog = backlog
        self._leadership = leadership
        self.stopping = stopping or threading.Event()
        self._watched: dict[str, Callable[[], bool]] = {}

    def health(self) -> dict[str, Any]:
        """What GET /healthz reports: whether every part the bot needs still runs (`ok`), and which died."""
        dead = self.dead()
        report: dict[str, Any] = {"ok": not dead, "mode": self._settings.mode, "last_poll": self._poller.last_success}
        if dead:
            report["dead"] = dead
        return report

    def watch(self, name: str, part: threading.Thread | Callable[[], bool]) -> None:
        """Have /healthz fail when `part` (a thread, or a check that says whether it runs) has stopped."""
        self._watched[name] = part.is_alive if isinstance(part, threading.Thread) else part

    def dead(self) -> list[str]:
        """The watched parts that stopped while the bot is not stopping (a check that fails counts as stopped)."""
        if self.stopping.is_set():
            return []
        dead = []
        for name, alive in list(self._watched.items()):
            try:
                running = bool(alive())
            except Exception:  # noqa: BLE001 - a part we cannot even ask is not running
                running = False
            if not running:
                dead.append(name)
        return dead

    def announce_problem(self) -> str | None:
        """The setup problem that stopped the last announcement (until one succeeds), or None."""
        return self._announcer.backlog.problem if self._announcer.backlog is not None else None

    def status(self) -> BotStatus:
        """The bot's health for `/lexi status` and the App Home, from what it knows (no LeadLex call)."""
        last = self._poller.last_success
        budget = self._lexi.budget
        return BotStatus(
            last_poll=None if last is None else datetime.fromtimestamp(last, UTC),
            pending=self._store.count_in_state(TaskState.PENDING),
            calls_left=budget.remaining,
            calls_limit=budget.limit,
            mode="multi" if self._settings.multi_workspace else self._settings.mode,
            database=self._settings.database_kind,
            problem=self._poller.problem or self.slack.problem or self.announce_problem(),
        )

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the bot can do its job now: database reachable, credentials accepted, polls recent."""
        checks: dict[str, Any] = {"database": database_check(self._store)}
        poller = self._poller
        checks["leadlex"] = poller.problem or "ok"
        checks["slack"] = self.slack.problem or self.announce_problem() or "ok"
        age = poller.last_poll_age()
        checks["last_poll_age"] = None if age is None else round(age, 1)
        if poller.paused is not None:
            checks["poll"] = f"paused: {poller.paused}"  # it resumes by itself; say why it waits
        elif self._leadership is not None and self._leadership.is_leader is False:
            checks["poll"] = "standby"  # another replica polls; this one serves clicks and webhooks
        elif age is None or age > poller.overdue_after():
            checks["poll"] = "no successful poll yet" if age is None else "overdue"
        else:
            checks["poll"] = "ok"
        dead = self.dead()
        checks["parts"] = f"stopped: {', '.join(dead)}" if dead else "ok"
        ready = all(checks[k] in ("ok", "standby") for k in ("database", "leadlex", "slack", "poll", "parts"))
        # Reported, never a reason to be unready: a long backlog is work in progress, and the polls go on.
        checks["backlog"] = self._backlog()
        return ready, {"ready": ready, **checks}


def database_check(store: Store) -> str:
    """What /readyz says of the database: "ok", or "unreachable" with the error's type (its text may hold the URL)."""
    try:
        store.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by type only
        return f"unreachable ({type(exc).__name__})"
    return "ok"
