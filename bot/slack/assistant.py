"""Lexi in Slack's AI assistant pane: a greeting with suggested prompts, then each message answered in its thread.

Bolt's `Assistant` acknowledges the pane's events before its handlers run. A person's message is answered on the
bot's general queue (Lexi's chat can take seconds, and must not hold a Bolt listener thread a click needs): the
status "Lexi is thinking…" shows meanwhile and is always cleared. Questions about the queue are answered from the
bot's own records (no LeadLex call, no credits); everything else goes to Lexi's chat in the thread's conversation,
which is kept in the database (bot.core.conversations).

`take` and `answer` are the one answer path: plain DMs and @mentions (bot.slack.mentions) use them too, as turns
outside the pane, which get no status, title or prompts (Slack refuses assistant.threads.* outside its threads).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, Assistant, BoltContext
from slack_bolt.context.save_thread_context import SaveThreadContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import LexiError, RateLimited, TransientError
from bot.ops.logs import clip
from bot.slack import replies, subcommands
from bot.slack.blocks import truncate
from bot.slack.command_parser import MESSAGE_MAX, TOO_LONG
from bot.slack.listeners import RUNTIME, Running, runtime_of
from bot.slack.messenger import slack_error_text

log = logging.getLogger(__name__)

GREETING = (
    "Hi, I'm Lexi, LeadLex's AI assistant. Ask me to find prospects, update contacts or plan a campaign; "
    "work that needs approval waits for it in Slack. I can also tell you what is waiting for your approval."
)
SUGGESTED_PROMPTS = (
    "What is waiting for my approval?",
    "Find 20 VPs of Sales at fintech companies in New York",
    "Summarise what Lexi did today",
)
THINKING = "Lexi is thinking…"
#: What a person is told when the bot's queue is full and their message cannot be taken now.
BUSY = "I'm too busy to answer right now; please ask again in a minute."
#: The longest thread title set from a first message.
TITLE_MAX = 60
#: The most waiting tasks listed in an answer (each with a link to its card).
WAITING_SHOWN = 10
#: Questions about the queue, answered from the bot's records: "what is waiting?", "… for my approval", "pending".
_QUEUE_QUESTION = re.compile(
    r"\bwhat(?:'s|’s|\s+is|\s+are)\s+(?:still\s+)?waiting\b|\bwaiting\s+for\s+(?:my|me)\b|\bpending\b", re.IGNORECASE
)
#: Bolt's key for the thread context saved in the first bot message's metadata (its default context store).
_CONTEXT_EVENT = "assistant_thread_context"


def register(app: App) -> None:
    """Put the assistant on the app (after the middleware that gives listeners the runtime).

    Its handlers do nothing for a request without a runtime (in multi-workspace mode, a workspace not connected
    yet: its events are acknowledged and nothing more, as bot.slack.unconnected does). A DM in a thread that is not
    the pane's passes on to the app's own "message" listener (bot.slack.mentions).
    """
    assistant = Assistant(logger=logging.getLogger("bot.bolt"))
    assistant.thread_started(handle_thread_started)
    assistant.thread_context_changed(handle_thread_context_changed)
    # Bolt annotates `matchers` as one matcher but concatenates it to a list of its own: a list is what works.
    assistant.user_message(handle_user_message, matchers=[in_pane_thread])  # type: ignore[arg-type]
    app.use(assistant)


@dataclass(frozen=True)
class Turn:
    """One person's message to Lexi and the thread it is answered in: the pane's, or one under a DM or a mention."""

    user: str
    channel: str
    thread_ts: str
    text: str
    #: Whether the thread is an assistant pane's: only there are its status, title and prompts set.
    in_pane: bool = True


class Pane:
    """The assistant.threads.* calls on one thread: status, suggested prompts, title; Slack's refusals are logged."""

    def __init__(self, client: WebClient, channel: str, thread_ts: str) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts

    def status(self, text: str) -> None:
        """Show `text` as the thread's status ("" clears it)."""
        self._call("status", self._client.assistant_threads_setStatus, status=text)

    def suggest(self, prompts: Sequence[str]) -> None:
        """Offer prompts the person can click (each sends its own words)."""
        self._call(
            "prompts",
            self._client.assistant_threads_setSuggestedPrompts,
            prompts=[{"title": prompt, "message": prompt} for prompt in prompts],
        )

    def title(self, text: str) -> None:
        """Name the thread in the pane's history."""
        self._call("title", self._client.assistant_threads_setTitle, title=text)

    def _call(self, what: str, method: Any, **kwargs: Any) -> None:
        """Call one assistant.threads method on this thread; a refusal is logged, never raised."""
        try:
            method(channel_id=self._channel, thread_ts=self._thread_ts, **kwargs)
        except SlackApiError as exc:
            log.warning("could not set the %s of assistant thread %s: %s", what, self._thread_ts, slack_error_text(exc))


