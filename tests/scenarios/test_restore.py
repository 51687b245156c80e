"""Issue 6: a lost SQLite file (an ephemeral disk) never re-announces tasks that already have a card."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.models import Task
from bot.slack import blocks
from tests.support.harness import CHANNEL, start_bot


def test_lost_database_is_rebuilt_from_the_cards_in_the_channel(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """After the database is lost, no card is posted twice, decisions keep their author, and work goes on."""
    approved = sandbox.add_task("campaign_start", "Start campaign 'Q1 Fintech'", {"contact_count": 150})["id"]
    dashboard = sandbox.add_task("list_operation", "Merge the two CFO lists", {"record_count": 310})["id"]
    waiting = sandbox.add_task("prospect_search", "Find VPs of Sales in Berlin", {"per_page": 25})["id"]
    first = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'lost.db'}")
    try:
        first.poll()
        first.click(blocks.APPROVE_ACTION, approved, user="UALICE")
        first.settle()
        sandbox.set_status(dashboard, "dismissed")
        first.poll()
    finally:
        first.close()
    (tmp_path / "lost.db").unlink()  # the ephemeral disk is gone
    posts_before = len(slack.calls_to("chat.postMessage"))

    second = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'new.db'}")
    try:
        second.poll()
        second.poll()
        assert len(slack.calls_to("chat.postMessage")) == posts_before  # nothing announced again
        assert second.store.get(approved).state == "approved" and second.store.get(approved).actor == "UALICE"
        assert second.store.get(dashboard).state == "dismissed"
        # The card still waiting works as before, with its content intact.
        second.click(blocks.APPROVE_ACTION, waiting, user="UBOB")
        second.settle()
        assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{waiting}/approve")) == 1
        card = json.dumps(slack.message(CHANNEL, second.store.get(waiting).message_ts).blocks)
        assert "Approved by <@UBOB>" in card and "VPs of Sales in Berlin" in card
        # A decision from before the loss completes with its author and content.
        sandbox.complete(approved)
        second.poll()
        row = second.store.get(approved)
        card = json.dumps(slack.message(CHANNEL, row.message_ts).blocks)
        assert row.state == "completed" and "<@UALICE>" in card and "Q1 Fintech" in card
    finally:
        second.close()


def _card_metadata(**payload: Any) -> dict[str, Any]:
    """Message metadata shaped like the bot's cards (what anyone can attach to a message they post)."""
    return {"event_type": blocks.METADATA_EVENT, "event_payload": payload}


@pytest.mark.parametrize(
    "poster",
    [
        {"user": "UCAROL"},  # a person in the channel
        {"user": "UOTHERBOT", "bot_id": "B0OTHER"},  # another app's bot user
        {"user": "", "bot_id": "B0OTHER"},  # another app's legacy bot message (no user at all)
    ],
    ids=["person", "other-app", "legacy-bot"],
)
def test_restoring_believes_only_the_bots_own_cards(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture, poster: dict[str, str]
) -> None:
    """A card forged by someone else is ignored and a genuine card with a malformed field is skipped, logged."""
    target = sandbox.add_task(description="Find CFOs in Lisbon")["id"]
    other = sandbox.add_task(description="Find CTOs in Porto")["id"]
    first = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'lost.db'}")
    try:
        first.poll()
        genuine = {task: first.store.get(task).message_ts for task in (target, other)}
    finally:
        first.close()
    (tmp_path / "lost.db").unlink()
    # Newer than the genuine cards, so they are read first: a forgery that marks the pending task dismissed…
    slack.add_message(
        CHANNEL,
        "Dismissed",
        metadata=_card_metadata(task_id=target, state="dismissed", actor="<!channel> evil"),
        **poster,
    )
    # …and cards posted by the bot itself (an older or buggy version) whose fields are not what the bot writes.
    for bad in (
        {"task_id": other, "state": "approved", "actor": "<!here> someone"},
        {"task_id": other, "state": "exploded"},
        {"task_id": f"{other}/../x", "state": "dismissed"},
        {"task_id": ["a", "list"]},
    ):
        slack.add_message(CHANNEL, "card", user=slack.bot_user_id, metadata=_card_metadata(**bad))
    # A genuine card of a task an auto-approval rule approved names the rule, not a person: it is believed.
    ruled = sandbox.add_task(description="Find COOs in Faro", status="approved")["id"]
    slack.add_message(
        CHANNEL,
        "card",
        user=slack.bot_user_id,
        metadata=_card_metadata(task_id=ruled, state="approved", actor="rule:small searches"),
    )
    posts_before = len(slack.calls_to("chat.postMessage"))

    caplog.set_level(logging.WARNING, logger="bot")
    second = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'new.db'}")
    try:
        second.poll()
        second.poll()
        for task in (target, other):  # both rebuilt from their genuine cards, still waiting, nothing re-posted
            row = second.store.get(task)
            assert (row.state, row.actor, row.message_ts) == ("pending", None, genuine[task])
        assert len(slack.calls_to("chat.postMessage")) == posts_before
        assert second.store.get(f"{other}/../x") is None
        assert (second.store.get(ruled).state, second.store.get(ruled).actor) == ("approved", "rule:small searches")
        assert not [e for e in second.store.audit_events() if "evil" in str(e["actor"]) or "here" in str(e["actor"])]
        skipped = [r.getMessage() for r in caplog.records if "skipped a card" in r.getMessage()]
        assert len(skipped) == 4 and any("'exploded'" in line for line in skipped), skipped
        # The task the forgery claimed is still decided through its card's buttons.
        card = slack.message(CHANNEL, genuine[target])
        assert blocks.APPROVE_ACTION in json.dumps(card.blocks)
        second.click(blocks.APPROVE_ACTION, target, user="UBOB")
        second.settle()
        assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{target}/approve")) == 1
        assert sandbox.task(target)["status"] != "dismissed"
    finally:
        second.close()


