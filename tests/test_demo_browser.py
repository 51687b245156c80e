"""The demo end to end in headless Chromium: what a person sees and does in the channel page, through the bot.

Screenshots go to the test's temporary directory, or to LEXI_SCREENSHOT_DIR when set (to refresh the README's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.dev.demo import Demo
from tests.support.browser import WAIT_MS, chromium
from tests.support.harness import SECRETS_GIVEN

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__pwned=1"> <!channel> wants <https://evil.example|a link>'


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """A demo with the sample tasks, completing approved ones after 2 s, polling fast, generating nothing."""
    with Demo(generate_every=None, complete_after=2.0, poll_interval=0.5, post_interval=0.0) as running:
        SECRETS_GIVEN.update(running.secrets())
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    """One headless Chromium for the module."""
    with chromium(viewport={"width": 1440, "height": 900}, locale="en-US") as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext, demo: Demo) -> Iterator[Page]:
    """A fresh tab on the demo, acting as Alice, failing the test on any script error."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    errors: list[str] = []
    tab = browser.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(demo.url)
    act_as(tab, "UALICE")
    yield tab
    tab.close()
    assert not errors, errors


def act_as(page: Page, user: str) -> None:
    """Switch the page to `user` and wait until it shows what they see."""
    from playwright.sync_api import expect

    person = page.locator(f'[data-person="{user}"]')
    person.click()
    expect(person).to_have_attribute("aria-checked", "true")


