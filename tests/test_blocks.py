"""Unit tests for bot.slack.blocks: every card state, escaping, truncation and Slack's Block Kit limits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.dev.standin.blockkit import validate_blocks
from bot.lexi.models import DISMISS_REASONS, Task
from bot.slack.blocks import (
    APPROVE_ACTION,
    DISMISS_ACTION,
    METADATA_EVENT,
    Card,
    approve_confirm,
    describe_task,
    escape,
    format_time,
    impact,
    message_metadata,
    render_card,
    thread_reply,
    truncate,
)

AT = datetime(2024, 5, 1, 14, 3, 9, tzinfo=UTC)
HOSTILE = "<!channel> <!here> <@U123> <https://evil.example|click> & more"
STATES = ("pending", "deciding", "approved", "dismissed", "completed", "failed", "gone", "expired")


# --- Slack's Block Kit limits (the stand-in's checker, shared) and what every card keeps to besides ----------

#: The blocks a card is made of.
CARD_BLOCKS = ("header", "section", "context", "actions")


def check_message(message: dict[str, Any]) -> None:
    """Assert that a message is within every Block Kit limit (bot.dev.standin.blockkit) and the card's own rules.

    The card's own: fallback text of 1 to 3000 characters, only header/section/context/actions blocks, text-only
    context, buttons that each carry an action id and a value, and the bot's size budget.
    """
    assert set(message) == {"text", "blocks"}
    assert isinstance(message["text"], str) and 0 < len(message["text"]) <= 3000
    problem = validate_blocks(message["blocks"])
    assert problem is None, problem
    assert message["blocks"]
    for block in message["blocks"]:
        assert block["type"] in CARD_BLOCKS, block
        if block["type"] == "context":
            assert all(element["type"] in ("plain_text", "mrkdwn") for element in block["elements"]), block
        if block["type"] == "actions":
            for button in block["elements"]:
                assert button["type"] == "button" and button["action_id"] and button["value"], button
    assert len(json.dumps(message, ensure_ascii=False)) <= 12_000


def texts(message: dict[str, Any]) -> list[str]:
    """Return every string a message shows, the fallback included."""
    found: list[str] = []

    def walk(node: Any) -> None:
        """Collect the "text" strings under node."""
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message)
    return found


def angle_tokens(message: dict[str, Any]) -> list[str]:
    """Return every <…> token Slack would interpret in a message's texts."""
    return [token for text in texts(message) for token in re.findall(r"<[^>]*>", text)]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the buttons of a message's actions blocks."""
    return [el for block in message["blocks"] if block["type"] == "actions" for el in block["elements"]]


def joined(message: dict[str, Any]) -> str:
    """Return every text of a message joined into one string."""
    return "\n".join(texts(message))


def render(task: Task, card: Card) -> dict[str, Any]:
    """Render a card and check it against the Block Kit limits before returning it."""
    message = render_card(task, card)
    check_message(message)
    return message


def build_task(**overrides: Any) -> Task:
    """Build a prospect search task, with any field overridden."""
    fields: dict[str, Any] = {
        "id": "task_1",
        "type": "prospect_search",
        "description": "Find VP of Sales in Computer Software",
        "created_at": AT,
        "metadata": {
            "query": {
                "person_titles": ["VP of Sales"],
                "organization_industries": ["Computer Software"],
                "person_locations": ["United States"],
            },
            "per_page": 25,
        },
    }
    fields.update(overrides)
    return Task(**fields)


def build_campaign(count: Any = 150) -> Task:
    """Build a campaign start task for count contacts."""
    return build_task(
        id="task_c",
        type="campaign_start",
        description="Start Q3 outreach",
        metadata={"campaign_id": "cmp_42", "contact_count": count},
    )


def any_card(state: str) -> Card:
    """Build a card in state with an actor and a time."""
    return Card(state=state, actor="U0ABC123", action="approve", at=AT)


