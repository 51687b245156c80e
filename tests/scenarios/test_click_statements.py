"""Issue 12: the SQL statements one Approve click costs, from the request to LeadLex's call and from its answer on.

The bot is CPU-bound per click on PostgreSQL, where each statement is a round trip through psycopg and SQLAlchemy:
these tests count what the real Bolt app runs (over HTTP, through the harness) and hold the count to a bound, so a
change that adds a statement to the click's path fails here rather than in a benchmark.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, event

from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, BotHarness, start_bot
from tests.support.lexi_hold import HoldingProxy

#: Bounds per database, of statements (transaction ends not counted). PostgreSQL runs each transition with what
#: goes with it as one statement (data-modifying CTEs); SQLite runs them one by one, in one transaction.
BOUNDS = {
    # From the click's request to LeadLex's approve call: the journal before the ack, the read, the claim.
    # Before issue 12's work: 6 on both (7 when the periodic sweep of expired request keys came first). SQLite: the
    # read, then the request key, the journal entry written as claimed, the claim and its event (stop 24: was 6, the
    # entry's stage was written after the claim).
    "to the call": {"postgresql": 3, "sqlite": 5},
    # Beside the call: the card's "Approving…" update, on another thread. Before: 2 (it read the record again).
    "beside the call": {"postgresql": 1, "sqlite": 1},
    # From LeadLex's answer until the card shows the outcome and the decider's Home is published. Before: 9, in 7
    # transactions (the answer's event, the outcome, the card's read and its mark, the decision's close, the Home).
    "after the answer": {"postgresql": 5, "sqlite": 7},
}


@dataclass
class Statements:
    """The statements (and transaction ends) an engine runs, with the thread that ran each; the test's own ignored."""

    engine: Engine
    ignore: int = field(default_factory=threading.get_ident)
    seen: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        """Listen to the engine."""
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)

    def close(self) -> None:
        """Stop listening."""
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)

    def take(self) -> list[tuple[str, str]]:
        """What was seen since the last take: (thread name, statement or COMMIT / ROLLBACK)."""
        with self._lock:
            seen, self.seen = self.seen, []
        return seen

    def _note(self, what: str) -> None:
        """Keep one statement, unless the test's own thread ran it."""
        if threading.get_ident() == self.ignore:
            return
        with self._lock:
            self.seen.append((threading.current_thread().name, " ".join(what.split())[:160]))

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        """before_cursor_execute."""
        self._note(statement)

    def _commit(self, _conn: Any) -> None:
        """A transaction committed."""
        self._note("COMMIT")

    def _rollback(self, _conn: Any) -> None:
        """A transaction (or a read's implicit one) rolled back."""
        self._note("ROLLBACK")


def statements_only(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The statements among what was seen (transaction ends left out)."""
    return [(thread, what) for thread, what in seen if what not in ("COMMIT", "ROLLBACK")]


def describe(label: str, seen: list[tuple[str, str]]) -> str:
    """A readable list of what was seen, for a failing assertion."""
    counts = Counter(what for _, what in seen)
    lines = [f"{label}: {len(statements_only(seen))} statements, {len(seen)} with transaction ends"]
    lines += [f"  {thread:<18} {what}" for thread, what in seen]
    lines += [f"  {n}× {what[:80]}" for what, n in counts.items() if n > 1]
    return "\n".join(lines)


@pytest.fixture
def proxied(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[tuple[BotHarness, HoldingProxy]]:
    """The bot, its LeadLex calls through a proxy that can hold the approve call."""
    proxy = HoldingProxy(sandbox.url)
    harness = start_bot(sandbox, slack, database_url, LEXI_API_URL=proxy.url)
    try:
        yield harness, proxy
    finally:
        harness.close()
        proxy.close()


def _card_says(slack: SlackStandIn, ts: str, text: str) -> bool:
    """Whether the card (read from the Slack stand-in, not the database) says `text`."""
    return text in str(slack.message(CHANNEL, ts).blocks)


def _work_idle(bot: BotHarness) -> bool:
    """Whether the general work queue (the card update beside the call) has nothing queued or running."""
    queue = bot.runtime.queues["work"]
    return queue.backlog == 0 and queue.running == 0


def test_an_approve_click_runs_few_statements(
    proxied: tuple[BotHarness, HoldingProxy], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Request → LeadLex call, beside the call, and answer → card and Home: each within its bound of statements."""
    bot, proxy = proxied
    first, task_id = (sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"] for _ in range(2))
    bot.poll()
    ts = bot.store.get(task_id).message_ts
    assert ts is not None
    # A first click warms what a running bot has warm (who may approve, the periodic sweep of request keys).
    assert bot.click(blocks.APPROVE_ACTION, first).status_code == 200
    bot.settle()
    statements = Statements(bot.store.engine)
    try:
        proxy.hold("/approve")
        assert bot.click(blocks.APPROVE_ACTION, task_id).status_code == 200
        proxy.wait_arrived()
        bot.wait_for(lambda: _card_says(slack, ts, "Approving") and _work_idle(bot))
        before = statements.take()
        to_call = [s for s in before if not s[0].startswith("lexi-work")]
        beside = [s for s in before if s[0].startswith("lexi-work")]
        proxy.release()
        bot.settle()
        after = statements.take()
    finally:
        statements.close()
    assert _card_says(slack, ts, "Approved by")
    assert sandbox.task(task_id)["status"] == "approved"
    assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve")) == 1
    phases = {"to the call": to_call, "beside the call": beside, "after the answer": after}
    report = "\n".join(describe(label, seen) for label, seen in phases.items())
    kind = bot.store.engine.dialect.name
    for label, seen in phases.items():
        assert len(statements_only(seen)) <= BOUNDS[label][kind], report