def test_recovery_never_takes_someone_elses_message_for_a_card(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """After a crash between claim and post, a message by someone else with the task's metadata is not the card."""
    task = Task.from_api(sandbox.add_task(description="Find CMOs in Braga"))
    assert task is not None
    url = f"sqlite:///{tmp_path / 'crashed.db'}"
    crashed = Store.from_url(url)
    try:
        migrate.upgrade(crashed.engine)
        assert crashed.claim_announcement(task, CHANNEL)  # the process died before posting
    finally:
        crashed.close()
    forged = slack.add_message(CHANNEL, "Approved", user="UCAROL", metadata=_card_metadata(task_id=task.id))
    bot = start_bot(sandbox, slack, url, claim_timeout=timedelta(0))
    try:
        bot.poll()
        row = bot.store.get(task.id)
        assert row.message_ts is not None and row.message_ts != forged.ts
        card = slack.message(CHANNEL, row.message_ts)
        assert card.user == slack.bot_user_id and "Braga" in json.dumps(card.blocks)
    finally:
        bot.close()


def test_restore_waits_until_slack_says_who_the_bot_is(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """When auth.test fails, the restarted bot neither restores nor re-announces; the next poll restores."""
    task_id = sandbox.add_task(description="Find CIOs in Leiria")["id"]
    first = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'lost.db'}")
    try:
        first.poll()
        card_ts = first.store.get(task_id).message_ts
    finally:
        first.close()
    (tmp_path / "lost.db").unlink()
    posts_before = len(slack.calls_to("chat.postMessage"))
    slack.fail_next("auth.test", "internal_error")
    second = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'new.db'}")
    try:
        second.poll()
        assert second.store.get(task_id) is None and len(slack.calls_to("chat.postMessage")) == posts_before
        second.poll()
        assert second.store.get(task_id).message_ts == card_ts
        assert len(slack.calls_to("chat.postMessage")) == posts_before
    finally:
        second.close()


def test_a_channel_slack_could_not_read_is_restored_later_not_announced_again(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """When Slack fails to list a channel's history during a restore, the restore is retried; no card posts twice."""
    first_task = sandbox.add_task(description="Find CFOs in Lisbon")["id"]
    second_task = sandbox.add_task(description="Find CTOs in Porto")["id"]
    first = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'lost.db'}")
    try:
        first.poll()
    finally:
        first.close()
    (tmp_path / "lost.db").unlink()
    posts_before = len(slack.calls_to("chat.postMessage"))

    second = start_bot(sandbox, slack, f"sqlite:///{tmp_path / 'new.db'}")
    try:
        slack.fail_next("conversations.history", "internal_error")
        second.poll()  # the restore cannot read the channel: this cycle announces nothing
        second.poll()  # the restore is tried again and succeeds
        second.poll()
        assert len(slack.calls_to("chat.postMessage")) == posts_before
        assert second.store.get(first_task).state == "pending"
        assert second.store.get(second_task).state == "pending"
    finally:
        second.close()
