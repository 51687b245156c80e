"""Task lists and the App Home, built as plain data: `/lexi tasks` answers and each person's Home tab.

Both show tasks the same way — the card's summary line, what approving does, age and id — with the channel
cards' Approve / Dismiss buttons (same action ids), so the card listeners decide from every surface.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.db.store import TaskRow
from bot.lexi.models import DISMISS_REASONS, Task, TaskState
from bot.slack.blocks import (
    ConfirmAbove,
    confirm_size,
    describe_task,
    escape,
    format_time,
    impact,
    task_buttons,
    truncate,
)
from bot.slack.replies import BotStatus, ago, status_lines, task_ref

#: Tasks shown in one `/lexi tasks` answer (two blocks each: a message holds at most 50).
MESSAGE_TASKS = 15
#: The characters of JSON one answer may take (Slack refuses messages near 13k with msg_blocks_too_long).
MESSAGE_CHARS = 11_000
#: Pending tasks shown in the Home tab (two blocks each, next to the decisions: a view holds at most 100).
HOME_TASKS = 20
#: Recent decisions shown in the Home tab.
HOME_DECISIONS = 10

_OUTCOMES: dict[str, str] = {
    TaskState.APPROVED: "✅ Approved",
    TaskState.DISMISSED: "🚫 Dismissed",
    TaskState.COMPLETED: "🏁 Approved and completed",
    TaskState.FAILED: "❌ Approved, then failed",
}


def task_blocks(
    task: Task, now: datetime, *, buttons: bool, warning: str | None = None, confirm_above: int | None = None
) -> list[dict[str, Any]]:
    """One task: its summary, what approving does, age and id; with Approve / Dismiss when `buttons`."""
    lines = [describe_task(task)]
    effect = impact(task)
    if effect:
        lines.append(f"_{effect}_")
    if warning:
        lines.append(f"⚠️ {escape(truncate(' '.join(warning.split()), 300))}")
    lines.append(f"Created {ago(task.created_at, now)} · Task `{task_ref(task.id)}`")
    section = _section("\n".join(lines))
    return [section, task_buttons(task, confirm_above)] if buttons else [section]


def newest_first(tasks: Sequence[Task]) -> list[Task]:
    """Tasks sorted by creation, newest first; those without a time last."""
    return sorted(tasks, key=_created_key, reverse=True)


def _created_key(task: Task) -> tuple[bool, float]:
    """Sort key: tasks with a creation time before those without, then by that time."""
    return task.created_at is not None, task.created_at.timestamp() if task.created_at else 0.0


#: Whether a task gets Approve / Dismiss buttons: for all, for none, or per task (those the viewer may decide).
Buttons = bool | Callable[[Task], bool]


def _with_buttons(buttons: Buttons, task: Task) -> bool:
    """Whether this task gets buttons."""
    return buttons(task) if callable(buttons) else buttons


def task_list(
    tasks: Sequence[Task],
    status: str,
    now: datetime,
    *,
    buttons: Buttons,
    notice: str | None = None,
    confirm_above: ConfirmAbove | None = None,
) -> dict[str, Any]:
    """The `/lexi tasks` answer: newest first, as many as fit (≤ MESSAGE_TASKS), with a count of the rest."""
    newest = newest_first(tasks)
    count = len(newest)
    heading = f"{_plural(count, status + ' task')} in LeadLex" if count else f"No {status} tasks in LeadLex."
    blocks = [_section(f"*{heading}*")]
    if notice and count:
        blocks.append(_context(notice))
    size, shown = len(json.dumps(blocks, ensure_ascii=False)), 0
    for task in newest[:MESSAGE_TASKS]:
        item = task_blocks(
            task,
            now,
            buttons=status == TaskState.PENDING and _with_buttons(buttons, task),
            confirm_above=confirm_size(confirm_above, task),
        )
        size += len(json.dumps(item, ensure_ascii=False))
        if size > MESSAGE_CHARS:
            break
        blocks.extend(item)
        shown += 1
    if count > shown:
        blocks.append(_context(f"…and {count - shown:,} older not shown. LeadLex lists them all."))
    return {"text": heading, "blocks": blocks}


def home_view(
    *,
    pending: Sequence[TaskRow],
    pending_total: int,
    decisions: Sequence[TaskRow],
    status: BotStatus,
    now: datetime,
    buttons: Buttons,
    notice: str | None = None,
    confirm_above: ConfirmAbove | None = None,
) -> dict[str, Any]:
    """A person's Home tab: pending tasks newest first, the latest decisions and the bot's status."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Lexi's tasks", "emoji": True}},
        _context(" · ".join(status_lines(status, now))),
        {"type": "divider"},
        _section(f"*Waiting for a decision ({pending_total:,})*" if pending_total else "Nothing is waiting."),
    ]
    if notice and pending:
        blocks.append(_context(notice))
    for row in pending[:HOME_TASKS]:
        blocks.extend(
            task_blocks(
                row.task,
                now,
                buttons=_with_buttons(buttons, row.task),
                warning=row.note,
                confirm_above=confirm_size(confirm_above, row.task),
            )
        )
    hidden = pending_total - min(len(pending), HOME_TASKS)
    if hidden > 0:
        blocks.append(_context(f"…and {hidden:,} older not shown here. Each has its card in the channel."))
    blocks += [{"type": "divider"}, _section("*Recent decisions*")]
    blocks += [_context(_decision_line(row)) for row in decisions[:HOME_DECISIONS]]
    if not decisions:
        blocks.append(_context("No decisions yet."))
    return {"type": "home", "blocks": blocks}


def _decision_line(row: TaskRow) -> str:
    """Who decided what, and when."""
    by = f" by <@{escape(row.actor)}>" if row.actor else " in LeadLex"
    outcome = _OUTCOMES.get(row.state, escape(row.state))
    line = f"{outcome}{by} · {format_time(row.decided_at)} — {describe_task(row.task)}"
    if row.state == TaskState.DISMISSED and row.reason:
        line += f" · Reason: {DISMISS_REASONS.get(row.reason) or escape(truncate(row.reason, 60))}"
    return line


def _plural(count: int, noun: str) -> str:
    """The count and noun, with an s unless it is one: "1 pending task", "3 pending tasks"."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _section(text: str) -> dict[str, Any]:
    """A section with one verbatim mrkdwn text (verbatim: Slack links nothing on its own)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000), "verbatim": True}}


def _context(text: str) -> dict[str, Any]:
    """A context block with one verbatim mrkdwn element."""
    element = {"type": "mrkdwn", "text": truncate(text, 3000), "verbatim": True}
    return {"type": "context", "elements": [element]}
