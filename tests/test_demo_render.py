"""The demo page's Block Kit renderer, run in a real browser on the bot's own cards, replies and modal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import bot.dev.demo
from bot.dev.demo.elements import with_ids
from bot.dev.sandbox_data import seed_proposals
from bot.lexi.models import DISMISS_REASONS, Task
from bot.slack import blocks
from bot.slack.blocks import Card, render_card, thread_reply
from bot.slack.modals import dismiss_modal
from tests.support.browser import chromium

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser

STATIC = Path(bot.dev.demo.__file__).parent / "static"
AT = datetime(2024, 5, 1, 14, 3, 9, tzinfo=UTC)
NOW_MS = int(datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
HOSTILE = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> <!channel> <@UALICE> '
    "<https://evil.example|click here> &amp; more"
)


def _tasks() -> dict[str, Task]:
    """One sample task of each type, from the sandbox's seed data."""
    tasks: dict[str, Task] = {}
    for index, (_, proposal) in enumerate(seed_proposals()):
        tasks.setdefault(
            proposal.type, Task(f"task-{index}", proposal.type, "pending", proposal.description, AT, proposal.metadata)
        )
    return tasks


TASKS = _tasks()


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    """A blank page in UTC with the demo's stylesheet and renderer loaded."""
    with chromium(timezone_id="UTC", locale="en-US") as context:
        page = context.new_page()
        page.set_content("<!doctype html><html><body><div id='root'></div></body></html>")
        page.add_style_tag(path=str(STATIC / "app.css"))
        page.add_script_tag(path=str(STATIC / "blockkit.js"))
        yield page


def render(page: Page, items: list[dict[str, Any]], **ctx: Any) -> Locator:
    """Render blocks into #root with the demo's people and channel; actions are collected in window.__actions."""
    page.evaluate(
        """([items, ctx]) => {
            document.querySelectorAll('.bk-confirm-backdrop').forEach((node) => node.remove());
            window.__actions = [];
            const base = {people: {UALICE: 'Alice', UBOB: 'Bob'}, channels: {C0LEXI: 'lexi-approvals'},
                          me: 'UALICE', onAction: (action) => window.__actions.push(action)};
            const options = Object.assign(base, ctx, {now: new Date(ctx.now)});
            document.getElementById('root').replaceChildren(BlockKit.blocks(items, options));
        }""",
        [items, {"now": NOW_MS, **ctx}],
    )
    return page.locator("#root")


