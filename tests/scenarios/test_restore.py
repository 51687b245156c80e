"""Issue 6: a lost SQLite file (an ephemeral disk) never re-announces tasks that already have a card."""

from __future__ import annotations

import json
from pathlib import Path

from bot import blocks
from bot.lexi.sandbox import Sandbox
from bot.standin.slack import SlackStandIn
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
