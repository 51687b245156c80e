"""Publish a person's App Home: gather what it shows from the store and the bot's status, then publish it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.decisions import Decider
from bot.db.store import Store, TaskRow, utcnow
from bot.lexi.models import TaskState
from bot.slack import home_view as home
from bot.slack.messenger import slack_error_text
from bot.slack.replies import BotStatus

log = logging.getLogger(__name__)

#: The most blocks Slack shows in an App Home.
MAX_HOME_BLOCKS = 100


@dataclass(frozen=True)
class _Shown:
    """The part of the Home that is the same for everyone."""

    pending: list[TaskRow]
    decisions: list[TaskRow]
    status: BotStatus


class HomePublisher:
    """Builds and publishes Home tabs from the database alone: opening the Home costs no LeadLex call."""

    #: Homes re-published after a change: those opened in the last VIEWER_TTL seconds, at most MAX_VIEWERS.
    VIEWER_TTL = 8 * 3600.0
    MAX_VIEWERS = 50
    #: How long a decider's Home waits for their next decisions before it is published (one publish for a burst).
    DECIDED_PAUSE = 0.3

    def __init__(
        self,
        store: Store,
        client: WebClient,
        decider: Decider,
        status: Callable[[], BotStatus],
        *,
        submit: Callable[..., object] | None = None,
        debounce: float = 2.0,
    ) -> None:
        self._store = store
        self._client = client
        self._decider = decider
        self._status = status
        self._submit = submit
        self._debounce = debounce
        self._viewers: dict[str, float] = {}
        self._extras: dict[str, tuple[dict[str, Any], ...]] = {}
        self._refresh_queued = False
        self._deciders: dict[str, None] = {}  # Homes to publish after decisions (insertion-ordered)
        self._lock = threading.Lock()

    def opened(self, user: str, extra: Sequence[dict[str, Any]] = ()) -> None:
        """Someone opened their Home: publish it, and keep it fresh after later changes.

        `extra` blocks go above the tasks, in this and later publishes of this person's Home (multi-workspace
        mode shows the workspace's LeadLex settings there).
        """
        with self._lock:
            self._viewers[user] = time.monotonic()
            if extra:
                self._extras[user] = tuple(extra)
            else:
                self._extras.pop(user, None)
            if len(self._viewers) > self.MAX_VIEWERS:
                oldest = min(self._viewers, key=self._viewers.__getitem__)
                del self._viewers[oldest]
                self._extras.pop(oldest, None)
        self.publish(user)

    def changed(self) -> None:
        """A task changed: re-publish recent viewers' Homes once, shortly (many changes, one refresh)."""
        if self._submit is None:
            return
        with self._lock:
            if self._refresh_queued or not self._viewers:
                return
            self._refresh_queued = True
        self._submit(self._refresh)

    def decided(self, user: str) -> None:
        """`user` decided: publish their Home shortly, once for all the decisions they make meanwhile.

        Without a queue to publish on, it is published at once.
        """
        if self._submit is None:
            self.publish(user)
            return
        with self._lock:
            first = not self._deciders
            self._deciders[user] = None
        if first and self._submit(self._publish_deciders) is None:
            with self._lock:  # not queued (the queue is full, or stopping): the next decision queues it again
                self._deciders.clear()

    def _publish_deciders(self) -> None:
        """Publish the Homes of everyone who decided since the last time (after a short pause gathering a burst)."""
        time.sleep(self.DECIDED_PAUSE)
        with self._lock:
            users = list(self._deciders)
            self._deciders.clear()
        if users:
            shown = self._gather()
            for user in users:
                self._publish(user, shown)

    def _refresh(self) -> None:
        """Publish every recent viewer's Home (after a short pause that gathers a burst of changes)."""
        time.sleep(self._debounce)
        cutoff = time.monotonic() - self.VIEWER_TTL
        with self._lock:
            self._refresh_queued = False
            self._viewers = {user: at for user, at in self._viewers.items() if at >= cutoff}
            self._extras = {user: extra for user, extra in self._extras.items() if user in self._viewers}
            viewers = list(self._viewers)
        shown = self._gather()
        for user in viewers:
            self._publish(user, shown)

    def publish(self, user: str) -> None:
        """Show `user` their Home tab as it stands now; a Slack refusal is logged, never raised."""
        self._publish(user, self._gather())

    def _gather(self) -> _Shown:
        """What every Home shows at this moment (read once, however many Homes are published from it)."""
        status = self._status()
        return _Shown(
            pending=self._store.in_states((TaskState.PENDING,), limit=home.HOME_TASKS),
            decisions=self._store.recent_decisions(home.HOME_DECISIONS),
            status=status,
        )

    def _publish(self, user: str, shown: _Shown) -> None:
        """Publish one person's Home from what is shown: only the buttons depend on who they are."""
        escalated = {row.task_id for row in shown.pending if row.escalated_at is not None}
        decidable, notice = self._decider.decidable(user, [(row.task, row.channel) for row in shown.pending], escalated)
        policy = self._decider.approvers.policy if self._decider.approvers is not None else None
        view = home.home_view(
            pending=shown.pending,
            pending_total=shown.status.pending,
            decisions=shown.decisions,
            status=shown.status,
            now=utcnow(),
            buttons=lambda task: task.id in decidable,
            notice=notice,
            confirm_above=policy.confirm_above if policy is not None else None,
        )
        with self._lock:
            extra = self._extras.get(user, ())
        if extra:  # above the tasks; the tasks' end gives way when Slack's 100 blocks would be passed
            view["blocks"] = [*extra, *view["blocks"]][:MAX_HOME_BLOCKS]
        try:
            self._client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the Home tab of %s: %s", user, slack_error_text(exc))