# --- the small helpers ----------------------------------------------------------------------------------


def test_escape_replaces_ampersand_first() -> None:
    """Escape turns &, < and > into entities without double-escaping its own output."""
    assert escape("a & <b> &lt;") == "a &amp; &lt;b&gt; &amp;lt;"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("hello", 5, "hello"),
        ("hello world", 5, "hell…"),
        ("hello", 1, "…"),
        ("hello", 0, ""),
        ("", 3, ""),
    ],
)
def test_truncate_is_visible_and_within_limit(text: str, limit: int, expected: str) -> None:
    """Truncate keeps short text and ends cut text with "…", never exceeding the limit."""
    assert truncate(text, limit) == expected
    assert len(truncate(text, limit)) <= max(limit, 0)


def test_message_metadata_holds_only_the_task_id() -> None:
    """message_metadata tags a message with the task id under the lexi_task event type."""
    assert message_metadata("t9") == {"event_type": METADATA_EVENT, "event_payload": {"task_id": "t9"}}


def test_format_time_is_a_slack_date_token_with_utc_fallback() -> None:
    """format_time renders a date token in the viewer's zone with a UTC fallback text."""
    expected = "<!date^1714572189^{date_short_pretty} at {time}|2024-05-01 14:03 UTC>"
    assert format_time(AT) == expected
    assert format_time(AT.astimezone(timezone(timedelta(hours=2)))) == expected
    assert format_time(AT.replace(tzinfo=None)) == expected
    assert format_time(None) == "unknown time"


def test_describe_task_is_one_escaped_line_with_a_count() -> None:
    """describe_task names the type, the description on one line and the number of results."""
    task = build_task(description="VP of Sales\nin Computer Software")
    assert describe_task(task) == "Prospect search — VP of Sales in Computer Software (25 results)"
    assert describe_task(build_task(description=HOSTILE)).count("<") == 0
    assert describe_task(build_campaign(1500)) == "Campaign start — Start Q3 outreach (1,500 contacts)"
    assert len(describe_task(build_task(description="x" * 100_000))) < 300


# --- states ---------------------------------------------------------------------------------------------


def test_pending_card_has_approve_and_dismiss_buttons_carrying_the_task_id() -> None:
    """A pending card offers Approve (primary) and Dismiss (danger), each carrying the task id."""
    message = render(build_task(), Card(state="pending"))
    approve, dismiss = buttons(message)
    assert (approve["action_id"], approve["style"], approve["value"]) == (APPROVE_ACTION, "primary", "task_1")
    assert (dismiss["action_id"], dismiss["style"], dismiss["value"]) == (DISMISS_ACTION, "danger", "task_1")
    assert "confirm" not in approve
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🔎 Prospect search", "emoji": True},
    }
    assert message["text"].startswith("Lexi needs approval: Prospect search — Find VP of Sales")


def test_pending_card_shows_why_the_last_attempt_failed_before_the_buttons() -> None:
    """A pending card with a note shows an escaped warning line right before the buttons."""
    message = render(build_task(), Card(state="pending", note="LeadLex timed out <again>"))
    warning, actions = message["blocks"][-2:]
    assert actions["type"] == "actions"
    assert warning["elements"][0]["text"] == "⚠️ LeadLex timed out &lt;again&gt;"


@pytest.mark.parametrize("state", [state for state in STATES if state != "pending"])
def test_decided_states_have_no_buttons(state: str) -> None:
    """Every state but pending renders without an actions block."""
    assert buttons(render(build_task(), any_card(state))) == []


@pytest.mark.parametrize(("action", "word"), [("approve", "Approving…"), ("dismiss", "Dismissing…")])
def test_deciding_card_says_who_is_deciding(action: str, word: str) -> None:
    """A deciding card shows the pending decision, the person and the time."""
    message = render(build_task(), Card(state="deciding", actor="U0ABC123", action=action, at=AT))
    assert f"⏳ {word} — <@U0ABC123> · {format_time(AT)}" in joined(message)


