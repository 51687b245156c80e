"""Issue 11, logs cannot be forged: text from LeadLex and Slack is logged quoted, on one line, and bounded."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.ops.logs import MAX_MESSAGE, MAX_TRACEBACK, TRACEBACK_INDENT
from tests.support.harness import CHANNEL, bot_env
from tests.support.process import BotProcess, clean_env, free_port

FORGED = "\nERROR   bot.core.poller: fake line"
HUGE = "z" * 200_000
#: How every line the bot writes begins: its timestamp, level and logger (or a traceback's indent).
PREFIX = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) *[\w.]+: ")


@pytest.fixture
def processes() -> Iterator[list[BotProcess]]:
    """Child processes started by a test, all stopped at its end."""
    started: list[BotProcess] = []
    yield started
    for proc in started:
        proc.stop()


def test_hostile_text_cannot_forge_or_flood_log_lines(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """Ids, types, descriptions and error messages with newlines and 200 kB never start a line or fill the log."""
    forged_id = "t-1" + FORGED
    sandbox.add_raw_task(
        {
            "id": forged_id,
            "type": "prospect_search" + FORGED + HUGE,
            "status": "pending",
            "description": "Find" + FORGED + HUGE,
            "created_at": "yesterday" + FORGED,
        }
    )
    sandbox.add_raw_task({"id": "no id" + FORGED + HUGE, "type": "campaign_start", "status": "pending"})
    error = {"error": {"code": "bad" + FORGED, "message": "refused" + FORGED + HUGE}}
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=400, body=json.dumps(error))
    slack.fail_next("chat.postMessage", "invalid_blocks")  # the forged task then takes the plain-card path
    port = free_port()
    env = clean_env(
        **bot_env(
            sandbox, slack, f"sqlite:///{tmp_path / 'bot.db'}", POLL_INTERVAL="0.2", PORT=str(port), LOG_LEVEL="DEBUG"
        )
    )
    proc = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
    processes.append(proc)
    proc.wait_healthy(port)
    try:
        slack.wait_for(lambda: any(m.metadata for m in slack.messages(CHANNEL)), timeout=20)
        slack.wait_for(lambda: "plain card" in proc.output and "no id" in proc.output, timeout=20)
    except AssertionError as exc:  # say what the bot was doing (its log, whose long lines are clipped here)
        tail = "\n".join(line[:300] for line in proc.output.splitlines()[-40:])
        raise AssertionError(f"{exc}\nthe bot's last log lines:\n{tail}") from None
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.output[-3000:]
    output = proc.output
    assert "fake line" in output and "\\nERROR" in output  # the hostile text was logged, escaped
    for line in output.splitlines():
        assert PREFIX.match(line) or line.startswith(TRACEBACK_INDENT), f"a line without the prefix: {line[:200]!r}"
        assert len(line) <= MAX_TRACEBACK + 200 and (
            line.startswith(TRACEBACK_INDENT) or len(line) <= MAX_MESSAGE + 200
        ), f"an unbounded line of {len(line)} chars"
    assert len(output) < len(HUGE)  # three 200 kB values, several times each, and still less than one of them
