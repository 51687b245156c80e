"""The decider in-process: a real Store on SQLite, LeadLex and Slack as in-memory fakes (no HTTP)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

from bot.core.decisions import EXPIRY_ACTOR, Decider, Outcome
from bot.core.keeper import NotRecorded
from bot.db.store import Store
from bot.errors import RateLimited
from tests.unit.fakes import FakeLeadLex, FakeMessenger, announced, sqlite_store


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Store, FakeLeadLex, FakeMessenger, Decider]]:
    """A decider over a fresh store, with fake LeadLex and Slack."""
    with sqlite_store(tmp_path) as store:
        lexi, messenger = FakeLeadLex(), FakeMessenger(store)
        yield store, lexi, messenger, Decider(store, lexi, messenger)  # type: ignore[arg-type]


def _approve(decider: Decider, task_id: str, user: str) -> tuple[Outcome, list[str]]:
    """Approve by button for `user`; the outcome and what they were told."""
    told: list[str] = []
    outcome = decider.decide(task_id, action="approve", user=user, surface="button", tell=told.append)
    return outcome, told


def _events(store: Store, task_id: str) -> list[tuple[str, str | None, str | None]]:
    """The audit trail of one task: (event, actor, detail)."""
    return [(e["event"], e["actor"], e["detail"]) for e in store.audit_events() if e["task_id"] == task_id]


def test_one_leadlex_call_per_decision_however_many_decide(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """Eight people approving at once: LeadLex gets one call, one person decided, the others are told who did."""
    store, lexi, _messenger, decider = parts
    announced(store, lexi, "t1")
    results: list[tuple[Outcome, list[str]]] = []
    threads = [threading.Thread(target=lambda u=f"U{i}": results.append(_approve(decider, "t1", u))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lexi.calls == [("approve", "t1", None)]
    assert sum(outcome.decided for outcome, _ in results) == 1
    row = store.get("t1")
    assert row.state == "approved"
    losers = [told[-1] for outcome, told in results if not outcome.decided]
    assert len(losers) == 7 and all(f"<@{row.actor}>" in text for text in losers)
    _outcome, told = _approve(decider, "t1", "ULATE")
    assert told == [f"This task was already approved by <@{row.actor}>."] and len(lexi.calls) == 1


def test_a_click_is_claimed_in_the_write_that_journals_it(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """The journal entry claims the task (pending → deciding) before Slack is acknowledged.

    Carrying it out goes straight to LeadLex. A second click journals without claiming, and is told who decided.
    """
    store, lexi, _messenger, decider = parts
    announced(store, lexi, "t1")
    decision = decider.accept("t1", action="approve", user="UALICE", surface="button")
    assert decision.stage == "claimed" and store.get("t1").state == "deciding" and lexi.calls == []
    second = decider.accept("t1", action="approve", user="UBOB", surface="button")
    assert second.stage == "accepted" and second.claimed is None
    told: list[str] = []
    assert decider.carry(decision, told.append).decided
    assert decider.carry(second, told.append).decided is False
    assert lexi.calls == [("approve", "t1", None)]
    assert store.get("t1").state == "approved" and told == ["This task was already approved by <@UALICE>."]
    started = [e for e in _events(store, "t1") if e[0] == "decision_started"]
    assert started == [("decision_started", "UALICE", "approve")]


def test_not_pending_answer_is_resolved_to_the_real_state(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """LeadLex refuses because the task was dismissed there: the record and card say dismissed, not approved."""
    store, lexi, messenger, decider = parts
    announced(store, lexi, "t1", status="dismissed")
    outcome, told = _approve(decider, "t1", "UALICE")
    assert not outcome.decided and outcome.state == "dismissed"
    assert told == ["This task was already dismissed in LeadLex; its card now says so."]
    row = store.get("t1")
    assert row.state == "dismissed" and row.actor is None and row.surface == "leadlex"
    assert messenger.cards[-1] == ("t1", "dismissed") and messenger.replies == []


def test_not_pending_answer_of_a_completed_task_posts_its_thread_reply(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """Approved and already completed in LeadLex: the card says completed and the one thread reply is posted."""
    store, lexi, messenger, decider = parts
    announced(store, lexi, "t1", status="completed")
    outcome, _told = _approve(decider, "t1", "UALICE")
    assert outcome.state == "completed" and store.get("t1").state == "completed"
    assert messenger.replies == [("t1", "completed")]


def test_expiry_dismisses_through_the_decider_with_one_call(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """An expiry that dismisses is a journaled, claimed decision: one LeadLex call, the card says expired."""
    store, lexi, messenger, decider = parts
    announced(store, lexi, "t1")
    outcome = decider.expire("t1", "1d", dismiss=True)
    assert outcome.decided and outcome.state == "expired"
    assert lexi.calls == [("dismiss", "t1", "not_relevant: expired — not decided within 1d")]
    row = store.get("t1")
    assert row.state == "expired" and row.actor is None and row.action is None
    assert row.note == "Nobody decided within 1d. It was dismissed in LeadLex."
    assert messenger.cards[-1] == ("t1", "expired")
    assert [e for e in _events(store, "t1") if e[0] != "announced"] == [
        ("decision_started", EXPIRY_ACTOR, "dismiss"),
        ("leadlex_answer", "leadlex", "dismiss on expiry: ok"),
        ("expired", EXPIRY_ACTOR, "Nobody decided within 1d. It was dismissed in LeadLex."),
    ]
    assert decider.expire("t1", "1d", dismiss=True).decided is False  # already expired: no second call
    outcome, told = _approve(decider, "t1", "UALICE")
    assert not outcome.decided and told == ["This task was already expired: nobody decided it in time."]
    assert len(lexi.calls) == 1
    with store.engine.connect() as conn:  # the journal holds nothing open for anyone to resume
        assert conn.exec_driver_sql("SELECT count(*) FROM decisions WHERE stage != 'done'").scalar() == 0


def test_expiry_without_dismissal_calls_nobody(parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider]) -> None:
    """When the policy does not dismiss on expiry, LeadLex is not called; the card says expired."""
    store, lexi, messenger, decider = parts
    announced(store, lexi, "t1")
    assert decider.expire("t1", "2d").state == "expired"
    assert lexi.calls == [] and store.get("t1").note == "Nobody decided within 2d."
    assert messenger.cards[-1] == ("t1", "expired")


def test_expiry_stands_when_leadlex_fails_the_dismissal(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """LeadLex unavailable for the dismissal: the task expires all the same (one call, its answer audited)."""
    store, lexi, _messenger, decider = parts
    announced(store, lexi, "t1")
    lexi.fail["t1"] = RateLimited("slow down", status=429, code="rate_limited")
    assert decider.expire("t1", "1d", dismiss=True).state == "expired"
    assert len(lexi.calls) == 1 and store.get("t1").state == "expired"
    assert ("leadlex_answer", "leadlex", "dismiss on expiry: 429 rate_limited") in _events(store, "t1")


def test_expiry_of_a_task_approved_in_leadlex_meanwhile_shows_the_approval(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """LeadLex refuses the expiry's dismissal because someone approved the task there: the record says approved."""
    store, lexi, _messenger, decider = parts
    announced(store, lexi, "t1", status="approved")
    outcome = decider.expire("t1", "1d", dismiss=True)
    assert outcome.state == "approved" and store.get("t1").state == "approved"


