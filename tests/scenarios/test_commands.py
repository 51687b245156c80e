"""Issue 3: the /lexi command over signed HTTP — list, decide by id, ask Lexi, status — answered in time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks, modals
from tests.support.harness import CHANNEL, BotHarness, start_bot


def _run(bot: BotHarness, text: str, user: str = "UALICE") -> list[dict[str, Any]]:
    """Run `/lexi <text>`, check the ack said it is working, wait for the work, return the answers it sent."""
    before = len(bot.slack.responses)
    response = bot.command(text, user=user)
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral", "text": "Working on it…"}
    bot.settle()
    answers = [r.body for r in bot.slack.responses[before:]]
    assert answers and all(a["response_type"] == "ephemeral" for a in answers)
    return answers


def _text(answers: list[dict[str, Any]]) -> str:
    """Everything the answers say, blocks included, as one string."""
    return json.dumps(answers, ensure_ascii=False)


def _buttons(answer: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The Approve / Dismiss buttons of an answer, by task id."""
    found: dict[str, list[dict[str, Any]]] = {}
    for block in answer.get("blocks") or []:
        if block["type"] == "actions":
            found[block["elements"][0]["value"]] = block["elements"]
    return found


def _click_ephemeral(bot: BotHarness, action_id: str, task_id: str, user: str = "UALICE") -> None:
    """Click a button in an ephemeral message: Slack sends its container and a response_url, no message."""
    payload = payloads.build_block_action(
        action_id=action_id,
        value=task_id,
        user=user,
        channel=CHANNEL,
        trigger_id=bot.slack.new_trigger_id(user),
        response_url=bot.slack.new_response_url(),
        container={"type": "message", "message_ts": "1763900000.000200", "channel_id": CHANNEL, "is_ephemeral": True},
    )
    payload.pop("message")
    assert bot.post(*payloads.encode_interactive(payload)).status_code == 200


def _card_text(bot: BotHarness, task_id: str) -> str:
    """The blocks of a task's channel card, as JSON."""
    message = bot.slack.message(CHANNEL, bot.store.get(task_id).message_ts)
    return json.dumps(message.blocks, ensure_ascii=False)


def _calls(sandbox: Sandbox, method: str, path: str) -> int:
    """How many requests LeadLex received on one endpoint."""
    return len(sandbox.calls_to(method, path))


