"""What each /lexi subcommand does: run on the bot's workers, answered privately through its response_url."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from slack_sdk.errors import SlackApiError

from bot.core.announcer import Announcer
from bot.core.conversations import Conversations
from bot.core.decisions import Decider
from bot.core.keeper import NotRecorded
from bot.core.tasks import TaskLookup
from bot.db.store import DecisionRow, utcnow
from bot.errors import LexiError, RateLimited, TransientError
from bot.lexi.models import Task, TaskState
from bot.slack import home_view as home
from bot.slack import replies
from bot.slack.answers import Answer
from bot.slack.command_parser import Command
from bot.slack.messenger import Messenger, slack_error_text
from bot.slack.replies import BotStatus
from bot.slack.texts import NOT_RECORDED, place

log = logging.getLogger(__name__)


class Parts(Protocol):
    """What the subcommands use of the running bot (bot.runtime.Runtime has it all): services, not the store."""

    @property
    def tasks(self) -> TaskLookup:
        """Finds tasks the bot knows or LeadLex lists."""

    @property
    def conversations(self) -> Conversations:
        """Asks Lexi, continuing each person's conversation."""

    @property
    def announcer(self) -> Announcer:
        """Posts a task's card."""

    @property
    def decider(self) -> Decider:
        """The one decision path."""

    @property
    def messenger(self) -> Messenger:
        """Slack's side of the cards (their permalinks)."""

    def status(self) -> BotStatus:
        """The bot's health."""


@dataclass(frozen=True)
class Asker:
    """Who ran the command, in which channel, and the response_url that answers them."""

    user: str
    channel: str
    response_url: str


def run(runtime: Parts, command: Command, asker: Asker, decision: DecisionRow | None = None) -> None:
    """Carry out a parsed command and answer it; every failure is answered with a plain sentence.

    `decision`: the approve or dismiss journaled before the command was acknowledged.
    """
    answer = Answer(asker.response_url)
    try:
        if decision is not None:
            _decide(runtime, command, asker, answer, decision)
        else:
            _HANDLERS[command.name](runtime, command, asker, answer)
    except LexiError as exc:
        log.warning("/lexi %s failed: %s", command.name, exc)
        answer(replies.trouble(exc))
    except Exception:
        log.exception("/lexi %s failed", command.name)
        answer(replies.oops())


def _tasks(runtime: Parts, command: Command, asker: Asker, answer: Answer) -> None:
    """List one status's tasks from LeadLex; pending ones the asker may decide get buttons (and a card if missing)."""
    status = command.status or TaskState.PENDING
    tasks = runtime.tasks.listed(status)
    shown = home.newest_first(tasks)[: home.MESSAGE_TASKS]
    decidable: set[str] = set()
    refusal = None
    if status == TaskState.PENDING:
        decidable, refusal = _decidable(runtime, asker.user, shown)
        _announce_missing(runtime, [t for t in shown if t.id in decidable])
    message = home.task_list(
        tasks,
        status,
        utcnow(),
        buttons=lambda task: task.id in decidable,
        notice=refusal,
        confirm_above=runtime.announcer.policy.confirm_above,
    )
    answer(message["text"], message["blocks"])


def _decidable(runtime: Parts, user: str, tasks: list[Task]) -> tuple[set[str], str | None]:
    """The tasks `user` may decide (in the channel each is, or would be, announced in), and a notice for the rest."""
    policy = runtime.announcer.policy
    pairs = []
    escalated = set()
    for task in tasks:
        row = runtime.tasks.record(task.id)
        pairs.append((task, row.channel if row is not None else policy.for_type(task.type).channel))
        if row is not None and row.escalated_at is not None:
            escalated.add(task.id)
    return runtime.decider.decidable(user, pairs, escalated)


def _announce_missing(runtime: Parts, tasks: list[Task]) -> None:
    """Announce shown tasks the bot has no record of yet, so their buttons find a record and a card."""
    known = runtime.tasks.known(t.id for t in tasks)
    for task in tasks:
        if task.id not in known:
            _announce(runtime, task)


