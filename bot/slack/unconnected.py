"""What a workspace that installed the app but is not connected to LeadLex yet gets (multi-workspace mode).

Its requests carry no runtime (bot.slack.app's tenant middleware found none), so these listeners, registered
before the ordinary ones, answer them instead: a slash command says an admin connects lexi-bot in its Home tab,
a click says the same privately, a view or an event is acknowledged and nothing more. Never a 5xx.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk.errors import SlackApiError

from bot.slack.listeners import RUNTIME

log = logging.getLogger(__name__)

#: The answer to anyone using lexi-bot in a workspace not connected to LeadLex yet.
NOT_CONNECTED = (
    "lexi-bot is not connected to LeadLex yet: a workspace admin connects it in the app's Home tab "
    "(open lexi-bot in Slack and choose Home)."
)
_ANY = re.compile(r".*")
#: Every event but the app's lifecycle ones, which whoever handles uninstalls must still receive.
_ORDINARY_EVENTS = re.compile(r"^(?!(app_uninstalled|tokens_revoked)$)")


def not_connected(context: BoltContext) -> bool:
    """Whether the request's workspace has no runtime (it is installed but not connected to LeadLex)."""
    return RUNTIME not in context


def register(app: App) -> None:
    """Answer every command, click, view and event of an unconnected workspace (before the ordinary listeners)."""
    app.command(_ANY, matchers=[not_connected])(handle_command)
    app.action(_ANY, matchers=[not_connected])(handle_action)
    app.view(_ANY, matchers=[not_connected])(handle_view)
    app.view_closed(_ANY, matchers=[not_connected])(handle_view)
    app.event(_ORDINARY_EVENTS, matchers=[not_connected])(handle_event)


def handle_command(ack: Ack) -> None:
    """A slash command: say, privately, that an admin connects lexi-bot first."""
    ack(text=NOT_CONNECTED, response_type="ephemeral")


def handle_action(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
    """A click: acknowledge, then say so privately where the click came from (when Slack gave a way to answer)."""
    ack()
    if not body.get("response_url"):
        return
    try:
        respond(text=NOT_CONNECTED, response_type="ephemeral", replace_original=False)
    except (SlackApiError, OSError) as exc:  # the answer is a courtesy: the click itself did nothing
        log.info("could not tell a user of an unconnected workspace why nothing happened (%s)", type(exc).__name__)


def handle_view(ack: Ack) -> None:
    """A modal submitted or closed: acknowledged; nothing is done."""
    ack()


def handle_event(ack: Ack) -> None:
    """Any other event (not app_uninstalled or tokens_revoked): acknowledged; nothing is done until connected."""
    ack()
