"""Unit tests of bot.slack.home_view and bot.slack.replies (task lists, the Home view, command replies), no doubles."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.db.store import TaskRow
from bot.dev.standin.blockkit import validate_blocks, validate_view
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
from bot.lexi.models import Task
from bot.slack import home_view as home
from bot.slack import replies
from bot.slack.blocks import APPROVE_ACTION, DISMISS_ACTION

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <@U123> <https://evil.example|click> & more"
STATUS = replies.BotStatus(
    last_poll=NOW - timedelta(seconds=30),
    pending=3,
    calls_left=950,
    calls_limit=1000,
    mode="http",
    database="sqlite",
)


def build_task(i: int = 0, **kwargs: Any) -> Task:
    """A prospect search created `i` hours before NOW, with fields overridable."""
    fields: dict[str, Any] = {
        "id": f"task-{i}",
        "type": "prospect_search",
        "description": f"Find CFOs {i}",
        "created_at": NOW - timedelta(hours=i),
        "metadata": {"per_page": 25},
    }
    fields.update(kwargs)
    return Task(**fields)


def build_row(task: Task, state: str = "pending", **kwargs: Any) -> TaskRow:
    """A task record in `state`, decided (when decided) by UALICE at NOW."""
    fields: dict[str, Any] = {
        "task_id": task.id,
        "task": task,
        "state": state,
        "channel": "C0LEXI",
        "message_ts": "1.1",
        "claimed_at": NOW,
        "actor": None,
        "action": None,
        "surface": None,
        "reason": None,
        "note": None,
        "decided_at": None,
        "version": 1,
        "rendered_version": 1,
        "replied_state": None,
        "announced_at": NOW,
        "updated_at": NOW,
    }
    fields.update(kwargs)
    return TaskRow(**fields)


def _actions(blocks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The elements of every actions block."""
    return [b["elements"] for b in blocks if b["type"] == "actions"]


def test_pending_list_has_the_channel_buttons_for_each_task() -> None:
    """Each pending task gets Approve and Dismiss with the card's action ids, carrying its id."""
    message = home.task_list([build_task(0), build_task(1)], "pending", NOW, buttons=True)
    rows = _actions(message["blocks"])
    assert [[e["action_id"] for e in row] for row in rows] == [[APPROVE_ACTION, DISMISS_ACTION]] * 2
    assert [row[0]["value"] for row in rows] == ["task-0", "task-1"]
    assert message["text"] == "2 pending tasks in LeadLex"
    assert validate_blocks(message["blocks"]) is None


def test_list_shows_type_description_age_and_id_newest_first() -> None:
    """Items show the type, the description, the age and the id, newest first."""
    message = home.task_list(
        [build_task(5), build_task(0), build_task(2, created_at=None)], "pending", NOW, buttons=False
    )
    texts = [b["text"]["text"] for b in message["blocks"][1:]]
    assert [t.split("\n")[0] for t in texts] == [
        "Prospect search — Find CFOs 0 (25 results)",
        "Prospect search — Find CFOs 5 (25 results)",
        "Prospect search — Find CFOs 2 (25 results)",
    ]
    assert "Created just now · Task `task-0`" in texts[0]
    assert "Created 5 h ago · Task `task-5`" in texts[1]
    assert "Created at an unknown time" in texts[2]


def test_high_impact_approve_asks_for_confirmation_with_the_contact_count() -> None:
    """A campaign start's Approve has a confirm dialog naming the contact count; a search's has none."""
    campaign = build_task(0, type="campaign_start", metadata={"contact_count": 1240, "campaign_id": "c1"})
    message = home.task_list([campaign, build_task(1)], "pending", NOW, buttons=True)
    (campaign_approve, _), (search_approve, _) = _actions(message["blocks"])
    assert "1,240 contacts" in campaign_approve["confirm"]["text"]["text"]
    assert "confirm" not in search_approve


def test_external_text_is_escaped_in_lists() -> None:
    """A hostile description or id cannot ping, mention or disguise a link."""
    hostile = build_task(0, description=HOSTILE, id="<!here>`x")
    message = home.task_list([hostile], "pending", NOW, buttons=True)
    text = json.dumps(message["blocks"][1])
    assert "<!channel>" not in text and "<@U123>" not in text and "<!here>" not in text
    assert "&lt;!channel&gt;" in text and "`&lt;!here&gt;'x`" in text


