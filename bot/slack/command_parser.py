"""The /lexi command's grammar: turn the text after `/lexi` into a `Command`, or say what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.lexi.models import DISMISS_REASONS, STATUSES, TaskState
from bot.slack.blocks import escape, truncate

#: The longest task id accepted (the database column's size).
TASK_ID_MAX = 255
#: The longest dismiss note accepted (the same as the dismiss form's).
NOTE_MAX = 500
#: The longest message sent to Lexi.
MESSAGE_MAX = 4000
#: What a person is told about a longer one (nothing is sent to Lexi).
TOO_LONG = f"Keep messages to Lexi under {MESSAGE_MAX} characters."
NEW_FLAG = "--new"


@dataclass(frozen=True)
class Command:
    """One parsed /lexi invocation; `problem` says why the text was not understood (then `name` is "help")."""

    name: str
    task_id: str | None = None
    status: str | None = None
    reason: str | None = None
    note: str | None = None
    message: str | None = None
    new_conversation: bool = False
    problem: str | None = None

    @property
    def needs_io(self) -> bool:
        """Whether answering needs LeadLex, Slack or the database (everything but usage and problems)."""
        return self.name != "help"


def parse_command(text: str) -> Command:
    """Parse the text Slack sends after `/lexi`; unknown or malformed input becomes help with a problem."""
    word, rest = _head(_unescape(text))
    name = word.lower()
    if name in ("", "help"):
        return Command("help")
    if name == "tasks":
        return _tasks(rest)
    if name in ("approve", "dismiss"):
        return _decision(name, rest)
    if name == "ask":
        return _ask(rest)
    if name == "status":
        return Command("status") if not rest else _problem("`/lexi status` takes no arguments.")
    return _problem(f"I don't know `/lexi {_quote(word)}`.")


def _tasks(rest: str) -> Command:
    """`tasks [status]`: the status defaults to pending and must be one LeadLex knows."""
    words = rest.split()
    if len(words) > 1:
        return _problem("`/lexi tasks` takes at most one status.")
    status = words[0].lower() if words else TaskState.PENDING
    if status not in STATUSES:
        return _problem(f"`{_quote(words[0])}` is not a task status. Use one of: {', '.join(STATUSES)}.")
    return Command("tasks", status=status)


def _decision(name: str, rest: str) -> Command:
    """`approve <id>`, or `dismiss <id> [reason] [note]` where free text without a reason code is the note."""
    task_id, tail = _head(rest)
    if not task_id:
        return _problem(f"`/lexi {name}` needs a task id, e.g. `/lexi {name} 3f2c…`.")
    if len(task_id) > TASK_ID_MAX:
        return _problem("That is too long to be a task id.")
    if name == "approve":
        return _problem("`/lexi approve` takes one task id.") if tail else Command("approve", task_id=task_id)
    code, after = _head(tail)
    reason = code.lower() if code.lower() in DISMISS_REASONS else None
    note = after if reason else tail
    if len(note) > NOTE_MAX:
        return _problem(f"Keep the dismiss note under {NOTE_MAX} characters.")
    return Command("dismiss", task_id=task_id, reason=reason, note=note or None)


def _ask(rest: str) -> Command:
    """`ask [--new] <message>`: `--new` starts a new Lexi conversation."""
    first, after = _head(rest)
    new = first.lower() == NEW_FLAG
    message = after if new else rest
    if not message:
        return _problem("`/lexi ask` needs a message, e.g. `/lexi ask find 20 CFOs at fintechs in Germany`.")
    if len(message) > MESSAGE_MAX:
        return _problem(TOO_LONG)
    return Command("ask", message=message, new_conversation=new)


def _problem(problem: str) -> Command:
    """Help, prefixed by what was wrong."""
    return Command("help", problem=problem)


def _head(text: str) -> tuple[str, str]:
    """Split off the first word; the rest keeps its inner spacing and line breaks."""
    parts = text.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _unescape(text: str) -> str:
    """Undo the &amp;, &lt; and &gt; Slack puts into command text, so Lexi and LeadLex get what was typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _quote(text: str) -> str:
    """Echo a typed word safely inside backticks: escaped, without backticks, short."""
    return escape(truncate(text.replace("`", "'"), 40))