def mrkdwn(page: Page, text: str) -> Locator:
    """Render one mrkdwn section."""
    return render(page, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def actions(page: Page) -> list[dict[str, Any]]:
    """The actions the rendered blocks reported since the last render."""
    return list(page.evaluate("window.__actions"))


@pytest.mark.parametrize("state", blocks.CARD_STATES)
@pytest.mark.parametrize("kind", sorted(TASKS))
def test_every_card_renders_each_of_its_blocks_in_order(page: Page, kind: str, state: str) -> None:
    """Each card type in each state renders one element per block, of the block's type, with its parts."""
    card = Card(state, actor="UALICE", action="approve", at=AT, reason="duplicate", note="Checked with sales")
    message = render_card(TASKS[kind], card)
    root = render(page, message["blocks"])
    rendered = root.locator(".bk-block")
    assert rendered.evaluate_all("nodes => nodes.map(n => n.dataset.type)") == [b["type"] for b in message["blocks"]]
    for index, block in enumerate(message["blocks"]):
        node = rendered.nth(index)
        if block["type"] == "header":
            assert node.inner_text() == block["text"]["text"]
        if block.get("fields"):
            assert node.locator(".bk-field").count() == len(block["fields"])
        if block["type"] == "actions":
            assert node.locator("button").all_inner_texts() == ["Approve", "Dismiss"]
    expected = {
        "pending": "Approve",
        "deciding": "Approving… — @Alice",
        "approved": "Approved by @Alice",
        "dismissed": "Dismissed by @Alice",
        "completed": "Completed in LeadLex",
        "failed": "Failed in LeadLex",
        "gone": "no longer exists in LeadLex",
        "expired": "Expired — not decided",
    }[state]
    assert expected in root.inner_text()
    assert root.locator(".bk-context").first.inner_text().startswith("Created May 1, 2024 at 2:03 PM · Task")


def test_fields_show_a_bold_label_over_the_value(page: Page) -> None:
    """A summary field is a bold label, a line break and the value, in a two-column grid."""
    root = render(page, render_card(TASKS["prospect_search"], Card("pending"))["blocks"])
    first = root.locator(".bk-field").first
    assert first.locator("b").inner_text() == "Titles"
    assert first.inner_text() == "Titles\nVP of Sales, Head of Revenue Operations"
    assert root.locator(".bk-fields").evaluate("n => getComputedStyle(n).gridTemplateColumns.split(' ').length") == 2


def test_buttons_carry_their_style_and_report_their_position(page: Page) -> None:
    """Approve is primary (green), Dismiss danger (red); a click reports block, element, action id and value."""
    task = TASKS["prospect_search"]
    message = render_card(task, Card("pending"))
    root = render(page, message["blocks"])
    approve, dismiss = root.get_by_role("button", name="Approve"), root.get_by_role("button", name="Dismiss")
    assert "bk-primary" in (approve.get_attribute("class") or "")
    assert "bk-danger" in (dismiss.get_attribute("class") or "")
    assert approve.evaluate("n => getComputedStyle(n).backgroundColor") == "rgb(0, 122, 90)"
    assert dismiss.evaluate("n => getComputedStyle(n).color") == "rgb(224, 30, 90)"
    approve.click()
    dismiss.click()
    block = len(message["blocks"]) - 1
    assert actions(page) == [
        {"block": block, "element": 0, "action_id": blocks.APPROVE_ACTION, "value": task.id},
        {"block": block, "element": 1, "action_id": blocks.DISMISS_ACTION, "value": task.id},
    ]


def test_confirm_dialog_comes_before_a_high_impact_approval(page: Page) -> None:
    """A button with `confirm` shows its dialog; Cancel sends nothing, the confirm button sends the click."""
    root = render(page, render_card(TASKS["campaign_start"], Card("pending"))["blocks"])
    root.get_by_role("button", name="Approve").click()
    dialog = page.locator(".bk-confirm")
    assert dialog.locator(".bk-confirm-title").inner_text() == "Start this campaign?"
    assert "This will email 150 contacts. Sent emails cannot be recalled." in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert page.locator(".bk-confirm").count() == 0 and actions(page) == []
    root.get_by_role("button", name="Approve").click()
    page.locator(".bk-confirm-ok").click()
    assert [a["action_id"] for a in actions(page)] == [blocks.APPROVE_ACTION]


def test_thread_reply_renders_its_date_for_the_viewer(page: Page) -> None:
    """A completion reply shows its line and a <!date> token as a local date (UTC here), with the ISO time."""
    root = render(page, thread_reply(TASKS["contact_update"], "completed", AT)["blocks"])
    assert root.inner_text().startswith("🏁 Completed in LeadLex · May 1, 2024 at 2:03 PM\nContact update — Mark 42")
    assert root.locator("time").get_attribute("datetime") == "2024-05-01T14:03:09.000Z"


def test_dismiss_modal_renders_its_inputs_and_reads_them_back(page: Page) -> None:
    """The reason radios, the optional note (max 500) and what the person chose come back as Slack's ids."""
    view = with_ids(dismiss_modal(TASKS["list_operation"], "C0LEXI"))
    root = render(page, view["blocks"])
    assert root.locator("input[type=radio]").evaluate_all("ns => ns.map(n => n.value)") == list(DISMISS_REASONS)
    assert root.locator(".bk-choice").all_inner_texts() == list(DISMISS_REASONS.values())
    note = root.locator("textarea")
    assert note.get_attribute("maxlength") == "500"
    assert root.locator(".bk-input-label").all_inner_texts() == ["Why dismiss it?", "Note for Lexi (optional)"]
    assert page.evaluate("BlockKit.readInputs(document.getElementById('root')).missing") == ["reason"]
    root.locator(".bk-choice", has_text="Duplicate").click()
    note.fill("Same list as last week")
    assert page.evaluate("BlockKit.readInputs(document.getElementById('root'))") == {
        "values": {"reason": {"reason_choice": "duplicate"}, "note": {"note_text": "Same list as last week"}},
        "missing": [],
    }


def test_errors_from_the_bot_show_under_their_field(page: Page) -> None:
    """`response_action: errors` messages appear under the named input and disappear when cleared."""
    view = with_ids(dismiss_modal(TASKS["list_operation"], "C0LEXI"))
    root = render(page, view["blocks"], errors={"reason": "Choose a reason."})
    error = root.locator("[data-block-id=reason] .bk-error")
    assert error.is_visible() and error.inner_text() == "Choose a reason."
    assert not root.locator("[data-block-id=note] .bk-error").is_visible()
    page.evaluate("BlockKit.showErrors(document.getElementById('root'), {})")
    assert not error.is_visible()


@pytest.mark.parametrize(
    ("text", "selector", "shown"),
    [
        ("*Approved* now", "b", "Approved"),
        ("_No description_", "i", "No description"),
        ("~old~ new", "s", "old"),
        ("Task `abc-123`", "code.bk-code", "abc-123"),
        ("```line one\nline two```", "pre.bk-pre", "line one\nline two"),
        ("by <@UALICE>", ".bk-mention.bk-mention-me", "@Alice"),
        ("by <@UBOB>", ".bk-mention:not(.bk-mention-me)", "@Bob"),
        ("in <#C0LEXI>", ".bk-channel", "#lexi-approvals"),
        ("<!date^1714572189^{date_short_pretty} at {time}|2024-05-01 14:03 UTC>", "time", "May 1, 2024 at 2:03 PM"),
        ("<!date^1717243200^{date_pretty} {time_secs}|x>", "time", "Today 12:00:00 PM"),
        ("see <https://example.com/a_b_c|the docs>", "a[href='https://example.com/a_b_c']", "the docs"),
    ],
)
def test_mrkdwn_formatting(page: Page, text: str, selector: str, shown: str) -> None:
    """Each mrkdwn construct the bot uses becomes the element Slack shows, with the text Slack shows."""
    assert mrkdwn(page, text).locator(selector).inner_text() == shown


def test_entities_are_unescaped_for_display_only(page: Page) -> None:
    """&lt; &gt; &amp; show as < > &, once: an escaped entity stays visible as typed, and no markup appears."""
    root = mrkdwn(page, "a &lt;b&gt; &amp;amp; snake_case_name")
    assert root.inner_text() == "a <b> &amp; snake_case_name"
    assert root.locator("b, i").count() == 0


def test_hostile_task_text_is_shown_as_text(page: Page) -> None:
    """An AI's description with HTML, a broadcast, a mention and a link renders as the literal text, inert."""
    card = render_card(Task("t-hostile", "prospect_search", "pending", HOSTILE, AT, {"note": HOSTILE}), Card("pending"))
    root = render(page, card["blocks"])
    description = root.locator(".bk-section").first
    assert description.inner_text() == HOSTILE
    assert root.locator("img, script, a, .bk-mention").count() == 0
    assert page.evaluate("window.__pwned") is None


@pytest.mark.parametrize(
    "raw",
    [
        "<img src=x onerror=window.__pwned=1>",
        "<javascript:window.__pwned=1|click>",
        "<script>window.__pwned=1</script>",
    ],
)
def test_unescaped_markup_never_becomes_html(page: Page, raw: str) -> None:
    """Even text a bot forgot to escape is shown as text: no element, no javascript: link."""
    root = mrkdwn(page, raw)
    assert root.locator("img, script, a").count() == 0
    assert "<" in root.inner_text()
    assert page.evaluate("window.__pwned") is None


def test_other_blocks_and_elements(page: Page) -> None:
    """Dividers, images (offline: their alt text), selects and unknown blocks render without breaking the rest."""
    root = render(
        page,
        [
            {"type": "divider"},
            {"type": "image", "image_url": "https://example.com/x.png", "alt_text": "a chart"},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "static_select",
                        "action_id": "pick",
                        "options": [{"text": {"type": "plain_text", "text": "One"}, "value": "1"}],
                    }
                ],
            },
            {"type": "rich_text", "elements": []},
            {"type": "context", "elements": [{"type": "plain_text", "text": "after"}]},
        ],
    )
    assert root.locator(".bk-divider hr").count() == 1
    assert root.locator(".bk-img").inner_text() == "a chart"
    root.locator("select").select_option("1")
    assert actions(page) == [{"block": 2, "element": 0, "action_id": "pick", "selected": "1"}]
    assert "rich_text" in root.locator(".bk-rich_text").inner_text()
    assert root.locator(".bk-context").inner_text() == "after"