def handle_thread_started(event: dict[str, Any], context: BoltContext) -> None:
    """Greet the person who opened the pane and suggest what to ask (the greeting carries the pane's context)."""
    if RUNTIME not in context:
        return
    runtime = runtime_of(context)
    thread = event["assistant_thread"]
    channel, thread_ts = str(thread["channel_id"]), str(thread["thread_ts"])
    metadata = None
    if thread.get("context"):  # where Bolt's context store keeps it for this thread's later messages
        metadata = {"event_type": _CONTEXT_EVENT, "event_payload": thread["context"]}
    runtime.messenger.say(channel, GREETING, thread_ts=thread_ts, metadata=metadata)
    Pane(runtime.slack, channel, thread_ts).suggest(SUGGESTED_PROMPTS)


def handle_thread_context_changed(
    event: dict[str, Any], context: BoltContext, save_thread_context: SaveThreadContext
) -> None:
    """The person looks at another channel with the pane open: keep that context with the thread (Bolt's store)."""
    if RUNTIME not in context:
        return
    thread = event["assistant_thread"]
    try:
        save_thread_context(thread.get("context") or {})
    except SlackApiError as exc:  # the thread's first message could not be read or updated: the context waits
        log.warning(
            "could not keep the context of assistant thread %s: %s", thread.get("thread_ts"), slack_error_text(exc)
        )


def in_pane_thread(event: dict[str, Any], context: BoltContext) -> bool:
    """Whether a DM in a thread is in an assistant pane's thread: one the app started, not under a person's message.

    Slack names the author of a thread's first message in `parent_user_id`; the pane's threads start with the app's.
    """
    parent = event.get("parent_user_id")
    return parent is None or parent == context.bot_user_id


def handle_user_message(event: dict[str, Any], context: BoltContext) -> None:
    """Queue the answer to a person's message in an assistant thread; a full queue is said at once."""
    text = str(event.get("text") or "").strip()
    if not text or RUNTIME not in context:  # a file without words, or a workspace not connected yet
        return
    take(runtime_of(context), Turn(str(event.get("user") or ""), str(event["channel"]), str(event["thread_ts"]), text))


def take(runtime: Running, turn: Turn) -> None:
    """Queue the answer to a turn (in the pane, showing "Lexi is thinking…"); a full queue is said at once."""
    log.info("thread %s in %s: %s asked %r", turn.thread_ts, turn.channel, turn.user, clip(turn.text))
    if len(turn.text) > MESSAGE_MAX:  # as `/lexi ask` refuses it: told in the thread, nothing sent to Lexi
        runtime.messenger.say(turn.channel, TOO_LONG, thread_ts=turn.thread_ts)
        return
    pane = _pane(runtime, turn)
    if pane is not None:
        pane.status(THINKING)
    if runtime.submit(answer, runtime, turn) is None:
        runtime.messenger.say(turn.channel, BUSY, thread_ts=turn.thread_ts)
        if pane is not None:
            pane.status("")