def test_approved_card_names_the_approver_or_leadlex() -> None:
    """An approved card names the Slack approver, or says the decision was made in LeadLex."""
    by_user = render(build_task(), Card(state="approved", actor="U0ABC123", at=AT))
    assert f"✅ Approved by <@U0ABC123> · {format_time(AT)}" in joined(by_user)
    assert by_user["text"].startswith("Approved by <@U0ABC123>: Prospect search")
    elsewhere = render(build_task(), Card(state="approved", at=AT))
    assert f"✅ Approved in LeadLex · {format_time(AT)}" in joined(elsewhere)


def test_dismissed_card_shows_reason_label_and_escaped_note() -> None:
    """A dismissed card shows who, the reason's label and the escaped free-text note."""
    card = Card(state="dismissed", actor="W0XYZ", at=AT, reason="duplicate", note="see <!here> task 2")
    text = joined(render(build_task(), card))
    assert f"🚫 Dismissed by <@W0XYZ> · {format_time(AT)} — Reason: {DISMISS_REASONS['duplicate']}" in text
    assert "see &lt;!here&gt; task 2" in text


def test_dismissed_card_escapes_an_unknown_reason_code() -> None:
    """An unknown reason code is shown escaped rather than dropped or interpreted."""
    text = joined(render(build_task(), Card(state="dismissed", reason="<!channel>")))
    assert "Reason: &lt;!channel&gt;" in text and "🚫 Dismissed in LeadLex" in text


def test_completed_and_failed_cards_keep_the_approver() -> None:
    """Completed and failed cards still say who approved the task."""
    completed = joined(render(build_task(), Card(state="completed", actor="U0ABC123", at=AT)))
    assert "✅ Approved by <@U0ABC123>" in completed and "🏁 Completed" in completed
    failed = joined(render(build_task(), Card(state="failed", actor="U0ABC123", at=AT)))
    assert "✅ Approved by <@U0ABC123>" in failed and "❌ Failed in LeadLex" in failed
    assert "❌ Failed in LeadLex" in joined(render(build_task(), Card(state="failed")))


def test_gone_card_says_the_task_no_longer_exists() -> None:
    """A gone card says the task no longer exists in LeadLex."""
    assert "❔ This task no longer exists in LeadLex." in joined(render(build_task(), Card(state="gone")))


def test_unknown_card_state_is_refused() -> None:
    """A card state outside the documented set is a programming error."""
    with pytest.raises(ValueError, match="unknown card state"):
        render_card(build_task(), Card(state="archived"))


@pytest.mark.parametrize("state", STATES)
def test_every_state_renders_the_header_description_and_context(state: str) -> None:
    """Every state keeps the header, the description and the created/id context line."""
    message = render(build_task(), any_card(state))
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds[:3] == ["header", "section", "section"]
    assert f"Created {format_time(AT)} · Task `task_1`" in joined(message)


# --- escaping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_hostile_text_everywhere_comes_out_inert(state: str) -> None:
    """Mentions and links in the description, type, id, metadata and note are escaped in every state."""
    task = Task(
        id=HOSTILE,
        type=HOSTILE,
        description=HOSTILE,
        created_at=AT,
        metadata={HOSTILE: HOSTILE, "list": [HOSTILE], "nested": {"x": HOSTILE}},
    )
    message = render(task, Card(state=state, actor=HOSTILE, at=AT, reason=HOSTILE, note=HOSTILE))
    tokens = angle_tokens(message)
    assert all(token.startswith("<!date^") for token in tokens), tokens
    assert "&lt;!channel&gt;" in joined(message)


