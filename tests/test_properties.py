"""Issue 11, property-based: any JSON makes a task or None, and every card built from a task fits Block Kit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.db.store import TaskRow
from bot.dev.standin.blockkit import validate_blocks, validate_view
from bot.lexi import tolerant_json
from bot.lexi.models import Task, read_task
from bot.slack import blocks, modals
from bot.slack import home_view as home
from bot.slack.replies import BotStatus

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
#: Slack refuses a message whose JSON nears 13k characters (msg_blocks_too_long).
MESSAGE_CHARS = 13_000

# Text with the characters that break things: markup, mentions, controls, newlines, astral emoji.
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60) | st.sampled_from(
    [
        "",
        " ",
        "<!channel>",
        "<@U123>",
        "*bold* _i_ ~s~ `c`",
        "a\nb\r\n\x00\x1b[2J",
        "🧩" * 40,
        "x" * 5000,
        "<https://evil.example|click>",
        "&lt;&amp;",
    ]
)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
_JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5), max_leaves=25
)
_KEYS = st.sampled_from(
    [
        "contact_count",
        "record_count",
        "count",
        "contacts",
        "contact_ids",
        "fields",
        "changes",
        "list_name",
        "list_id",
        "campaign_name",
        "campaign_id",
        "filters",
        "query",
        "title",
    ]
)
_METADATA = st.dictionaries(_KEYS | _TEXT, _JSON | st.integers(min_value=-(10**20), max_value=10**20), max_size=8)
_TIMES = st.datetimes(timezones=st.timezones() | st.just(timezone(timedelta(hours=14)))).map(
    datetime.isoformat
) | st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "yesterday", "", "Z"])
_TASKS = st.fixed_dictionaries(
    {"id": st.uuids().map(str) | _TEXT | st.integers()},
    optional={
        "type": st.sampled_from(["prospect_search", "campaign_start", "contact_update", "list_operation"])
        | _TEXT
        | _JSON,
        "status": st.sampled_from(["pending", "approved"]) | _JSON,
        "description": _TEXT | _JSON,
        "created_at": _TIMES | _JSON,
        "metadata": _METADATA | _JSON,
    },
)
_USERS = st.sampled_from(["UALICE", "UBOB", "rule:big <!channel>", "W0123ABC", "not a user\n<@U1>", ""]) | _TEXT
_CARDS = st.builds(
    blocks.Card,
    state=st.sampled_from(blocks.CARD_STATES),
    actor=st.none() | _USERS,
    action=st.sampled_from([None, "approve", "dismiss", "x"]),
    at=st.none() | st.datetimes(timezones=st.just(UTC)),
    reason=st.none() | st.sampled_from(["not_relevant", "duplicate"]) | _TEXT,
    note=st.none() | _TEXT,
    approvals=st.lists(_USERS, max_size=12).map(tuple),
    needed=st.integers(min_value=1, max_value=20),
    confirm_above=st.none() | st.integers(min_value=-1, max_value=10**9),
)
_SETTINGS = settings(max_examples=200, deadline=None)


def _task(obj: dict[str, Any]) -> Task:
    """The task an object makes, falling back to a task with a plain id when its id is unusable."""
    return Task.from_api(obj) or Task(id="fallback")


def _fits(message: dict[str, Any]) -> None:
    """Assert that a message's blocks are valid Block Kit and its JSON is small enough to post."""
    problem = validate_blocks(message["blocks"])
    assert problem is None, problem
    assert isinstance(message["text"], str) and message["text"]
    assert len(json.dumps(message, ensure_ascii=False)) <= MESSAGE_CHARS


@_SETTINGS
@given(_JSON | _TASKS)
def test_any_json_makes_a_task_or_none(value: Any) -> None:
    """Task.from_api turns any JSON value into a Task or None, and never raises."""
    task, problem = read_task(value)
    assert task is None or (isinstance(task, Task) and task.id.strip() and isinstance(task.metadata, dict))
    assert problem is None or isinstance(problem, str)
    assert Task.from_api(value) == task
    if task is not None:
        assert Task.from_api(json.loads(json.dumps(task.to_api()))) is not None  # what is stored reads back


