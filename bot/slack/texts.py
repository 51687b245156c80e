"""What the bot tells a person about their decisions, in one place: constants and small pure functions.

The listeners, the /lexi answers and the decider (bot.core.decisions) all say these words from here, so one
sentence has one spelling however many places say it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import InvalidKey, LexiError, PermissionDenied, RateLimited
from bot.lexi.models import TaskState

if TYPE_CHECKING:
    from bot.db.store import TaskRow

#: LeadLex answered 401 invalid_key: the bot's key is unknown, revoked or expired.
KEY_REFUSED = "LeadLex refused the bot's API key. Ask an admin to update LEXI_API_KEY."
#: LeadLex answered 429: its API limit is reached.
LIMIT_REACHED = "LeadLex's API limit is reached for now. Try again later."

#: What a person is told when their decision could not be journaled (nothing was sent to LeadLex).
NOT_RECORDED = (
    "Your decision could not be recorded: the bot cannot reach its database right now. "
    "Nothing was sent to LeadLex. Please try again in a moment."
)
#: Shown on the dismiss form when the decision could not be recorded (the form stays open to submit again).
NOT_SUBMITTED = (
    "Your decision could not be recorded: the bot cannot reach its database right now. "
    "Nothing was sent to LeadLex. Please submit again in a moment."
)
#: What someone who clicked Dismiss is told when the bot cannot read the task (its database is unreachable).
NO_DATABASE = "I cannot reach my database right now, so I cannot open the dismiss form. Please try again in a moment."
#: What someone who clicked Dismiss is told when Slack did not open the form (its trigger expired).
FORM_NOT_OPENED = "Slack did not open the dismiss form in time; please click Dismiss again."
#: What someone who clicked Dismiss on a task the bot has no record of is told.
NO_RECORD = "I have no record of this task."
#: What a person is told when the work queue is full and their /lexi command cannot be taken now.
BUSY = "The bot has too many decisions in progress right now; please try again in a minute."
#: What a person is told when their decision is journaled but the bot is too busy to start it at once.
QUEUED = "Your decision is recorded; the bot is busy, so it will be carried out within a minute."

#: How a task's final state reads after "This task was already …".
PAST: dict[str, str] = {
    TaskState.APPROVED: "approved",
    TaskState.DISMISSED: "dismissed",
    TaskState.COMPLETED: "approved (and it has completed)",
    TaskState.FAILED: "approved (and it has failed)",
    TaskState.GONE: "removed from LeadLex",
    TaskState.EXPIRED: "expired: nobody decided it in time",
}


def place(channel: str) -> str:
    """Where a card is, in mrkdwn: a channel mention, or "a direct message" for a card kept in someone's DM.

    A channel mention of a DM id (`<#D…>`) reads as an unknown channel in Slack.
    """
    return "a direct message" if channel.startswith("D") else f"<#{channel}>"


def who_decided(row: TaskRow) -> str:
    """A sentence saying who decided a task (or is deciding it), for the people who were too late."""
    by = f"<@{row.actor}>" if row.actor else "someone in LeadLex"
    if row.state == TaskState.DECIDING:
        verb = "approving" if row.action == "approve" else "dismissing"
        return f"{by} is already {verb} this task."
    if row.state in (TaskState.ANNOUNCING, TaskState.PENDING):
        return "This task is still waiting for a decision."
    return f"This task was already {PAST.get(row.state, row.state)}" + (
        f" by {by}."
        if row.state in (TaskState.APPROVED, TaskState.DISMISSED, TaskState.COMPLETED, TaskState.FAILED)
        else "."
    )


def failure_note(action: str, exc: LexiError) -> str:
    """Why a decision failed, in words a person can act on."""
    verb = action
    if isinstance(exc, RateLimited):
        return f"Could not {verb}: {LIMIT_REACHED}"
    if isinstance(exc, InvalidKey):
        return f"Could not {verb}: {KEY_REFUSED}"
    if isinstance(exc, PermissionDenied):
        return f"Could not {verb}: the bot's API key lacks the Lexi permission in LeadLex."
    return f"Could not {verb}: LeadLex is not answering right now. Try again."