def test_long_list_is_cut_with_a_count_of_the_rest() -> None:
    """Forty tasks show at most MESSAGE_TASKS, within 50 blocks, and say how many more there are."""
    message = home.task_list([build_task(i) for i in range(40)], "pending", NOW, buttons=True)
    shown = len(_actions(message["blocks"]))
    assert shown == home.MESSAGE_TASKS
    assert len(message["blocks"]) <= 50 and validate_blocks(message["blocks"]) is None
    assert f"…and {40 - shown} older not shown" in message["blocks"][-1]["elements"][0]["text"]


def test_huge_tasks_are_cut_to_fit_slacks_message_size() -> None:
    """Tasks with maximal descriptions and ids are cut by size, still counting the rest."""
    big = [
        build_task(
            i,
            id=f"{i}-" + "x" * 250,
            type="campaign_start",
            description=HOSTILE * 40,
            metadata={"contact_count": 10**12},
        )
        for i in range(15)
    ]
    message = home.task_list(big, "pending", NOW, buttons=True)
    shown = len(_actions(message["blocks"]))
    assert 0 < shown < 15
    assert len(json.dumps(message, ensure_ascii=False)) <= home.MESSAGE_CHARS + 500
    assert f"…and {15 - shown} older not shown" in message["blocks"][-1]["elements"][0]["text"]


def test_other_statuses_and_non_approvers_get_no_buttons() -> None:
    """Approved tasks, and pending ones shown to someone who may not decide, have no buttons."""
    assert _actions(home.task_list([build_task(0)], "approved", NOW, buttons=False)["blocks"]) == []
    notice = "Only <@UALICE> can decide."
    message = home.task_list([build_task(0)], "pending", NOW, buttons=False, notice=notice)
    assert _actions(message["blocks"]) == []
    assert message["blocks"][1]["elements"][0]["text"] == "Only <@UALICE> can decide."


def test_empty_list_says_so() -> None:
    """No tasks in a status is said in words."""
    message = home.task_list([], "failed", NOW, buttons=False)
    assert message["text"] == "No failed tasks in LeadLex."
    assert len(message["blocks"]) == 1


def test_home_shows_pending_tasks_decisions_and_status() -> None:
    """The Home lists pending tasks with buttons, who decided what and when, and the status line."""
    pending = [build_row(build_task(i)) for i in range(2)]
    decided = [
        build_row(build_task(7), "approved", actor="UALICE", decided_at=NOW),
        build_row(build_task(8), "dismissed", actor="UBOB", decided_at=NOW, reason="duplicate"),
        build_row(build_task(9), "completed", decided_at=NOW),
    ]
    view = home.home_view(pending=pending, pending_total=2, decisions=decided, status=STATUS, now=NOW, buttons=True)
    assert view["type"] == "home" and validate_view(view) is None
    text = json.dumps(view, ensure_ascii=False)
    assert "Waiting for a decision (2)" in text and "Last successful poll: just now" in text
    assert len(_actions(view["blocks"])) == 2
    lines = [b["elements"][0]["text"] for b in view["blocks"] if b["type"] == "context"][1:]
    assert lines[0].startswith("✅ Approved by <@UALICE> · <!date^")
    assert lines[1].startswith("🚫 Dismissed by <@UBOB>") and lines[1].endswith("Reason: Duplicate")
    assert lines[2].startswith("🏁 Approved and completed in LeadLex")


def test_home_stays_within_100_blocks_and_cuts_visibly() -> None:
    """With many pending tasks and decisions the Home keeps to 100 blocks and counts what it left out."""
    campaigns = [build_task(i, type="campaign_start", metadata={"contact_count": 500}) for i in range(home.HOME_TASKS)]
    pending = [build_row(task, note="Could not approve") for task in campaigns]
    decided = [build_row(build_task(i), "approved", actor="UALICE", decided_at=NOW) for i in range(30)]
    view = home.home_view(
        pending=pending, pending_total=250, decisions=decided, status=STATUS, now=NOW, buttons=True, notice=None
    )
    assert len(view["blocks"]) <= 100 and validate_view(view) is None
    assert f"…and {250 - home.HOME_TASKS} older not shown here" in json.dumps(view, ensure_ascii=False)
    approvals = [b for b in view["blocks"] if "✅ Approved" in json.dumps(b, ensure_ascii=False)]
    assert len(approvals) == home.HOME_DECISIONS


