"""What the bot tells people about decisions (bot.slack.texts): one spelling per sentence, word for word."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.db.store import TaskRow
from bot.errors import InvalidKey, LexiError, PermissionDenied, RateLimited, TransientError
from bot.lexi.models import Task
from bot.slack import replies, texts

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _row(state: str, actor: str | None = "UALICE", action: str | None = "approve") -> TaskRow:
    """A task record in `state`, decided (or being decided) by `actor`."""
    task = Task(id="t-1", type="prospect_search", description="Find CFOs", created_at=NOW, metadata={})
    return TaskRow(
        task_id=task.id,
        task=task,
        state=state,
        channel="C1",
        message_ts="1.2",
        claimed_at=NOW,
        actor=actor,
        action=action,
        surface=None,
        reason=None,
        note=None,
        decided_at=NOW,
        version=1,
        rendered_version=1,
        replied_state=None,
        announced_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("row", "said"),
    [
        (_row("approved"), "This task was already approved by <@UALICE>."),
        (_row("dismissed", action="dismiss"), "This task was already dismissed by <@UALICE>."),
        (_row("completed"), "This task was already approved (and it has completed) by <@UALICE>."),
        (_row("failed", actor=None), "This task was already approved (and it has failed) by someone in LeadLex."),
        (_row("gone", actor=None), "This task was already removed from LeadLex."),
        (_row("expired", actor=None), "This task was already expired: nobody decided it in time."),
        (_row("deciding", action="dismiss"), "<@UALICE> is already dismissing this task."),
        (_row("deciding"), "<@UALICE> is already approving this task."),
        (_row("pending", actor=None), "This task is still waiting for a decision."),
    ],
)
def test_who_decided_names_the_decider_and_the_state(row: TaskRow, said: str) -> None:
    """Someone too late is told who decided, and how the task ended, in these exact words."""
    assert texts.who_decided(row) == said


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (RateLimited("slow down"), "Could not approve: LeadLex's API limit is reached for now. Try again later."),
        (
            InvalidKey("no"),
            "Could not approve: LeadLex refused the bot's API key. Ask an admin to update LEXI_API_KEY.",
        ),
        (PermissionDenied("no"), "Could not approve: the bot's API key lacks the Lexi permission in LeadLex."),
        (TransientError("down"), "Could not approve: LeadLex is not answering right now. Try again."),
    ],
)
def test_failure_notes_say_what_to_do(error: LexiError, said: str) -> None:
    """A failed decision's note, word for word."""
    assert texts.failure_note("approve", error) == said


def test_a_refused_key_reads_the_same_in_a_failure_note_and_a_command_answer() -> None:
    """The refused-key sentence has one spelling: a card's failure note ends with what /lexi answers."""
    answer = replies.trouble(InvalidKey("no"))
    assert answer == texts.KEY_REFUSED == "LeadLex refused the bot's API key. Ask an admin to update LEXI_API_KEY."
    assert texts.failure_note("dismiss", InvalidKey("no")) == f"Could not dismiss: {answer}"
    assert replies.trouble(RateLimited("slow")) == texts.LIMIT_REACHED


def test_a_card_in_a_dm_is_named_as_one_not_as_a_channel() -> None:
    """A channel id is a mention; a DM id (which Slack would show as an unknown channel) is 'a direct message'."""
    assert texts.place("C0LEXI") == "<#C0LEXI>"
    assert texts.place("G0PRIV") == "<#G0PRIV>"
    assert texts.place("D0ALICE") == "a direct message"
