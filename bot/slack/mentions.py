"""Lexi outside the assistant pane: direct messages to the bot and `@lexi-bot` mentions, each answered in a thread.

Both go the pane's way (bot.slack.assistant.take: queue questions answered from the store, the rest by Lexi in the
thread's own conversation, on the general queue, so Bolt acknowledges the event at once), in the thread under the
person's message, or the thread it is in. Slack refuses the pane's status, title and prompts outside its threads,
so none are set here. Messages from bots (this one included), edits and other subtypes get no answer.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App, BoltContext

from bot.slack.assistant import GREETING, Turn, take
from bot.slack.listeners import RUNTIME, runtime_of

log = logging.getLogger(__name__)


def register(app: App) -> None:
    """Answer DMs that are not the pane's (bot.slack.assistant has those) and mentions in channels."""
    app.event("message")(handle_direct_message)
    app.event("app_mention")(handle_app_mention)


def handle_direct_message(event: dict[str, Any], context: BoltContext) -> None:
    """Queue the answer to a person's DM to the bot, in a thread under it (or in the thread it is in)."""
    if RUNTIME not in context or event.get("channel_type") != "im" or not from_a_person(event):
        log.debug("message %s in %s is not for Lexi", event.get("ts"), event.get("channel"))
        return
    text = without_mention(str(event.get("text") or ""), context.bot_user_id)
    if text:  # a file without words gets no answer, as in the pane
        take(runtime_of(context), turn_of(event, text))


def handle_app_mention(event: dict[str, Any], context: BoltContext) -> None:
    """Queue the answer to a mention of the bot in a channel, in a thread under it; a bare mention is greeted."""
    if RUNTIME not in context or not from_a_person(event):
        log.debug("mention %s in %s is not for Lexi", event.get("ts"), event.get("channel"))
        return
    runtime = runtime_of(context)
    turn = turn_of(event, without_mention(str(event.get("text") or ""), context.bot_user_id))
    if turn.text:
        take(runtime, turn)
    else:
        runtime.messenger.say(turn.channel, GREETING, thread_ts=turn.thread_ts)


def from_a_person(event: dict[str, Any]) -> bool:
    """Whether a message event is a person's new message: not a bot's, not an edit or another subtype."""
    return bool(event.get("user")) and not event.get("bot_id") and not event.get("subtype")


def turn_of(event: dict[str, Any], text: str) -> Turn:
    """The turn of a DM or mention: answered in the thread it is in, or in a new one under it."""
    thread_ts = str(event.get("thread_ts") or event["ts"])
    return Turn(str(event["user"]), str(event["channel"]), thread_ts, text, in_pane=False)


def without_mention(text: str, bot_user_id: str | None) -> str:
    """A message's words without its leading mention of the bot (`<@UBOT>`, `<@UBOT|lexi-bot>`), stripped."""
    if bot_user_id:
        text = re.sub(rf"^\s*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[\s,:]*", "", text)
    return text.strip()