def test_known_prospect_fields_escape_metadata_values() -> None:
    """Prospect search values are escaped in the summary fields."""
    task = build_task(metadata={"query": {"person_titles": ["<@U999>"]}, "per_page": "<!here>"})
    fields = render(task, Card(state="pending"))["blocks"][2]["fields"]
    assert fields[0]["text"] == "*Titles*\n&lt;@U999&gt;"
    assert fields[1]["text"] == "*Results*\n&lt;!here&gt;"
    assert all(field.get("verbatim") is True for field in fields)


@pytest.mark.parametrize("actor", ["U0ABC123", "W0ABC123"])
def test_valid_actor_becomes_a_mention(actor: str) -> None:
    """Slack user ids are rendered as mentions."""
    assert f"<@{actor}>" in joined(render(build_task(), Card(state="approved", actor=actor)))


@pytest.mark.parametrize("actor", ["u0abc", "U1", "B0ABC123", "U0ABC123\n", "U0ABC>", "<!channel>", "Ann Smith"])
def test_invalid_actor_is_escaped_plain_text(actor: str) -> None:
    """Anything that does not look like a Slack user id is shown as escaped text, never as a mention."""
    message = render(build_task(), Card(state="approved", actor=actor, at=AT))
    assert "<@" not in joined(message)
    assert all(token.startswith("<!date^") for token in angle_tokens(message))


# --- type summaries -------------------------------------------------------------------------------------


def test_prospect_search_fields_summarise_the_query() -> None:
    """A prospect search shows titles, industries, locations and results; long lists are capped."""
    titles = [f"Title {n}" for n in range(14)]
    task = build_task(
        metadata={
            "query": {
                "person_titles": titles,
                "organization_industries": ["Software"],
                "person_locations": ["Berlin", "Paris"],
            },
            "per_page": 2500,
        }
    )
    fields = [f["text"] for f in render(task, Card(state="pending"))["blocks"][2]["fields"]]
    assert fields[0] == "*Titles*\n" + ", ".join(titles[:10]) + " and 4 more"
    assert fields[1:] == ["*Industries*\nSoftware", "*Locations*\nBerlin, Paris", "*Results*\n2,500"]


def test_campaign_start_fields_show_campaign_and_contact_count() -> None:
    """A campaign start shows the campaign id and the contact count with thousands separators."""
    fields = [f["text"] for f in render(build_campaign(1500), Card(state="pending"))["blocks"][2]["fields"]]
    assert fields == ["*Campaign*\ncmp_42", "*Contacts*\n1,500"]
    assert render(build_campaign(), Card(state="pending"))["blocks"][0]["text"]["text"] == "📣 Campaign start"


def test_contact_update_fields_show_count_and_changes() -> None:
    """A contact update shows how many contacts and each field being changed."""
    task = build_task(
        type="contact_update",
        metadata={
            "contacts": ["c1", "c2", "c3"],
            "fields": {"lifecycle_stage": "customer", "owner": None},
            "source": "ai",
        },
    )
    fields = [f["text"] for f in render(task, Card(state="pending"))["blocks"][2]["fields"]]
    assert fields == ["*Contacts*\n3", "*Changes*\nlifecycle_stage → customer\nowner → ", "*Source*\nai"]
    assert impact(task) == "This will update 3 contacts."


def test_list_operation_fields_show_operation_list_and_records() -> None:
    """A list operation shows the operation, the list by name and id, and the record count."""
    task = build_task(
        type="list_operation",
        metadata={
            "operation": "merge",
            "list_name": "Hot leads",
            "list_id": "l_7",
            "record_count": "310",
        },
    )
    fields = [f["text"] for f in render(task, Card(state="pending"))["blocks"][2]["fields"]]
    assert fields == ["*Operation*\nmerge", "*List*\nHot leads (l_7)", "*Records*\n310"]
    assert impact(task) == "This will change 310 records."


