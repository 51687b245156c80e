"""Publish a person's App Home: gather what it shows from the store and the bot's status, then publish it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import home
from bot.db.store import Store, utcnow
from bot.decisions import Decider
from bot.messenger import slack_error_text
from bot.replies import BotStatus

log = logging.getLogger(__name__)


class HomePublisher:
    """Builds and publishes Home tabs from the database alone: opening the Home costs no LeadLex call."""

    def __init__(
        self, store: Store, client: WebClient, decider: Decider, status: Callable[[], BotStatus]
    ) -> None:
        self._store = store
        self._client = client
        self._decider = decider
        self._status = status

    def publish(self, user: str) -> None:
        """Show `user` their Home tab as it stands now; a Slack refusal is logged, never raised."""
        status = self._status()
        may_decide = self._decider.may_decide(user)
        view = home.home_view(
            pending=self._store.in_states(("pending",), limit=home.HOME_TASKS),
            pending_total=status.pending,
            decisions=self._store.recent_decisions(home.HOME_DECISIONS),
            status=status,
            now=utcnow(),
            buttons=may_decide,
            notice=None if may_decide else self._decider.refusal(),
        )
        try:
            self._client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the Home tab of %s: %s", user, slack_error_text(exc))