def answer(runtime: Running, turn: Turn) -> None:
    """Answer one message in its thread (in the pane: titling a new thread, then clearing the status, always)."""
    pane = _pane(runtime, turn)
    prepared: str | None = None
    try:
        if pane is not None and runtime.conversations.open_thread(turn.channel, turn.thread_ts):
            pane.title(title_from(turn.text))
        if is_queue_question(turn.text):
            reply = waiting(runtime, turn.user)
        else:
            reply, prepared = _ask_lexi(runtime, turn)
    except LexiError as exc:
        log.warning("thread %s in %s: %s", turn.thread_ts, turn.channel, exc)
        reply = replies.trouble(exc)
    except Exception:
        log.exception("thread %s in %s: answering failed", turn.thread_ts, turn.channel)
        reply = replies.oops()
    try:
        runtime.messenger.say(turn.channel, reply, thread_ts=turn.thread_ts)
        if prepared is not None:
            card_in_thread(runtime, prepared, turn)
    finally:
        if pane is not None:
            pane.status("")


def card_in_thread(runtime: Running, task_id: str, turn: Turn) -> None:
    """Post the card of the task Lexi prepared in the thread she answered in (a copy, kept in sync; logged on failure).

    Its buttons are the channel card's: the same permission check at click time and the same single decision.
    """
    try:
        runtime.messenger.post_copy(task_id, turn.channel, "thread", turn.thread_ts)
    except Exception:
        log.exception("thread %s in %s: could not post the card of task %s", turn.thread_ts, turn.channel, task_id)


def _pane(runtime: Running, turn: Turn) -> Pane | None:
    """The pane calls of a turn's thread; None outside the pane."""
    return Pane(runtime.slack, turn.channel, turn.thread_ts) if turn.in_pane else None


def is_queue_question(text: str) -> bool:
    """Whether a message asks what is waiting for approval (answered from the bot's own records)."""
    return _QUEUE_QUESTION.search(text) is not None


def title_from(text: str) -> str:
    """A thread title from its first message: one line, clipped."""
    return truncate(" ".join(text.split()), TITLE_MAX)


def _ask_lexi(runtime: Running, turn: Turn) -> tuple[str, str | None]:
    """Lexi's answer in the thread's conversation, and the id of a task she prepared (announced at once) or None."""
    try:
        reply = runtime.conversations.ask_in_thread(turn.channel, turn.thread_ts, turn.text)
    except RateLimited as exc:
        return replies.trouble(exc), None
    except TransientError as exc:  # chat is never retried: it costs credits and may have reached Lexi
        log.warning("Lexi chat failed: %s", exc)
        return replies.chat_lost(), None
    if not (reply.requires_approval and reply.task_id):
        return replies.lexi_answer(reply.response, None), None
    where = subcommands.announce_by_id(runtime, reply.task_id)
    return replies.lexi_answer(reply.response, where), reply.task_id


def waiting(runtime: Running, user: str) -> str:
    """What waits for `user`'s approval, with links to the cards, from the bot's records (no LeadLex call)."""
    rows, total = runtime.tasks.waiting(WAITING_SHOWN)
    if not total:
        return "Nothing is waiting for approval right now."
    escalated = {row.task_id for row in rows if row.escalated_at is not None}
    mine, notice = runtime.decider.decidable(user, [(row.task, row.channel) for row in rows], escalated)
    lines = [f"• {runtime.messenger.linked(row)}" for row in rows if row.task_id in mine]
    for_others, unlisted = len(rows) - len(lines), total - len(rows)
    why = f"\n{notice}" if notice and not lines else ""  # e.g. Slack could not say who may decide
    if not lines and not unlisted:
        return f"Nothing is waiting for your approval; {_tasks(total)} {_verb(total)} for other approvers.{why}"
    if not lines:
        return f"None of the {_tasks(len(rows))} I looked at waits for you; {total} wait in all: see the App Home.{why}"
    text = f"*{_tasks(len(lines))} {_verb(len(lines))} for your approval:*\n" + "\n".join(lines)
    if for_others:
        text += f"\n_{_tasks(for_others)} more {_verb(for_others)} for other approvers._"
    if unlisted:
        text += f"\n_{unlisted} more {_verb(unlisted)} beyond these: see the App Home._"
    return text


def _tasks(count: int) -> str:
    """'1 task', '3 tasks'."""
    return f"{count} task" if count == 1 else f"{count} tasks"


def _verb(count: int) -> str:
    """'waits' or 'wait'."""
    return "waits" if count == 1 else "wait"