def test_unknown_type_renders_generically() -> None:
    """An unknown type gets a header from its name and its metadata as key/value fields."""
    task = build_task(
        type="lead_enrichment",
        description="",
        metadata={
            "provider_name": "Acme",
            "enabled": True,
            "sizes": [1, 2],
            "filter": {"a": [1, "b"]},
            "empty": None,
        },
    )
    message = render(task, Card(state="pending"))
    assert message["blocks"][0]["text"]["text"] == "🧩 Lead enrichment"
    assert message["blocks"][1]["text"]["text"] == "_No description_"
    fields = [f["text"] for f in message["blocks"][2]["fields"]]
    assert fields == ["*Provider name*\nAcme", "*Enabled*\nyes", "*Sizes*\n1, 2", '*Filter*\n{"a":[1,"b"]}']
    assert describe_task(task) == "Lead enrichment"


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        [],
        ["a", {"b": 1}],
        "just text",
        42,
        {},
        {"query": None, "per_page": None},
        {"query": ["not", "a", "dict"], "per_page": "many"},
        {"query": {"person_titles": "CTO"}},
        {"contact_count": True, "fields": ["a", "b"]},
        {"contact_count": -5, "count": 10**5000},
        {"nested": {"a": [{"b": [None, {"c": set()}]}]}, 7: object(), None: float("nan")},
    ],
)
@pytest.mark.parametrize("kind", ["prospect_search", "campaign_start", "contact_update", "list_operation", "x"])
def test_odd_metadata_never_raises(metadata: Any, kind: str) -> None:
    """Missing, None, wrongly typed or junk metadata renders without error for every type."""
    task = build_task(type=kind, metadata=metadata)
    for state in STATES:
        render(task, any_card(state))
    describe_task(task)
    impact(task)
    approve_confirm(task)


def test_absurdly_deep_metadata_renders() -> None:
    """Metadata nested deeper than Python's recursion limit still renders."""
    deep: Any = "bottom"
    for _ in range(5000):
        deep = [deep]
    text = joined(render(build_task(type="x", metadata={"deep": deep}), Card(state="pending")))
    assert "*Deep*" in text


# --- impact and confirmation ----------------------------------------------------------------------------


def test_campaign_start_confirm_names_the_contact_count() -> None:
    """A campaign start's Approve button asks for confirmation naming how many contacts get emailed."""
    approve = buttons(render(build_campaign(150), Card(state="pending")))[0]
    assert "This will email 150 contacts." in approve["confirm"]["text"]["text"]
    assert approve["confirm"]["title"]["text"] == "Start this campaign?"
    assert impact(build_campaign(1)) == "This will email 1 contact."


def test_campaign_start_without_count_is_still_confirmed() -> None:
    """A campaign start always needs confirmation, even when its size is unknown."""
    task = build_campaign(None)
    assert impact(task) is None
    assert approve_confirm(task) is not None


def test_low_impact_or_unknown_size_tasks_have_no_confirm() -> None:
    """Prospect searches, unknown types and updates of unknown size are not confirmed."""
    assert impact(build_task()) is None and approve_confirm(build_task()) is None
    assert approve_confirm(build_task(type="contact_update", metadata={"fields": {"a": 1}})) is None
    assert approve_confirm(build_task(type="x", metadata={"count": 9})) is None
    assert approve_confirm(build_task(type="list_operation", metadata={"count": 9})) is not None


# --- truncation at every limit --------------------------------------------------------------------------