@pytest.mark.parametrize("text", ["", "help", "launch the rockets"])
def test_help_alone_and_unknown_subcommands_answer_with_usage_at_once(
    bot: BotHarness, sandbox: Sandbox, text: str
) -> None:
    """`/lexi`, `/lexi help` and an unknown subcommand get the usage in the ack itself, without LeadLex."""
    response = bot.command(text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert "`/lexi tasks [status]`" in body["text"] and "`/lexi ask [--new] <message>`" in body["text"]
    if text.startswith("launch"):
        assert body["text"].startswith("I don't know `/lexi launch`.")
    bot.settle()
    assert sandbox.calls == [] and bot.slack.responses == []


def test_unknown_status_is_answered_with_the_valid_ones(bot: BotHarness, sandbox: Sandbox) -> None:
    """`/lexi tasks done` is answered at once with the statuses LeadLex knows, and LeadLex is not called."""
    text = bot.command("tasks done").json()["text"]
    assert text.startswith(
        "`done` is not a task status. Use one of: pending, approved, dismissed, completed, failed.\n"
    )
    bot.settle()
    assert sandbox.calls == []


def test_tasks_lists_pending_tasks_with_buttons_and_confirmations(bot: BotHarness, sandbox: Sandbox) -> None:
    """`/lexi tasks` lists LeadLex's pending tasks with buttons; a big campaign's Approve asks to confirm."""
    search = sandbox.add_task(
        "prospect_search", "Find <!channel> CFOs", {"per_page": 20}, created_at="2026-01-01T10:00:00Z"
    )["id"]
    campaign = sandbox.add_task(
        "campaign_start",
        "Start campaign 'Win-back'",
        {"campaign_id": "c1", "contact_count": 1240},
        created_at="2026-01-01T11:00:00Z",
    )["id"]
    bot.poll()
    (answer,) = _run(bot, "tasks")
    assert answer["text"] == "2 pending tasks in LeadLex"
    buttons = _buttons(answer)
    assert list(buttons) == [campaign, search]  # newest first
    for elements in buttons.values():
        assert [e["action_id"] for e in elements] == [blocks.APPROVE_ACTION, blocks.DISMISS_ACTION]
    assert "1,240 contacts" in buttons[campaign][0]["confirm"]["text"]["text"]
    assert "confirm" not in buttons[search][0]
    assert "&lt;!channel&gt;" in _text([answer]) and "<!channel>" not in _text([answer])


def test_buttons_in_the_task_list_decide_like_the_card_buttons(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Approve in the list decides once and updates the card; a later click is answered via response_url."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales")["id"]
    bot.poll()
    (answer,) = _run(bot, "tasks")
    assert task_id in _buttons(answer)
    _click_ephemeral(bot, blocks.APPROVE_ACTION, task_id, user="UBOB")
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    assert "Approved by <@UBOB>" in _card_text(bot, task_id)
    before = len(slack.responses)
    _click_ephemeral(bot, blocks.APPROVE_ACTION, task_id, user="UCAROL")
    bot.settle()
    assert _calls(sandbox, "POST", f"/v1/lexi/tasks/{task_id}/approve") == 1
    (late,) = slack.responses[before:]
    assert late.body["text"] == "This task was already approved by <@UBOB>."


def test_dismiss_in_the_task_list_opens_the_reason_form(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Dismiss in the list opens the reason modal; submitting it dismisses with the reason and note."""
    task_id = sandbox.add_task("contact_update", "Mark 3 contacts as customers", {"contact_count": 3})["id"]
    bot.poll()
    _run(bot, "tasks")
    _click_ephemeral(bot, blocks.DISMISS_ACTION, task_id, user="UBOB")
    bot.wait_for(lambda: slack.views)
    (opened,) = slack.views
    assert opened.view["callback_id"] == modals.DISMISS_MODAL and opened.user == "UBOB"
    submission = payloads.build_view_submission(
        callback_id=modals.DISMISS_MODAL,
        private_metadata=opened.view["private_metadata"],
        user="UBOB",
        values={
            modals.REASON_BLOCK: {
                modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": {"value": "testing"}}
            },
            modals.NOTE_BLOCK: {modals.NOTE_INPUT: "only a drill"},
        },
    )
    assert bot.post(*payloads.encode_interactive(submission)).status_code == 200
    bot.settle()
    assert sandbox.task(task_id)["dismiss_reason"] == "testing: only a drill"
    assert "Dismissed by <@UBOB>" in _card_text(bot, task_id)


def test_tasks_in_another_status_have_no_buttons(bot: BotHarness, sandbox: Sandbox) -> None:
    """`/lexi tasks approved` lists approved tasks without buttons."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    sandbox.set_status(task_id, "approved")
    (answer,) = _run(bot, "tasks approved")
    assert answer["text"] == "1 approved task in LeadLex" and _buttons(answer) == {}
    assert task_id in _text([answer])


def test_long_task_list_is_cut_with_a_count(bot: BotHarness, sandbox: Sandbox) -> None:
    """Thirty pending tasks are answered within Slack's 50 blocks, saying how many are not shown."""
    for i in range(30):
        sandbox.add_task("prospect_search", f"Search {i}", task_id=f"t{i:02d}")
    bot.poll()
    (answer,) = _run(bot, "tasks")
    shown = len(_buttons(answer))
    assert 0 < shown <= 15 and len(answer["blocks"]) <= 50
    assert f"…and {30 - shown} older not shown" in _text([answer])


def test_tasks_announces_listed_tasks_that_have_no_card_yet(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A pending task listed before any poll gets its card, so its list buttons work at once."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    (answer,) = _run(bot, "tasks")
    assert task_id in _buttons(answer)
    assert bot.store.get(task_id).state == "pending" and len(slack.messages(CHANNEL)) == 1
    _click_ephemeral(bot, blocks.APPROVE_ACTION, task_id)
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"


def test_approve_by_id_decides_through_the_one_path(bot: BotHarness, sandbox: Sandbox) -> None:
    """`/lexi approve <id>` approves once, rewrites the card and confirms privately."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales")["id"]
    bot.poll()
    (answer,) = _run(bot, f"approve {task_id}", user="UCAROL")
    assert answer["text"] == (f"✅ Approved: Prospect search — Find VPs of Sales. Its card in <#{CHANNEL}> shows it.")
    assert sandbox.task(task_id)["status"] == "approved"
    row = bot.store.get(task_id)
    assert row.actor == "UCAROL" and row.surface == "command"
    assert "Approved by <@UCAROL>" in _card_text(bot, task_id)


def test_approve_by_id_of_a_task_never_announced_announces_it_first(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A pending task with no record gets its card, then is approved with one LeadLex approve call."""
    task_id = sandbox.add_task("campaign_start", "Start campaign 'Q1'", {"contact_count": 150})["id"]
    (answer,) = _run(bot, f"approve {task_id}")
    assert answer["text"].startswith("✅ Approved: Campaign start")
    assert _calls(sandbox, "POST", f"/v1/lexi/tasks/{task_id}/approve") == 1
    (card,) = slack.messages(CHANNEL)
    assert card.metadata["event_payload"]["task_id"] == task_id
    assert "Approved by <@UALICE>" in _card_text(bot, task_id)


def test_approve_by_id_of_an_unknown_task_says_so(bot: BotHarness, sandbox: Sandbox) -> None:
    """An id LeadLex does not know is answered plainly, and nothing is approved or posted."""
    (answer,) = _run(bot, "approve no-such-task")
    assert answer["text"].startswith("LeadLex has no task `no-such-task`.")
    assert sandbox.calls_to("POST", "/v1/lexi/tasks/") == [] and bot.slack.messages(CHANNEL) == []


def test_approve_by_id_of_a_task_decided_in_leadlex_says_so(bot: BotHarness, sandbox: Sandbox) -> None:
    """A task dismissed in LeadLex before any card is reported as such, without a call to approve."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    sandbox.set_status(task_id, "dismissed")
    (answer,) = _run(bot, f"approve {task_id}")
    assert answer["text"].startswith(f"Task `{task_id}` is already dismissed in LeadLex;")
    assert sandbox.calls_to("POST", "/v1/lexi/tasks/") == []


def test_approve_by_id_of_a_task_decided_in_slack_names_who(bot: BotHarness, sandbox: Sandbox) -> None:
    """A command on a task someone already decided tells who did, and calls LeadLex no more."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    bot.poll()
    _run(bot, f"approve {task_id}", user="UBOB")
    (answer,) = _run(bot, f"dismiss {task_id} duplicate")
    assert answer["text"] == "This task was already approved by <@UBOB>."
    assert sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/dismiss") == []


def test_dismiss_by_id_with_a_reason_code_and_a_note(bot: BotHarness, sandbox: Sandbox) -> None:
    """`/lexi dismiss <id> duplicate <note>` sends the code and note, and the card shows the reason."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    bot.poll()
    (answer,) = _run(bot, f"dismiss {task_id} duplicate same as yesterday's")
    assert answer["text"].startswith("🚫 Dismissed: Prospect search — Find CTOs.")
    assert sandbox.task(task_id)["dismiss_reason"] == "duplicate: same as yesterday's"
    card = _card_text(bot, task_id)
    assert "Dismissed by <@UALICE>" in card and "Reason: Duplicate" in card


def test_dismiss_by_id_with_free_text_only_sends_it_as_the_note(bot: BotHarness, sandbox: Sandbox) -> None:
    """Free text after the id, without a reason code, is sent as the note alone."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    bot.poll()
    _run(bot, f"dismiss {task_id} we did it by hand")
    assert sandbox.task(task_id)["dismiss_reason"] == "we did it by hand"
    assert bot.store.get(task_id).reason is None


def test_a_note_that_says_payload_is_a_note(bot: BotHarness, sandbox: Sandbox) -> None:
    """A command whose text holds the word "payload" is decided like any other (it used to be refused with a 400)."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    bot.poll()
    (answer,) = _run(bot, f"dismiss {task_id} the payload=wrong list")
    assert answer["text"].startswith("🚫 Dismissed")
    assert sandbox.task(task_id)["dismiss_reason"] == "the payload=wrong list"


def test_only_approvers_may_decide_or_get_buttons_by_command(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """With LEXI_APPROVERS set, others get a list without buttons and are refused decisions by id."""
    harness = start_bot(sandbox, slack, database_url, LEXI_APPROVERS="UCAROL")
    try:
        task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
        harness.poll()
        (listing,) = _run(harness, "tasks", user="UBOB")
        assert _buttons(listing) == {} and "Only <@UCAROL>" in _text([listing])
        (refusal,) = _run(harness, f"approve {task_id}", user="UBOB")
        assert refusal["text"] == "Only <@UCAROL> can approve prospect search tasks. Ask one of them."
        assert sandbox.calls_to("POST", "/v1/lexi/tasks/") == []
        assert harness.store.get(task_id).state == "pending"
    finally:
        harness.close()


def test_ask_answers_and_announces_the_task_lexi_prepared_at_once(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Lexi's answer is shown escaped; the task it created is announced without waiting for a poll."""
    (answer,) = _run(bot, "ask find 20 CFOs at fintech companies in Germany &lt;!here&gt;")
    (call,) = sandbox.calls_to("POST", "/v1/lexi/chat")
    assert call.body["message"] == "find 20 CFOs at fintech companies in Germany <!here>"
    text = answer["text"]
    assert text.startswith("*Lexi:* I prepared a prospect search") and "<!here>" not in text
    (card,) = slack.messages(CHANNEL)
    task_id = card.metadata["event_payload"]["task_id"]
    assert sandbox.task(task_id)["status"] == "pending" and bot.store.get(task_id).state == "pending"
    assert f"/archives/{CHANNEL}/p{card.ts.replace('.', '')}|see its card> in <#{CHANNEL}>." in text


def test_ask_without_a_task_only_answers(bot: BotHarness, slack: SlackStandIn) -> None:
    """A message that creates no task is answered, and nothing is posted in the channel."""
    (answer,) = _run(bot, "ask hello there")
    assert answer["text"].startswith("*Lexi:* I'm Lexi") and "needs approval" not in answer["text"]
    assert slack.messages(CHANNEL) == []


def _conversations(sandbox: Sandbox) -> list[str | None]:
    """The conversation id each chat request continued (None: a new conversation)."""
    return [call.body["context"].get("conversation_id") for call in sandbox.calls_to("POST", "/v1/lexi/chat")]


def test_follow_up_asks_continue_the_conversation_and_new_starts_another(bot: BotHarness, sandbox: Sandbox) -> None:
    """Asks continue the asker's conversation; `--new` starts another; other people have their own."""
    first = _run(bot, "ask hello")[0]["text"]
    assert "(message 1 in this conversation)" in first
    assert "(message 2 in this conversation)" in _run(bot, "ask and again")[0]["text"]
    assert "(message 1 in this conversation)" in _run(bot, "ask --new start over")[0]["text"]
    assert "(message 2 in this conversation)" in _run(bot, "ask go on")[0]["text"]
    assert "(message 1 in this conversation)" in _run(bot, "ask hi", user="UBOB")[0]["text"]
    first_id, second_id, new_id, third_id, bob_id = _conversations(sandbox)
    assert first_id is None and new_id is None and bob_id is None
    assert second_id is not None and third_id is not None and second_id != third_id
    assert bot.store.conversation_for("UALICE", CHANNEL) == third_id


def test_conversation_survives_a_restart(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """The conversation id lives in the database: after a restart the next ask continues it."""
    first = start_bot(sandbox, slack, database_url)
    try:
        _run(first, "ask hello")
    finally:
        first.close()
    second = start_bot(sandbox, slack, database_url)
    try:
        assert "(message 2 in this conversation)" in _run(second, "ask still there?")[0]["text"]
    finally:
        second.close()
    opened, continued = _conversations(sandbox)
    assert opened is None and continued is not None


def test_out_of_credits_gets_a_clear_answer_and_no_retry(bot: BotHarness, sandbox: Sandbox) -> None:
    """A 402 insufficient_credits is explained; chat is called once (it costs credits), nothing is stored."""
    sandbox.credits = 0
    (answer,) = _run(bot, "ask find CFOs in Germany")
    assert answer["text"] == (
        "LeadLex has no credits left for Lexi. Add credits to the LeadLex workspace, then ask again."
    )
    assert len(sandbox.calls_to("POST", "/v1/lexi/chat")) == 1
    assert bot.store.conversation_for("UALICE", CHANNEL) is None


def test_chat_failure_is_not_retried_and_says_the_message_may_have_arrived(bot: BotHarness, sandbox: Sandbox) -> None:
    """A 503 from chat is not retried; the person is told to check before asking again."""
    sandbox.fail_next("POST", "/v1/lexi/chat", status=503, times=4)
    (answer,) = _run(bot, "ask find CFOs")
    assert len(sandbox.calls_to("POST", "/v1/lexi/chat")) == 1
    assert answer["text"].startswith("Lexi did not answer in time.")


def test_leadlex_errors_become_plain_sentences(bot: BotHarness, sandbox: Sandbox) -> None:
    """A LeadLex outage or a refused key during /lexi tasks is told in words, never a traceback or silence."""
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=503, times=4)
    (outage,) = _run(bot, "tasks")
    assert outage["text"] == "LeadLex is not answering right now. Try again in a minute."
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=401)
    (refused,) = _run(bot, "tasks")
    assert refused["text"] == "LeadLex refused the bot's API key. Ask an admin to update LEXI_API_KEY."


def test_status_reports_poll_pending_budget_mode_and_database(
    bot: BotHarness, sandbox: Sandbox, database_url: str
) -> None:
    """`/lexi status` names the last poll, pending count, calls left today, the mode and the database."""
    (before,) = _run(bot, "status")
    assert "Last successful poll: none yet" in before["text"]
    sandbox.add_task("prospect_search", "Find CTOs")
    bot.poll()
    (answer,) = _run(bot, "status")
    text = answer["text"]
    remaining = bot.runtime.lexi.budget.remaining
    assert "• Last successful poll: just now" in text and "• Pending tasks: 1" in text
    assert f"• LeadLex calls left today: {remaining:,} of {sandbox.daily_limit:,}" in text
    assert "• Slack connection: HTTP" in text
    kind = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    assert f"• Database: {kind}" in text


@pytest.mark.parametrize(
    "text", ["tasks", pytest.param("ask find CFOs in Germany", marks=pytest.mark.slow), "approve {task_id}"]
)
def test_commands_are_acknowledged_before_slow_leadlex_answers(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, text: str
) -> None:
    """With LeadLex taking 2 s, Slack gets "Working on it…" while no answer has been sent yet."""
    task_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    bot.poll()
    sandbox.latency = 2.0
    try:
        response = bot.command(text.format(task_id=task_id))
        assert response.json()["text"] == "Working on it…"
        assert slack.responses == []  # the answer needs LeadLex, which has not answered yet
        bot.settle(timeout=30)
    finally:
        sandbox.latency = 0.0
    assert len(slack.responses) == 1
