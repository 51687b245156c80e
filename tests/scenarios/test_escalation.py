"""Issue 16: escalation — a task nobody decided in time goes to `escalate_to`, who may then decide it.

The bot runs over HTTP against the Slack stand-in and the LeadLex sandbox, with a reminder clock the test moves;
clicks are signed block_actions from the card they are on (the channel's, or an escalation person's DM).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.core.escalations import RESUME_WINDOW, Escalations
from bot.core.policy import PolicyError, describe, parse_policy
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.cards import card_text, cards_in, click_card, has_buttons
from tests.support.harness import CHANNEL, BotHarness, start_bot

#: Alice approves; prospect searches go to Bob and the S0LEADS group (Carol, and the bot itself) after 2 h;
#: list operations to Bob when their last reminder is due (1 h, 3 h: at 3 h). Dave is nobody.
POLICY = """\
defaults:
  approvers: [UALICE]
types:
  prospect_search:
    escalate_to: [UBOB, S0LEADS]
    escalate_after: 2h
  list_operation:
    remind_after: 1h
    remind_max: 2
    escalate_to: [UBOB]
"""
HOUR = 3600.0
BOB_DM, CAROL_DM = "DBOB", "DCAROL"  # the stand-in's DM ids: D + the user id without its U


@pytest.fixture
def timed(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> Iterator[tuple[BotHarness, list[float]]]:
    """A bot with the policy above whose reminder (and escalation) clock the test moves."""
    slack.set_usergroup("S0LEADS", ["UCAROL", slack.bot_user_id])
    path = tmp_path / "lexi-bot.yml"
    path.write_text(POLICY)
    harness = start_bot(sandbox, slack, database_url, LEXI_POLICY_FILE=str(path))
    now = [time.time()]
    assert harness.runtime.poller.reminders is not None
    harness.runtime.poller.reminders.clock = lambda: now[0]
    try:
        yield harness, now
    finally:
        harness.close()


def _announce(bot: BotHarness, sandbox: Sandbox, task_type: str = "prospect_search") -> tuple[str, float]:
    """Add a task to LeadLex, poll it into a card, and return its id and when it was announced."""
    task_id = sandbox.add_task(task_type, "Find CFOs in fintech")["id"]
    bot.poll()
    row = bot.store.get(task_id)
    assert row is not None and row.state == "pending"
    return task_id, row.announced_at.timestamp()


def _at(bot: BotHarness, now: list[float], when: float) -> None:
    """Move the clock to `when` and run a poll cycle."""
    now[0] = when
    bot.poll()


def _thread(bot: BotHarness, slack: SlackStandIn, task_id: str) -> list[str]:
    """The texts of the replies under a task's channel card."""
    ts = bot.store.get(task_id).message_ts
    return [m.text for m in slack.replies(CHANNEL, ts) if m.ts != ts]


def _escalations(bot: BotHarness, task_id: str) -> list[str | None]:
    """The details of the task's "escalated" audit events."""
    return [e["detail"] for e in bot.store.audit_events() if e["task_id"] == task_id and e["event"] == "escalated"]


def _said(slack: SlackStandIn, user: str) -> str:
    """Everything said privately to `user` (ephemerals) or through response URLs, as one string."""
    ephemerals = [e.text for e in slack.ephemerals_for(user)]
    return json.dumps([ephemerals, [r.body for r in slack.responses]], ensure_ascii=False)