def test_long_unknown_type_header_is_truncated_to_150() -> None:
    """A very long unknown type is cut to Slack's 150-character header with a visible ellipsis."""
    header = render(build_task(type="&" * 1000), Card(state="pending"))["blocks"][0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("&amp;…")


def test_description_is_truncated_to_3000_without_splitting_entities() -> None:
    """A long description fills the 3000-character section, ends with "…" and never cuts an entity."""
    lengths = []
    for description in ("x" * 5000, "&" * 5000, "a<" * 3000):
        text = render(build_task(description=description), Card(state="pending"))["blocks"][1]["text"]["text"]
        assert len(text) <= 3000 and text.endswith("…")
        assert re.search(r"&[a-z]*…$", text) is None
        lengths.append(len(text))
    assert lengths[0] == 3000


def test_field_value_is_truncated_to_2000() -> None:
    """A long metadata value fills its 2000-character field and ends with "…"."""
    message = render(build_task(type="x", metadata={"blob": "y" * 10_000}), Card(state="pending"))
    field = message["blocks"][2]["fields"][0]["text"]
    assert len(field) == 2000 and field.endswith("…")


def test_long_task_id_is_truncated_in_button_value_and_context() -> None:
    """A task id longer than a button value may be is cut to 2000 characters with "…"."""
    message = render(build_task(id="i" * 5000), Card(state="pending"))
    assert all(len(b["value"]) == 2000 and b["value"].endswith("…") for b in buttons(message))
    assert "i" * 99 + "…`" in joined(message)


def test_long_note_reason_and_actor_are_truncated() -> None:
    """Long notes, reason codes and actor names are cut rather than overflowing their blocks."""
    card = Card(state="dismissed", actor="n" * 5000, at=AT, reason="r" * 5000, note="o" * 50_000)
    text = joined(render(build_task(), card))
    assert "n" * 100 not in text and "r" * 100 not in text and "o" * 1000 not in text and "…" in text


def test_huge_description_and_500_keys_stay_within_limits() -> None:
    """A 100 kB description with 500 metadata keys of long values stays within every limit."""
    metadata = {f"key_{n}": "v" * 3000 for n in range(500)}
    for kind in ("x", "campaign_start", "contact_update"):
        task = build_task(type=kind, description="€<" * 50_000, metadata=metadata)
        for state in STATES:
            message = render(task, Card(state=state, actor="U0ABC123", at=AT, note="n" * 5000))
            fields = message["blocks"][2]["fields"]
            assert len(fields) == 10 and fields[-1]["text"].startswith("*More*\n")


def test_control_characters_are_dropped_before_truncating() -> None:
    """Control characters never reach Slack and do not eat the visible text."""
    text = render(build_task(description="\x00" * 5000 + "visible"), Card(state="pending"))
    assert text["blocks"][1]["text"]["text"] == "visible"


# --- thread replies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "line"), [("completed", "🏁 Completed in LeadLex"), ("failed", "❌ Failed")])
def test_thread_reply_reports_completion_or_failure(state: str, line: str) -> None:
    """A thread reply states the outcome, its time and the task, within the limits."""
    message = thread_reply(build_task(description=HOSTILE), state, AT)
    check_message(message)
    assert line in joined(message) and format_time(AT) in joined(message)
    assert all(token.startswith("<!date^") for token in angle_tokens(message))


def test_thread_reply_refuses_other_states() -> None:
    """Thread replies exist only for completed and failed tasks."""
    with pytest.raises(ValueError, match="thread replies are for completed or failed tasks, not 'approved'"):
        thread_reply(build_task(), "approved")


def test_bulk_safety_size_decides_when_approval_is_confirmed() -> None:
    """With the policy's confirm_above, tasks within it approve in one click and larger ones ask, naming the count."""
    small = Task(id="c1", type="contact_update", metadata={"contact_count": 40})
    large = Task(id="c2", type="contact_update", metadata={"contact_count": 4000})
    unknown = Task(id="c3", type="campaign_start", metadata={})
    assert approve_confirm(small, confirm_above=100) is None
    confirm = approve_confirm(large, confirm_above=100)
    assert confirm is not None and "4,000 contacts" in confirm["text"]["text"]
    assert approve_confirm(unknown, confirm_above=100) is not None  # a campaign of unknown size always asks
    buttons = render_card(large, Card(state="pending", confirm_above=100))["blocks"][-1]["elements"]
    assert "confirm" in buttons[0] and "confirm" not in buttons[1]
