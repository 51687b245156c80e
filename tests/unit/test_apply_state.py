"""Applying LeadLex's state in-process, with a real Store on SQLite and in-memory LeadLex and Slack.

Covered: the one function (bot.core.apply), the reconciler's use of it after a poll, and the webhook receiver's
apply step.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.apply import StateApplier
from bot.core.decisions import Decider
from bot.core.reconciler import Reconciler
from bot.core.webhooks import WebhookReceiver
from bot.db.store import Store
from bot.lexi.models import Task
from tests.unit.fakes import FakeAnnouncer, FakeLeadLex, FakeMessenger, announced, sqlite_store

Parts = tuple[Store, FakeLeadLex, FakeMessenger]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    """A fresh store with fake LeadLex and Slack."""
    with sqlite_store(tmp_path) as store:
        yield store, FakeLeadLex(), FakeMessenger(store)


def test_apply_moves_only_from_the_given_states(parts: Parts) -> None:
    """A state is recorded only from `from_states`: otherwise nothing changes and Slack is not touched."""
    store, lexi, messenger = parts
    announced(store, lexi, "t1")
    applier = StateApplier(store, messenger)  # type: ignore[arg-type]
    assert applier.apply("t1", "completed", from_states=("approved",)) is None
    assert store.get("t1").state == "pending" and messenger.cards == [] and messenger.replies == []
    changed = applier.apply("t1", "completed", from_states=("pending",))
    assert changed is not None and changed.state == "completed"
    assert messenger.cards == [("t1", "completed")] and messenger.replies == [("t1", "completed")]


def test_apply_runs_slack_jobs_where_it_is_told(parts: Parts) -> None:
    """With a queue, the card update and the thread reply go to it under their keys, in that order."""
    store, lexi, messenger = parts
    announced(store, lexi, "t1")
    queued: list[str] = []
    applier = StateApplier(store, messenger, later=lambda key, _job, *_args: queued.append(key))  # type: ignore[arg-type]
    applier.apply("t1", "failed", from_states=("pending",))
    assert queued == ["card:t1", "reply:t1"] and messenger.cards == []


def _reconciler(store: Store, lexi: FakeLeadLex, messenger: FakeMessenger) -> tuple[Reconciler, FakeAnnouncer]:
    """A reconciler doing its Slack jobs at once (no cards queue)."""
    announcer = FakeAnnouncer()
    decider = Decider(store, lexi, messenger)  # type: ignore[arg-type]
    return Reconciler(store, lexi, messenger, announcer, decider, clock=lambda: 1_000_000.0), announcer  # type: ignore[arg-type]


def test_reconciler_follows_records_to_leadlex_state_but_never_a_decision_in_progress(parts: Parts) -> None:
    """A poll: new pending tasks are queued for announcing, records follow LeadLex, a claim in Slack is left alone."""
    store, lexi, messenger = parts
    announced(store, lexi, "dismissed-there", status="dismissed")
    announced(store, lexi, "gone")
    del lexi.tasks["gone"]
    announced(store, lexi, "clicked", status="approved")
    assert store.claim_decision("clicked", actor="UALICE", action="approve", surface="button")[0]
    lexi.add("new")
    reconciler, announcer = _reconciler(store, lexi, messenger)
    reconciler.full()
    assert announcer.queued == ["new"]
    assert store.get("dismissed-there").state == "dismissed" and store.get("gone").state == "gone"
    assert store.get("clicked").state == "deciding"  # the click records its own outcome, with who decided


def test_reconciler_follows_approved_tasks_to_completion_with_one_reply(parts: Parts) -> None:
    """An approved task that completed in LeadLex: the card says so and its thread reply is posted once."""
    store, lexi, messenger = parts
    announced(store, lexi, "t1")
    store.apply_lexi_state("t1", "approved", from_states=("pending",))
    lexi.set_status("t1", "completed")
    reconciler, _announcer = _reconciler(store, lexi, messenger)
    reconciler.sync()
    reconciler.sync()
    assert store.get("t1").state == "completed"
    assert messenger.replies == [("t1", "completed")] and ("t1", "completed") in messenger.cards


def _receiver(store: Store, messenger: FakeMessenger) -> WebhookReceiver:
    """A webhook receiver whose deliveries are applied at once."""
    return WebhookReceiver(
        "secret",
        store,
        FakeAnnouncer(),
        messenger,  # type: ignore[arg-type]
        submit=lambda fn, *args: fn(*args),
        clock=lambda: datetime.now(UTC),
    )


def test_webhook_apply_moves_forwards_in_signed_order_only(parts: Parts) -> None:
    """The receiver's apply step: a delivery moves the record forwards, or changes nothing when it should.

    A delivery signed before the content it holds, or one about a decision in progress in Slack, changes nothing.
    """
    store, lexi, messenger = parts
    announced(store, lexi, "t1")
    announced(store, lexi, "t2")
    receiver = _receiver(store, messenger)
    now = datetime.now(UTC)
    receiver.apply("task.approved", Task(id="t1", status="approved"), now)
    assert store.get("t1").state == "approved" and messenger.cards == [("t1", "approved")]
    receiver.apply("task.updated", Task(id="t1", status="completed"), now - timedelta(seconds=5))  # older
    assert store.get("t1").state == "approved" and messenger.replies == []
    receiver.apply("task.updated", Task(id="t1", status="completed"), now + timedelta(seconds=1))
    assert store.get("t1").state == "completed" and messenger.replies == [("t1", "completed")]
    assert store.claim_decision("t2", actor="UBOB", action="dismiss", surface="button")[0]
    receiver.apply("task.approved", Task(id="t2", status="approved"), now)
    assert store.get("t2").state == "deciding"
