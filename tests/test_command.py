"""Unit tests for bot.slack.command_parser: the /lexi grammar, without doubles."""

from __future__ import annotations

import pytest

from bot.lexi.models import DISMISS_REASONS, STATUSES
from bot.slack.command_parser import MESSAGE_MAX, NOTE_MAX, Command, parse_command


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", " help  "])
def test_empty_text_and_help_ask_for_usage(text: str) -> None:
    """`/lexi` alone and `/lexi help` answer with the usage, needing no I/O."""
    command = parse_command(text)
    assert command == Command("help")
    assert not command.needs_io


def test_unknown_subcommand_is_help_with_a_problem_that_echoes_it_safely() -> None:
    """An unknown subcommand becomes help whose problem quotes it escaped, so it can ping nobody."""
    command = parse_command("launch <!channel>")
    assert command.name == "help" and not command.needs_io
    assert command.problem is not None and "launch" in command.problem
    assert parse_command("&lt;!here&gt;").problem == "I don't know `/lexi &lt;!here&gt;`."


def test_tasks_defaults_to_pending() -> None:
    """`/lexi tasks` lists pending tasks."""
    assert parse_command("tasks") == Command("tasks", status="pending")


@pytest.mark.parametrize("status", STATUSES)
def test_tasks_accepts_every_status_in_any_case(status: str) -> None:
    """`/lexi tasks <status>` accepts each LeadLex status, whatever its case."""
    assert parse_command(f"tasks {status.upper()}") == Command("tasks", status=status)


def test_unknown_status_is_answered_with_the_valid_ones() -> None:
    """An unknown status is refused with the list of valid statuses."""
    command = parse_command("tasks finished")
    assert command.name == "help"
    assert command.problem is not None and "`finished`" in command.problem
    assert all(status in command.problem for status in STATUSES)


def test_tasks_takes_one_status_at_most() -> None:
    """`/lexi tasks pending approved` is refused."""
    assert parse_command("tasks pending approved").problem is not None


def test_approve_takes_exactly_one_task_id() -> None:
    """`/lexi approve <id>` parses the id; no id or extra words are refused."""
    assert parse_command("approve t-1") == Command("approve", task_id="t-1")
    assert parse_command("approve").problem is not None
    assert parse_command("approve t-1 t-2").problem is not None
    assert parse_command("approve " + "x" * 256).problem is not None


def test_dismiss_with_a_reason_code_and_a_note() -> None:
    """A documented reason code after the id is the reason; the rest is the note."""
    command = parse_command("dismiss t-1 Duplicate  same as   yesterday's")
    assert command == Command("dismiss", task_id="t-1", reason="duplicate", note="same as   yesterday's")


@pytest.mark.parametrize("code", DISMISS_REASONS)
def test_dismiss_accepts_every_documented_reason_alone(code: str) -> None:
    """Each documented reason code is accepted on its own, without a note."""
    assert parse_command(f"dismiss t-1 {code}") == Command("dismiss", task_id="t-1", reason=code)


def test_dismiss_free_text_alone_becomes_the_note() -> None:
    """Free text that does not start with a reason code is the note, with no reason."""
    command = parse_command("dismiss t-1 we already did this by hand")
    assert command == Command("dismiss", task_id="t-1", note="we already did this by hand")


def test_dismiss_without_reason_and_with_too_long_a_note() -> None:
    """Dismiss needs only an id; a note longer than the form allows is refused."""
    assert parse_command("dismiss t-1") == Command("dismiss", task_id="t-1")
    assert parse_command("dismiss").problem is not None
    assert parse_command("dismiss t-1 " + "n" * (NOTE_MAX + 1)).problem is not None


def test_ask_keeps_the_message_and_its_line_breaks() -> None:
    """`/lexi ask` sends everything after it, line breaks included."""
    command = parse_command("ask find 20 CFOs\nin Germany")
    assert command == Command("ask", message="find 20 CFOs\nin Germany")
    assert command.needs_io


def test_ask_new_starts_a_new_conversation() -> None:
    """`--new` right after ask asks for a new conversation and is not part of the message."""
    assert parse_command("ask --NEW hello") == Command("ask", message="hello", new_conversation=True)
    assert parse_command("ask hello --new") == Command("ask", message="hello --new")


def test_ask_needs_a_message_of_bounded_size() -> None:
    """`/lexi ask` and `/lexi ask --new` without a message, or with a huge one, are refused."""
    assert parse_command("ask").problem is not None
    assert parse_command("ask --new").problem is not None
    assert parse_command("ask " + "m" * (MESSAGE_MAX + 1)).problem is not None


def test_slack_entities_are_undone_before_parsing() -> None:
    """Slack escapes &, < and > in command text; Lexi gets what the person typed."""
    assert parse_command("ask compare A &amp; B &lt;fast&gt;").message == "compare A & B <fast>"


def test_status_takes_no_arguments() -> None:
    """`/lexi status` parses; with arguments it is refused."""
    assert parse_command("Status") == Command("status")
    assert parse_command("status now").problem is not None