def _decide(
    runtime: Parts, command: Command, asker: Asker, answer: Answer, decision: DecisionRow | None = None
) -> None:
    """Approve or dismiss by id through the one decision path; a pending task lacking a card gets one first.

    Permission is checked against the task itself (its type, its channel), never against "some type". A decision
    journaled before the ack is carried out here, or closed when the command is answered without it.
    """
    task_id = command.task_id or ""
    if decision is None:
        try:
            decision = runtime.decider.accept(
                task_id,
                action=command.name,
                user=asker.user,
                surface="command",
                reason=command.reason,
                note=command.note,
                reply={"response_url": asker.response_url},
            )
        except NotRecorded:
            answer(NOT_RECORDED)
            return
    carried = False
    try:
        if runtime.tasks.record(task_id) is None:
            task = runtime.tasks.pending(task_id)
            if task is None:
                elsewhere = runtime.tasks.decided(task_id)
                answer(replies.not_pending(elsewhere) if elsewhere else replies.not_found(task_id))
                return
            channel = runtime.announcer.policy.for_type(task.type).channel
            verdict = runtime.decider.permission(asker.user, task.type, command.name, channel)
            if not verdict.allowed:  # someone who may not decide it does not get it announced either
                answer(runtime.decider.refusal(task.type, command.name, channel, verdict))
                return
            if not _announce(runtime, task):
                answer(replies.not_posted(task_id, runtime.announcer.channel))
                return
        carried = True
        outcome = runtime.decider.carry(decision, answer)
    finally:
        if not carried:
            runtime.decider.close(decision)
    row = runtime.tasks.record(task_id)
    if outcome.decided and row is not None:
        answer(replies.decided(command.name, row.task, row.channel))


def _ask(runtime: Parts, command: Command, asker: Asker, answer: Answer) -> None:
    """Send the message to Lexi in the asker's conversation; a task Lexi prepared is announced at once."""
    try:
        reply = runtime.conversations.ask(
            asker.user, asker.channel, command.message or "", new=command.new_conversation
        )
    except RateLimited as exc:
        answer(replies.trouble(exc))
        return
    except TransientError as exc:  # chat is never retried: it costs credits and may have reached Lexi
        log.warning("Lexi chat failed: %s", exc)
        answer(replies.chat_lost())
        return
    where = announce_by_id(runtime, reply.task_id) if reply.requires_approval and reply.task_id else None
    answer(replies.lexi_answer(reply.response, where))


def announce_by_id(runtime: Parts, task_id: str) -> str:
    """Announce a task Lexi just created (no wait for the next poll) and say where its card is.

    `/lexi ask` and the assistant pane (bot.slack.assistant) both do this after Lexi's answer.
    """
    channel = runtime.announcer.channel
    try:
        task = runtime.tasks.pending(task_id)
    except LexiError as exc:
        log.warning("could not fetch task %s to announce it: %s", task_id, exc)
        task = None
    if task is not None:
        _announce(runtime, task)
    row = runtime.tasks.record(task_id)
    if row is None or row.message_ts is None:
        return f"its card will appear in {place(channel)} shortly."
    try:
        link = runtime.messenger.permalink(row)
    except SlackApiError as exc:
        log.warning("no permalink for task %s: %s", task_id, slack_error_text(exc))
        return f"its card is in {place(row.channel)}."
    return f"<{link}|see its card> in {place(row.channel)}."


def _announce(runtime: Parts, task: Task) -> bool:
    """Announce a task now (best effort: the poller tries again); True when it has a card afterwards."""
    try:
        runtime.announcer.announce(task)
    except Exception as exc:  # noqa: BLE001 - best effort: the poller announces it at its next cycle
        log.warning("could not announce task %s now: %s", task.id, exc)
    row = runtime.tasks.record(task.id)
    return row is not None and row.message_ts is not None


def _status(runtime: Parts, _command: Command, _asker: Asker, answer: Answer) -> None:
    """The bot's health in one message."""
    answer(replies.status_text(runtime.status(), utcnow()))


_HANDLERS: dict[str, Callable[[Parts, Command, Asker, Answer], None]] = {
    "tasks": _tasks,
    "approve": _decide,
    "dismiss": _decide,
    "ask": _ask,
    "status": _status,
}