def card(page: Page, words: str) -> Locator:
    """The channel message containing `words`."""
    return page.locator('#messages .msg[data-kind="message"]', has_text=words)


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    """Screenshot the page into LEXI_SCREENSHOT_DIR (when set) or the test's directory."""
    folder = Path(os.environ.get("LEXI_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_a_task_appears_and_approving_changes_its_card_in_place(page: Page, tmp_path: Path) -> None:
    """A sample task appears; Approve turns that very message into "Approved by @Alice", then a thread reply."""
    from playwright.sync_api import expect

    target = card(page, "Find VPs of Sales")
    expect(target.get_by_role("button", name="Approve")).to_be_visible()
    ts = target.get_attribute("data-ts")
    target.get_by_role("button", name="Approve").click()
    same = page.locator(f'#messages .msg[data-ts="{ts}"]')
    expect(same).to_contain_text("Approved by @Alice")
    expect(same.get_by_role("button")).to_have_count(0)
    expect(same.locator(".edited")).to_have_text("(edited)")
    # Edited in place: one message with that ts, and no other says so (the demo may still be announcing others).
    expect(page.locator(f'#messages .msg[data-ts="{ts}"]')).to_have_count(1)
    expect(page.locator('#messages .msg[data-kind="message"]', has_text="Approved by @Alice")).to_have_count(1)
    same.locator(".thread-summary").click()
    expect(same.locator(".reply-count")).to_have_text("1 reply")
    expect(page.locator("#thread")).to_contain_text("Completed in LeadLex")
    expect(same).to_contain_text("Completed in LeadLex")
    shot(page, tmp_path, "demo-thread.png")


def test_high_impact_approval_asks_first(demo: Demo, page: Page) -> None:
    """Approve on a large campaign shows Slack's confirm dialog; Cancel does nothing, Approve approves."""
    from playwright.sync_api import expect

    target = card(page, "Churned customers win-back")
    target.get_by_role("button", name="Approve").click()
    dialog = page.locator(".bk-confirm")
    expect(dialog).to_contain_text("Start this campaign?")
    expect(dialog).to_contain_text("This will email 1,240 contacts.")
    assert demo.sandbox is not None
    decisions = len(demo.sandbox.calls_to("POST", "/v1/lexi/tasks/"))
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert len(demo.sandbox.calls_to("POST", "/v1/lexi/tasks/")) == decisions
    target.get_by_role("button", name="Approve").click()
    page.locator(".bk-confirm-ok").click()
    expect(target).to_contain_text("Approved by @Alice")


def test_dismiss_through_the_modal(page: Page, tmp_path: Path) -> None:
    """Dismiss opens the reason modal; a reason is required; submitting dismisses the task with that reason."""
    from playwright.sync_api import expect

    target = card(page, "Find CFOs at fintech companies")
    target.get_by_role("button", name="Dismiss").click()
    modal = page.locator(".modal")
    expect(modal.locator(".modal-title")).to_have_text("Dismiss task")
    expect(modal).to_contain_text("Prospect search — Find CFOs")
    modal.locator(".modal-submit").click()
    expect(modal.locator("[data-block-id=reason] .bk-error")).to_have_text("Please complete this required field.")
    modal.locator(".bk-choice", has_text="Duplicate").click()
    modal.locator("textarea").fill("Same search as last week")
    shot(page, tmp_path, "demo-modal.png")
    modal.locator(".modal-submit").click()
    expect(modal).to_have_count(0)
    expect(target).to_contain_text("Dismissed by @Alice")
    expect(target).to_contain_text("Reason: Duplicate")


def test_slash_command_answers_privately(page: Page) -> None:
    """`/lexi tasks` typed in the message box is answered with a message only its author sees."""
    from playwright.sync_api import expect

    act_as(page, "UBOB")
    before = page.locator(".msg.ephemeral").count()
    page.locator("#composer").fill("/lexi tasks")
    expect(page.locator("#command-hint")).to_be_visible()
    page.locator("#composer").press("Enter")
    answer = page.locator(".msg.ephemeral").nth(before)
    expect(answer).to_contain_text("Only visible to you")
    assert answer.locator(".msg-content").inner_text().strip()
    act_as(page, "UCAROL")
    expect(page.locator(".msg.ephemeral")).to_have_count(0)


def test_non_approver_is_refused_privately(demo: Demo, page: Page, tmp_path: Path) -> None:
    """Carol (not an approver) clicks Approve: she alone is told who may decide, and the task stays pending."""
    from playwright.sync_api import expect

    act_as(page, "UCAROL")
    target = card(page, "Mark 42 contacts")
    target.get_by_role("button", name="Approve").click()
    page.locator(".bk-confirm-ok").click()
    refusal = page.locator(".msg.ephemeral", has_text="can approve")
    expect(refusal).to_contain_text("Only @Alice, @Bob can approve contact update tasks.")
    expect(target.get_by_role("button", name="Approve")).to_be_visible()
    assert demo.sandbox is not None
    assert [t["status"] for t in demo.sandbox.tasks() if t["description"].startswith("Mark 42")] == ["pending"]
    shot(page, tmp_path, "demo-refusal.png")
    act_as(page, "UALICE")
    expect(page.locator(".msg.ephemeral", has_text="can approve")).to_have_count(0)


def test_home_tab_opens(page: Page) -> None:
    """The Home tab sends app_home_opened and shows what the bot published, or says it published nothing."""
    from playwright.sync_api import expect

    page.locator('[data-nav="home"]').click()
    expect(page.locator("#home-view")).to_be_visible()
    expect(page.locator("#home")).not_to_contain_text("Opening the Home tab")
    expect(page.locator("#home .bk-blocks, #home .empty")).to_have_count(1)
    page.locator('[data-nav="channel"]').click()
    expect(page.locator("#channel-view")).to_be_visible()


def test_panel_shows_what_happened_underneath(page: Page, tmp_path: Path) -> None:
    """The panel lists LeadLex calls with status codes, the budget left, Slack requests both ways and the log."""
    from playwright.sync_api import expect

    act_as(page, "UBOB")
    page.locator("#composer").fill("/lexi help")
    page.locator("#composer").press("Enter")
    expect(page.locator(".msg.ephemeral")).not_to_have_count(0)
    act_as(page, "UALICE")
    expect(page.locator("#leadlex-calls")).to_contain_text("/v1/lexi/tasks?status=pending")
    expect(page.locator("#leadlex-calls .status").first).to_have_text("200")
    expect(page.locator("#budget")).to_contain_text("calls left today")
    expect(page.locator("#slack-requests")).to_contain_text("slash_command")
    expect(page.locator("#slack-api")).to_contain_text("chat.postMessage")
    expect(page.locator("#log")).to_contain_text("demo ready")
    shot(page, tmp_path, "demo-channel.png")


def test_hostile_task_text_is_shown_as_text(demo: Demo, page: Page) -> None:
    """A task whose text holds HTML and a broadcast shows that text literally, and nothing runs."""
    from playwright.sync_api import expect

    assert demo.sandbox is not None
    demo.sandbox.add_task("list_operation", HOSTILE, {"operation": "create", "list_name": HOSTILE})
    target = card(page, "wants")
    expect(target).to_contain_text(HOSTILE)
    assert target.locator("img, a, .bk-broadcast").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_a_headless_capture_of_the_page_finishes(demo: Demo, tmp_path: Path) -> None:
    """A headless capture reaches `load`, runs out its budget and writes the picture.

    The capture is `chromium --headless --virtual-time-budget=3000 --screenshot`: nothing the page holds open keeps
    the headless browser waiting (a held-open event stream did).
    """
    import subprocess

    from tests.support.browser import ARGS, CHROMIUM, skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    picture = tmp_path / "capture.png"
    command = [
        CHROMIUM,
        "--headless",
        *ARGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,800",
        "--virtual-time-budget=3000",
        f"--screenshot={picture}",
        demo.url,
    ]
    try:
        # A bound on the wait, not a speed requirement: the capture takes a second or two; a stream held it for minutes.
        subprocess.run(command, capture_output=True, timeout=3 * WAIT_MS / 1000, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the headless capture never finished: the page kept the browser waiting")
    assert picture.stat().st_size > 10_000


def test_a_card_in_the_dm_is_clickable_there(demo: Demo, page: Page) -> None:
    """A card the bot posts in Carol's DM shows in Direct messages; her click there is refused there, privately."""
    from playwright.sync_api import expect
    from slack_sdk import WebClient

    assert demo.standin is not None
    act_as(page, "UCAROL")
    target = card(page, "Mark 42 contacts")
    expect(target.get_by_role("button", name="Approve")).to_be_visible()
    row = next(r for r in demo.standin.messages("C0LEXI") if "Mark 42 contacts" in r.text and not r.thread_ts)
    client = WebClient(token=demo.bot_token, base_url=demo.standin.api_url)
    client.chat_postMessage(channel="DCAROL", text=row.text, blocks=row.blocks)
    expect(page.locator("#dm-count")).to_have_text("1")
    page.locator('[data-nav="dm"]').click()
    expect(page.locator("#dm-view")).to_be_visible()
    expect(page.locator("#dm-count")).to_be_hidden()
    in_dm = page.locator('#dm-messages .msg[data-kind="message"]', has_text="Mark 42 contacts")
    in_dm.get_by_role("button", name="Approve").click()
    page.locator(".bk-confirm-ok").click()
    refusal = page.locator("#dm-messages .msg.ephemeral", has_text="can approve")
    expect(refusal).to_contain_text("Only @Alice, @Bob can approve contact update tasks.")
    assert [e.channel for e in demo.standin.ephemerals_for("UCAROL")][-1] == "DCAROL"
    page.locator('[data-nav="channel"]').click()
    expect(target.get_by_role("button", name="Approve")).to_be_visible()


def test_lexi_pane_answers_a_suggested_prompt_and_links_its_card(demo: Demo, page: Page, tmp_path: Path) -> None:
    """The Lexi pane greets with prompt chips; a chip asks Lexi; her answer, the title and the task's card show.

    The card is in the pane's thread (with its buttons) and in the channel, where the answer's link leads.

    Last in the module: the card it adds would also match the first test's "Find VPs of Sales".
    """
    from playwright.sync_api import expect

    page.locator("#channel-view .open-pane").click()
    pane = page.locator("#pane")
    expect(pane).to_be_visible()
    expect(page.locator("#panel")).to_be_hidden()
    expect(pane.locator("#pane-body")).to_contain_text("Hi, I'm Lexi")
    chips = pane.locator(".prompt-chip")
    expect(chips).to_have_count(3)
    chips.filter(has_text="Find 20 VPs of Sales").click()
    expect(pane.locator("#pane-body .msg")).to_have_count(4)  # greeting, prompt, answer, and the task's card
    answer = pane.locator("#pane-body .msg").nth(2)
    in_thread = pane.locator("#pane-body .msg").nth(3)
    expect(in_thread).to_contain_text("Find VPs of Sales at fintech companies in New York")
    expect(in_thread.get_by_role("button", name="Approve")).to_be_visible()
    expect(answer).to_contain_text("I prepared a prospect search: Find VPs of Sales at fintech companies in New York")
    expect(page.locator("#pane-title")).to_have_text("Find 20 VPs of Sales at fintech companies in New York")
    expect(page.locator("#pane-status")).to_be_hidden()  # "Lexi is thinking…" is cleared with the answer
    expect(chips.first).to_be_hidden()  # the prompts go once the person has written
    shot(page, tmp_path, "demo-pane.png")
    created = card(page, "Find VPs of Sales at fintech companies in New York")
    link = answer.get_by_role("link", name="see its card")
    if link.count() == 0:  # the card was not recorded yet when Lexi answered (a busy channel): she says so
        expect(answer).to_contain_text("its card will appear in")
        return
    link.click()
    expect(created).to_be_in_viewport()
    expect(created.get_by_role("button", name="Approve")).to_be_visible()
    assert page.url == demo.url  # followed in the page: no new tab on the stand-in's permalink
    assert not [tab.url for tab in page.context.pages if "/archives/" in tab.url]