def test_empty_home_and_non_approver_home() -> None:
    """An empty Home says nothing waits; a non-approver sees the notice and no buttons."""
    empty = home.home_view(pending=[], pending_total=0, decisions=[], status=STATUS, now=NOW, buttons=True)
    text = json.dumps(empty, ensure_ascii=False)
    assert "Nothing is waiting." in text and "No decisions yet." in text
    view = home.home_view(
        pending=[build_row(build_task(0))],
        pending_total=1,
        decisions=[],
        status=STATUS,
        now=NOW,
        buttons=False,
        notice="Only <@UALICE> can decide.",
    )
    assert _actions(view["blocks"]) == [] and "Only <@UALICE>" in json.dumps(view)


def test_status_lines_cover_poll_pending_budget_mode_and_database() -> None:
    """The status names the last poll, pending count, calls left, connection mode and database kind."""
    assert replies.status_lines(STATUS, NOW) == [
        "Last successful poll: just now",
        "Pending tasks: 3",
        "LeadLex calls left today: 950 of 1,000",
        "Slack connection: HTTP",
        "Database: SQLite",
    ]
    fresh = replace(
        STATUS,
        last_poll=None,
        calls_left=None,
        calls_limit=None,
        mode="socket",
        database="postgresql",
        problem="Slack said <!channel>",
    )
    lines = replies.status_lines(fresh, NOW)
    assert lines[0] == "⚠️ Slack said &lt;!channel&gt;"
    assert "Last successful poll: none yet" in lines and "Slack connection: Socket Mode" in lines
    assert "LeadLex calls left today: unknown until LeadLex is first called" in lines
    assert "Database: PostgreSQL" in lines


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (5, "just now"),
        (125, "2 min ago"),
        (3 * 3600 + 5, "3 h ago"),
        (86_400, "1 day ago"),
        (3 * 86_400, "3 days ago"),
        (-50, "just now"),
    ],
)
def test_ago_in_words(seconds: int, words: str) -> None:
    """Ages read as words a person uses."""
    assert replies.ago(NOW - timedelta(seconds=seconds), NOW) == words


@pytest.mark.parametrize(
    ("error", "phrase"),
    [
        (OutOfCredits("x"), "no credits left"),
        (RateLimited("x"), "API limit"),
        (InvalidKey("x"), "LEXI_API_KEY"),
        (PermissionDenied("x"), "Lexi permission"),
        (NotFound("x"), "could not find"),
        (InvalidRequest("x", code="<!here>"), "(&lt;!here&gt;)"),
        (TransientError("x"), "not answering"),
        (LexiError("x"), "answered with an error"),
    ],
)
def test_every_leadlex_error_has_a_plain_sentence(error: LexiError, phrase: str) -> None:
    """Each LeadLex error maps to a sentence a person can act on, never a traceback."""
    assert phrase in replies.trouble(error)


def test_lexi_answer_is_escaped_and_says_where_the_task_waits() -> None:
    """Lexi's answer is escaped and cut well below Slack's 40,000 characters; where its task waits follows."""
    answer = replies.lexi_answer(HOSTILE * 200, "in <#C0LEXI>")
    assert "<!channel>" not in answer and answer.startswith("*Lexi:* &lt;!channel&gt;")
    assert "…" in answer and len(answer) < 5 * replies.ANSWER_MAX
    assert answer.endswith("needs approval: in <#C0LEXI>")


def test_usage_names_every_subcommand_and_reason() -> None:
    """The usage text lists each subcommand and every documented dismiss reason."""
    for word in ("tasks", "approve", "dismiss", "ask", "--new", "status", "help", "duplicate", "testing"):
        assert word in replies.USAGE
    assert replies.usage("Oops.").startswith("Oops.\n\n*/lexi*")