def _decisions(sandbox: Sandbox, task_id: str) -> int:
    """How many approve or dismiss requests LeadLex received for a task."""
    return sum(len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/{verb}")) for verb in ("approve", "dismiss"))


def test_a_task_is_escalated_at_its_age_once_with_a_dm_card_each_a_thread_note_and_an_audit_row(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Before 2 h nothing; at 2 h Bob and Carol (not the bot) get the card, the thread says so, the audit records it."""
    bot, now = timed
    task_id, start = _announce(bot, sandbox)
    _at(bot, now, start + 1.9 * HOUR)
    assert cards_in(slack, BOB_DM) == [] and cards_in(slack, CAROL_DM) == []
    assert _thread(bot, slack, task_id) == [] and _escalations(bot, task_id) == []
    assert bot.store.get(task_id).escalated_at is None
    _at(bot, now, start + 2 * HOUR + 1)
    (boss,), (carl,) = cards_in(slack, BOB_DM), cards_in(slack, CAROL_DM)
    assert has_buttons(boss) and has_buttons(carl)
    assert [(c.channel, c.kind) for c in bot.store.copies(task_id)] == [(BOB_DM, "dm"), (CAROL_DM, "dm")]
    assert _thread(bot, slack, task_id) == [
        "⏫ Escalated to <@UBOB>, <@UCAROL> after 2h: nobody decided. They may now approve or dismiss it."
    ]
    assert _escalations(bot, task_id) == ["to UBOB, S0LEADS after 2h"]
    assert bot.store.get(task_id).escalated_at is not None
    _at(bot, now, start + 5 * HOUR)  # later cycles escalate nothing again
    assert len(cards_in(slack, BOB_DM)) == 1 and len(cards_in(slack, CAROL_DM)) == 1
    assert len(_thread(bot, slack, task_id)) == 1 and len(_escalations(bot, task_id)) == 1


def test_an_escalation_person_approves_from_their_dm_and_every_card_shows_it(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Carol (through S0LEADS) approves in her DM: one LeadLex call; the channel card and both DMs say so."""
    bot, now = timed
    task_id, start = _announce(bot, sandbox)
    _at(bot, now, start + 2 * HOUR + 1)
    (carl,) = cards_in(slack, CAROL_DM)
    assert click_card(bot, carl, "UCAROL").status_code == 200
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    assert _decisions(sandbox, task_id) == 1
    row = bot.store.get(task_id)
    cards = [slack.message(CHANNEL, row.message_ts), *cards_in(slack, BOB_DM), *cards_in(slack, CAROL_DM)]
    assert len(cards) == 3
    for card in cards:
        assert "Approved by <@UCAROL>" in card_text(card) and not has_buttons(card), card
    assert all(c.rendered_version == row.version for c in bot.store.copies(task_id))


def test_escalation_people_may_not_decide_before_the_escalation_and_others_never(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Bob is refused before 2 h (button and command); after it Dave still is, told who may; Bob's command works."""
    bot, now = timed
    task_id, start = _announce(bot, sandbox)
    channel_card = slack.message(CHANNEL, bot.store.get(task_id).message_ts)
    assert channel_card is not None
    assert click_card(bot, channel_card, "UBOB").status_code == 200
    assert bot.command(f"approve {task_id}", user="UBOB").status_code == 200
    bot.settle()
    assert _decisions(sandbox, task_id) == 0 and bot.store.get(task_id).state == "pending"
    assert _said(slack, "UBOB").count("Only <@UALICE> can approve prospect search tasks") == 2
    _at(bot, now, start + 2 * HOUR + 1)
    assert click_card(bot, channel_card, "UDAVE").status_code == 200
    bot.settle()
    assert _decisions(sandbox, task_id) == 0 and bot.store.get(task_id).state == "pending"
    assert (
        "Only <@UALICE> (and, since this one was escalated, <@UBOB>, members of <!subteam^S0LEADS>) "
        "can approve this prospect search task" in _said(slack, "UDAVE")
    )
    assert bot.command(f"approve {task_id}", user="UBOB").status_code == 200
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved" and _decisions(sandbox, task_id) == 1
    assert "Approved by <@UBOB>" in card_text(slack.message(CHANNEL, channel_card.ts))


def test_an_escalated_task_has_buttons_for_the_escalation_people_in_lexi_tasks(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """`/lexi tasks` shows Bob no buttons on the task before its escalation, and Approve / Dismiss after it."""
    bot, now = timed
    task_id, start = _announce(bot, sandbox)

    def buttons() -> set[str]:
        """The task ids Bob's `/lexi tasks` answer has buttons for."""
        before = len(slack.responses)
        assert bot.command("tasks", user="UBOB").status_code == 200
        bot.settle()
        answers = [r.body for r in slack.responses[before:]]
        return {b["elements"][0]["value"] for a in answers for b in a.get("blocks", []) if b["type"] == "actions"}

    assert task_id not in buttons()
    _at(bot, now, start + 2 * HOUR + 1)
    assert task_id in buttons()


def test_two_processes_escalate_a_task_once(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """Two escalation runs on one database at the same moment: one audit row, one note, one card per person."""
    bot, _now = timed
    task_id, start = _announce(bot, sandbox)
    runtime = bot.runtime
    other = Store.from_url(database_url)  # a second process's own connections to the same database
    try:
        runs = [
            Escalations(runtime.policy, store, runtime.messenger, runtime.decider.approvers)
            for store in (bot.store, other)
        ]
        barrier = threading.Barrier(len(runs))
        counts: list[int] = []

        def run(escalations: Escalations) -> None:
            """Start together, then escalate."""
            barrier.wait(timeout=10)
            counts.append(escalations.run(start + 3 * HOUR))

        threads = [threading.Thread(target=run, args=(escalations,)) for escalations in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(counts) == [0, 1]
        assert len(_escalations(bot, task_id)) == 1
        assert len(_thread(bot, slack, task_id)) == 1
        assert len(cards_in(slack, BOB_DM)) == 1 and len(cards_in(slack, CAROL_DM)) == 1
        assert runs[0].run(start + 4 * HOUR) == 0 and runs[1].run(start + 4 * HOUR) == 0
        assert other.escalate(task_id, ("UBOB",), "2h") is None  # the conditional UPDATE takes it once, whoever asks
    finally:
        other.close()


def test_without_escalate_after_a_task_is_escalated_when_its_last_reminder_is_due(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A list operation (reminders at 1 h and 3 h) is reminded at 1 h and escalated to Bob with the 3 h reminder."""
    bot, now = timed
    task_id, start = _announce(bot, sandbox, "list_operation")
    _at(bot, now, start + 2.5 * HOUR)
    assert len(_thread(bot, slack, task_id)) == 1 and _escalations(bot, task_id) == []
    assert cards_in(slack, BOB_DM) == []
    _at(bot, now, start + 3 * HOUR + 1)
    texts = _thread(bot, slack, task_id)
    assert len(texts) == 3 and "Still waiting" in texts[1], texts
    assert texts[2].startswith("⏫ Escalated to <@UBOB> after 3h: nobody decided.")
    assert _escalations(bot, task_id) == ["to UBOB after 3h"]
    assert len(cards_in(slack, BOB_DM)) == 1 and cards_in(slack, CAROL_DM) == []


def test_a_task_decided_before_its_age_is_never_escalated(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Alice approves at 1 h: at 2 h and later nobody gets its card, and nothing is recorded or said."""
    bot, now = timed
    task_id, start = _announce(bot, sandbox)
    _at(bot, now, start + HOUR)
    assert bot.click(blocks.APPROVE_ACTION, task_id, user="UALICE").status_code == 200
    bot.settle()
    assert sandbox.task(task_id)["status"] == "approved"
    for hours in (2.1, 6.0):
        _at(bot, now, start + hours * HOUR)
    assert cards_in(slack, BOB_DM) == [] and cards_in(slack, CAROL_DM) == []
    assert _escalations(bot, task_id) == [] and bot.store.get(task_id).escalated_at is None
    assert not any("Escalated" in text for text in _thread(bot, slack, task_id))
    assert bot.store.escalate(task_id, ("UBOB",), "2h") is None  # the conditional UPDATE refuses a decided task


def _problems(text: str) -> list[str]:
    """The problems a policy text is refused with."""
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "lexi-bot.yml", channel="C0LEXI")
    return refused.value.problems


def test_escalation_policy_mistakes_are_refused_with_their_line() -> None:
    """No time to escalate at, a time with nobody, channel_members and a malformed id: each named on its line."""
    (when,) = _problems("defaults:\n  approvers: [UALICE]\n  escalate_to: [UBOB]\n")
    assert when == (
        "lexi-bot.yml line 3: defaults escalates to UBOB but says not when: set defaults.escalate_after "
        "(such as 4h), or remind_after (it is then escalated when the last reminder is due)"
    )
    (nobody,) = _problems("types:\n  prospect_search:\n    escalate_after: 2h\n")
    assert nobody == (
        "lexi-bot.yml line 3: types.prospect_search.escalate_after needs types.prospect_search.escalate_to, "
        "who to escalate to"
    )
    (members,) = _problems("defaults:\n  escalate_after: 1h\n  escalate_to: channel_members\n")
    assert members.startswith("lexi-bot.yml line 3: defaults.escalate_to names the people to send the card to")
    (bad,) = _problems("defaults:\n  escalate_after: 1h\n  escalate_to: [UBOB, boss]\n")
    assert bad.startswith("lexi-bot.yml line 3: 'boss' in defaults.escalate_to is not a user ID")
    (no_reminders,) = _problems(
        "defaults:\n  remind_after: 1h\n  escalate_to: [UBOB]\ntypes:\n  list_operation:\n    remind_max: 0\n"
    )
    assert no_reminders.startswith("lexi-bot.yml line 6: types.list_operation escalates to UBOB but says not when")


def test_policy_check_describes_each_escalation() -> None:
    """`lexi-bot policy check` says who each type is escalated to and after how long (and why that long)."""
    lines = describe(parse_policy(POLICY, "lexi-bot.yml", channel="C0LEXI"))
    search = next(line for line in lines if line.startswith("prospect_search:"))
    lists = next(line for line in lines if line.startswith("list_operation:"))
    assert "escalated to UBOB, S0LEADS after 2h, who may then decide it" in search
    assert "escalated to UBOB after 3h (when the last reminder is due), who may then decide it" in lists
    assert "escalated" not in next(line for line in lines if line.startswith("campaign_start:"))


def test_an_escalation_whose_process_died_before_its_cards_is_finished_by_the_next_cycle(
    timed: tuple[BotHarness, list[float]], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A process took the escalation (recorded, audited) and died before any DM: the next cycle sends the cards.

    Each person gets one card, whatever the number of cycles after; an escalation older than the resume window is
    left as it is.
    """
    bot, now = timed
    task_id, start = _announce(bot, sandbox)
    late, _ = _announce(bot, sandbox, "prospect_search")
    taken_at = datetime.fromtimestamp(start + 2 * HOUR, UTC)
    assert bot.store.escalate(task_id, ("UBOB", "S0LEADS"), "2h", at=taken_at) is not None  # ... and it died
    stale_at = datetime.fromtimestamp(start + 2 * HOUR - RESUME_WINDOW - 60, UTC)
    assert bot.store.escalate(late, ("UBOB", "S0LEADS"), "2h", at=stale_at) is not None
    _at(bot, now, start + 2 * HOUR + 30)
    _at(bot, now, start + 2 * HOUR + 60)
    cards = {dm: [c.metadata["event_payload"]["task_id"] for c in cards_in(slack, dm)] for dm in (BOB_DM, CAROL_DM)}
    assert cards == {BOB_DM: [task_id], CAROL_DM: [task_id]}
    assert len(_escalations(bot, task_id)) == 1
