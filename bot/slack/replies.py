"""What /lexi answers, as text built by pure functions: usage, the bot's status, outcomes and troubles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.errors import (
    InvalidKey,
    InvalidRequest,
    LexiError,
    NotFound,
    OutOfCredits,
    PermissionDenied,
    RateLimited,
    TransientError,
)
from bot.lexi.models import DISMISS_REASONS, STATUSES, Task
from bot.slack.blocks import describe_task, escape, truncate
from bot.slack.texts import KEY_REFUSED, LIMIT_REACHED, place

WORKING = "Working on it…"
#: The most of Lexi's answer shown, before escaping (a message's text holds 40,000 characters).
ANSWER_MAX = 2500

USAGE = "\n".join(
    [
        "*/lexi* — Lexi's tasks and Lexi herself, from Slack",
        "• `/lexi tasks [status]` — tasks in LeadLex (default `pending`; also "
        + ", ".join(f"`{s}`" for s in STATUSES[1:])
        + ")",
        "• `/lexi approve <task-id>` — approve a pending task",
        "• `/lexi dismiss <task-id> [reason] [note]` — dismiss it; reason: "
        + ", ".join(f"`{code}`" for code in DISMISS_REASONS),
        "• `/lexi ask [--new] <message>` — ask Lexi; `--new` starts a new conversation",
        "• `/lexi status` — how the bot is doing",
        "• `/lexi help` — this message",
    ]
)


@dataclass(frozen=True)
class BotStatus:
    """The bot's health as one person sees it in `/lexi status` and the App Home."""

    last_poll: datetime | None
    pending: int
    calls_left: int | None
    calls_limit: int | None
    #: How Slack reaches the bot: "socket", "http", or "multi" (HTTP, for every workspace that installs it).
    mode: str
    database: str
    problem: str | None = None


def usage(problem: str | None = None) -> str:
    """The usage text, after what was wrong with the command when something was."""
    return f"{problem}\n\n{USAGE}" if problem else USAGE


#: How `/lexi status` names the bot's way of hearing from Slack (BotStatus.mode).
_CONNECTIONS = {
    "socket": "Socket Mode",
    "http": "HTTP",
    "multi": "HTTP, serving this workspace in multi-workspace mode",
}

_MINUTE = 60  # seconds
_HOUR = 3600
_DAY = 86_400


def ago(then: datetime | None, now: datetime) -> str:
    """How long ago `then` was, in words: "just now", "5 min ago", "3 h ago", "2 days ago"."""
    if then is None:
        return "at an unknown time"
    seconds = max((now - then).total_seconds(), 0.0)
    if seconds < _MINUTE:
        return "just now"
    if seconds < _HOUR:
        return f"{int(seconds // _MINUTE)} min ago"
    if seconds < _DAY:
        return f"{int(seconds // _HOUR)} h ago"
    days = int(seconds // _DAY)
    return f"{days} day ago" if days == 1 else f"{days} days ago"


def status_lines(status: BotStatus, now: datetime) -> list[str]:
    """The bot's health, one fact a line."""
    calls = "unknown until LeadLex is first called"
    if status.calls_left is not None:
        calls = f"{status.calls_left:,}" + (f" of {status.calls_limit:,}" if status.calls_limit else "")
    lines = [
        f"Last successful poll: {ago(status.last_poll, now) if status.last_poll else 'none yet'}",
        f"Pending tasks: {status.pending:,}",
        f"LeadLex calls left today: {calls}",
        f"Slack connection: {_CONNECTIONS.get(status.mode, 'HTTP')}",
        f"Database: {'PostgreSQL' if status.database == 'postgresql' else 'SQLite'}",
    ]
    if status.problem:
        lines.insert(0, f"⚠️ {escape(truncate(status.problem, 300))}")
    return lines


def status_text(status: BotStatus, now: datetime) -> str:
    """The answer to `/lexi status`."""
    return "*lexi-bot status*\n" + "\n".join(f"• {line}" for line in status_lines(status, now))


def decided(action: str, task: Task, channel: str) -> str:
    """What a person is told after their command approved or dismissed a task."""
    verb = "✅ Approved" if action == "approve" else "🚫 Dismissed"
    return f"{verb}: {describe_task(task)}. Its card in {place(channel)} shows it."


def not_found(task_id: str) -> str:
    """What a person is told when LeadLex has no task with this id."""
    return f"LeadLex has no task `{task_ref(task_id)}`. `/lexi tasks` lists the pending ones with their ids."


def not_pending(task: Task) -> str:
    """What a person is told when the task they named was decided already."""
    status = escape(task.status)
    return f"Task `{task_ref(task.id)}` is already {status} in LeadLex; there is nothing left to decide."


def not_posted(task_id: str, channel: str) -> str:
    """What a person is told when a task could not be posted, so it was not decided either."""
    ref = task_ref(task_id)
    return f"I could not post task `{ref}` to {place(channel)}, so I did not decide it. Try again later."


def lexi_answer(response: str, where: str | None) -> str:
    """Lexi's answer, escaped, and where the task it prepared waits for approval."""
    answer = escape(truncate(response.strip(), ANSWER_MAX)) or "_(no answer)_"
    return f"*Lexi:* {answer}" + (f"\n\nThe task Lexi prepared needs approval: {where}" if where else "")


def chat_lost() -> str:
    """What a person is told when Lexi did not answer (chat is never retried: it costs credits)."""
    return (
        "Lexi did not answer in time. Your message may still have reached her, so check `/lexi tasks` "
        "before asking again."
    )


#: The sentence for each LeadLex error that needs no details of it, tried in order.
_TROUBLES: tuple[tuple[type[LexiError], str], ...] = (
    (OutOfCredits, "LeadLex has no credits left for Lexi. Add credits to the LeadLex workspace, then ask again."),
    (RateLimited, LIMIT_REACHED),
    (InvalidKey, KEY_REFUSED),
    (PermissionDenied, "The bot's LeadLex API key lacks the Lexi permission. Ask an admin to grant it in LeadLex."),
    (NotFound, "LeadLex could not find what was asked for."),
)


def trouble(exc: LexiError) -> str:
    """A plain sentence for a LeadLex error."""
    for kind, sentence in _TROUBLES:
        if isinstance(exc, kind):
            return sentence
    if isinstance(exc, InvalidRequest):
        return f"LeadLex refused the request ({escape(exc.code or 'invalid request')})."
    if isinstance(exc, TransientError):
        return "LeadLex is not answering right now. Try again in a minute."
    return "LeadLex answered with an error. Try again later."


def oops() -> str:
    """What a person is told when the bot itself failed (the details are in its log)."""
    return "Something went wrong inside the bot; the details are in its log. Try again in a minute."


def task_ref(task_id: str) -> str:
    """A task id fit for inline code: escaped, without backticks, short."""
    return escape(truncate(task_id.replace("`", "'"), 100))