def test_an_expiry_taken_over_from_a_dead_process_ends_expired(
    parts: tuple[Store, FakeLeadLex, FakeMessenger, Decider],
) -> None:
    """An expiry whose process died after its claim is resumed like any decision, and still ends "expired"."""
    store, lexi, _messenger, decider = parts
    announced(store, lexi, "t1")
    journaled = decider.accept(
        "t1",
        action="dismiss",
        user=EXPIRY_ACTOR,
        surface="rule",
        reason="not_relevant",
        note="expired — not decided within 1d",
    )
    won, _row = store.claim_decision(
        "t1",
        actor=EXPIRY_ACTOR,
        action="dismiss",
        surface="rule",
        reason="not_relevant",
        note="expired — not decided within 1d",
        decision_id=journaled.id,
    )
    assert won
    claimed = store.decision(journaled.id)
    assert claimed is not None and claimed.stage == "claimed"
    decider.carry(claimed)
    row = store.get("t1")
    assert row.state == "expired" and row.note == "Nobody decided within 1d. It was dismissed in LeadLex."
    assert lexi.calls == [("dismiss", "t1", "not_relevant: expired — not decided within 1d")]


def test_a_click_the_database_cannot_read_is_not_recorded_at_the_first_try(caplog: pytest.LogCaptureFixture) -> None:
    """Before the ack the permission read is tried once: an unreachable database is NotRecorded at once.

    Never retried into Slack's 3 s (the store's ordinary reads retry for a second, each try up to its connect timeout).
    """
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = Store.from_url(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none")
    try:
        decider = Decider(store, FakeLeadLex(), FakeMessenger(store))  # type: ignore[arg-type]
        with caplog.at_level(logging.INFO, logger="bot.db.store"):
            with pytest.raises(NotRecorded):
                decider.accept("t1", action="approve", user="UALICE", surface="button")
            assert "retrying" not in caplog.text
            with pytest.raises(SQLAlchemyError):
                store.get("t1")
            assert "retrying get" in caplog.text  # an ordinary read does retry: the test's database is unreachable
    finally:
        store.close()