@_SETTINGS
@given(_JSON | _TASKS)
def test_any_json_text_decodes_or_is_refused(value: Any) -> None:
    """The tolerant decoder gives back what Python's gives for any JSON document, nested in an envelope."""
    text = json.dumps({"data": {"tasks": [value]}})
    assert json.dumps(tolerant_json.loads(text, 4)) == json.dumps(json.loads(text))  # compared as text: NaN


@_SETTINGS
@given(_TASKS, _CARDS)
def test_every_card_of_any_task_fits_block_kit(obj: dict[str, Any], card: blocks.Card) -> None:
    """The channel card, in any state, of any task is valid Block Kit within Slack's message size."""
    _fits(blocks.render_card(_task(obj), card))


@_SETTINGS
@given(_TASKS, st.sampled_from(["completed", "failed"]), st.none() | st.datetimes(timezones=st.just(UTC)))
def test_thread_replies_fit_block_kit(obj: dict[str, Any], state: str, at: datetime | None) -> None:
    """The thread reply for a finished task is valid Block Kit."""
    _fits(blocks.thread_reply(_task(obj), state, at))


@_SETTINGS
@given(objs=st.lists(_TASKS, max_size=20), buttons=st.booleans(), notice=st.none() | _TEXT)
def test_task_lists_fit_block_kit(objs: list[dict[str, Any]], *, buttons: bool, notice: str | None) -> None:
    """A `/lexi tasks` answer for any tasks is valid Block Kit within Slack's message size."""
    _fits(home.task_list([_task(o) for o in objs], "pending", NOW, buttons=buttons, notice=notice))


@_SETTINGS
@given(
    pending=st.lists(st.tuples(_TASKS, st.none() | _TEXT), max_size=25),
    decided=st.lists(
        st.tuples(
            _TASKS,
            st.sampled_from(["approved", "dismissed", "completed", "failed"]),
            st.none() | _USERS,
            st.none() | _TEXT,
        ),
        max_size=12,
    ),
    buttons=st.booleans(),
)
def test_home_views_fit_block_kit(
    pending: list[tuple[dict[str, Any], str | None]],
    decided: list[tuple[dict[str, Any], str, str | None, str | None]],
    *,
    buttons: bool,
) -> None:
    """A Home tab with any pending tasks (and their notes) and any decisions is a valid view."""
    rows = [_row(_task(obj), "pending", note=note) for obj, note in pending]
    decisions = [_row(_task(obj), state, actor=actor, reason=reason) for obj, state, actor, reason in decided]
    status = BotStatus(
        last_poll=NOW, pending=len(rows), calls_left=10, calls_limit=100, mode="http", database="sqlite", problem=None
    )
    view = home.home_view(
        pending=rows, pending_total=len(rows) + 3, decisions=decisions, status=status, now=NOW, buttons=buttons
    )
    problem = validate_view(view)
    assert problem is None, problem


@_SETTINGS
@given(_TASKS, _TEXT)
def test_dismiss_modal_of_any_task_is_a_valid_view(obj: dict[str, Any], channel: str) -> None:
    """The dismiss form for any task is a valid modal."""
    problem = validate_view(modals.dismiss_modal(_task(obj), channel[:20] or "C1"))
    assert problem is None, problem


def _row(
    task: Task, state: str, *, note: str | None = None, actor: str | None = None, reason: str | None = None
) -> TaskRow:
    """A task record as the store returns it."""
    return TaskRow(
        task_id=task.id,
        task=task,
        state=state,
        channel="C1",
        message_ts="1.2",
        claimed_at=NOW,
        actor=actor,
        action=None,
        surface=None,
        reason=reason,
        note=note,
        decided_at=NOW,
        version=1,
        rendered_version=1,
        replied_state=None,
        announced_at=NOW,
        updated_at=NOW,
    )
