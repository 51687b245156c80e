"""Logs: text or JSON lines, and no secret in either, whatever is logged."""

from __future__ import annotations

import json
import logging
from typing import NoReturn

import pytest

from bot.ops.logs import JsonFormatter, RedactingFormatter

SECRETS = ["xoxb-real-bot-token-123", "wbk_live_key_456789", "signing-secret-abcdef"]


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    """A log record as a logger would make it."""
    record = logging.LogRecord("bot.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _fail(message: str) -> NoReturn:
    """Raise a RuntimeError with `message`, for a test to catch and format its traceback."""
    raise RuntimeError(message)


def test_json_lines_carry_context_fields() -> None:
    """A JSON line has time, level, logger, message and the task, user and request ids when known."""
    line = JsonFormatter([]).format(
        _record("task %s approved", "t1", task_id="t1", slack_user="UALICE", request_id="req-9")
    )
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "bot.test"
    assert entry["message"] == "task t1 approved"
    assert (entry["task_id"], entry["slack_user"], entry["request_id"]) == ("t1", "UALICE", "req-9")


def test_configured_secrets_are_redacted_in_both_formats() -> None:
    """Configured secrets never appear, in text or JSON, in the message or its arguments."""
    record = _record("calling with %s and %s", SECRETS[0], SECRETS[1], task_id=SECRETS[2])
    for formatter in (RedactingFormatter("%(message)s", SECRETS), JsonFormatter(SECRETS)):
        text = formatter.format(record)
        assert "[redacted]" in text
        assert not any(secret in text for secret in SECRETS)


def test_token_shapes_are_redacted_even_when_not_configured() -> None:
    """A token that is not the configured one (a pasted wrong token) is still redacted by its shape."""
    text = RedactingFormatter("%(message)s", []).format(_record("bad token xoxp-999-abcdefgh and xapp-1-A-xyz123"))
    assert "xoxp-999" not in text and "xapp-1-A" not in text


def test_exceptions_are_redacted_too() -> None:
    """A traceback that mentions a secret is redacted in the JSON line."""
    try:
        _fail(f"refused {SECRETS[1]}")
    except RuntimeError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter(SECRETS).format(record))
    assert "RuntimeError" in entry["exception"] and SECRETS[1] not in entry["exception"]


def test_bot_log_lines_carry_the_task_id(caplog: pytest.LogCaptureFixture) -> None:
    """The bot's own task log lines (here a decision made in LeadLex) carry task_id for JSON logs."""
    from bot.dev.sandbox import Sandbox
    from bot.dev.standin.slack import SlackStandIn
    from tests.support.harness import start_bot

    with Sandbox(seed=False, daily_limit=10_000_000, minute_limit=100_000) as sandbox, SlackStandIn() as slack:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            harness = start_bot(sandbox, slack, f"sqlite:///{folder}/x.db")
            try:
                task_id = sandbox.add_task()["id"]
                harness.poll()
                sandbox.set_status(task_id, "approved")
                with caplog.at_level(logging.INFO, logger="bot"):
                    harness.poll()
            finally:
                harness.close()
    lines = [json.loads(JsonFormatter([]).format(r)) for r in caplog.records if "is now approved" in r.getMessage()]
    assert lines and lines[0]["task_id"] == task_id


def test_messages_and_fields_stay_on_one_bounded_line_in_both_formats() -> None:
    """Newlines, terminal escapes and 200 kB values in a message or a context field become one bounded line."""
    hostile = "t1\nERROR   bot.core.poller: fake\r\x1b[2J\u2028line" + "z" * 200_000
    record = _record("task %s failed", hostile, task_id=hostile)
    text = RedactingFormatter("%(levelname)s %(task_id)s %(message)s", []).format(record)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert "\\nERROR" in text and len(text) < 5000
    entry = json.loads(JsonFormatter([]).format(record))
    assert "\n" not in entry["message"] and "\u2028" not in entry["message"] and len(entry["message"]) < 5000
    assert "\n" not in entry["task_id"] and len(entry["task_id"]) < 500


def test_tracebacks_are_indented_and_bounded() -> None:
    """A traceback whose message holds a forged line stays indented under its record, and bounded."""
    import sys

    from bot.ops.logs import MAX_TRACEBACK, TRACEBACK_INDENT

    try:
        _fail("boom\nERROR   bot.x: fake line" + "z" * 200_000)
    except RuntimeError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    lines = RedactingFormatter("%(levelname)s %(message)s", []).format(record).split("\n")
    assert lines[0] == "WARNING failed"
    assert all(line.startswith(TRACEBACK_INDENT) for line in lines[1:]) and len(lines) > 2
    assert sum(map(len, lines)) < MAX_TRACEBACK + 1000
    assert len(json.loads(JsonFormatter([]).format(record))["exception"]) < MAX_TRACEBACK + 100


def test_secrets_are_redacted_before_a_message_is_cut() -> None:
    """A secret that straddles the cut is redacted whole, never left half visible."""
    from bot.ops.logs import MAX_MESSAGE

    record = _record("%s%s", "x" * (MAX_MESSAGE - 10), SECRETS[0])
    text = RedactingFormatter("%(message)s", SECRETS).format(record)
    assert SECRETS[0][:10] not in text
