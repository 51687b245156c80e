"""The services the /lexi subcommands use instead of the store and LeadLex's client.

Finding a task (bot.core.tasks) and asking Lexi in a person's conversation (bot.core.conversations), with a
real Store on SQLite and the LeadLex sandbox over loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.conversations import Conversations
from bot.core.tasks import TaskLookup
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.lexi.client import LexiClient
from bot.lexi.models import Task
from tests.unit.fakes import CHANNEL, sqlite_store


@pytest.fixture
def parts(tmp_path: Path, sandbox: Sandbox) -> Iterator[tuple[Store, LexiClient]]:
    """A fresh store and a client of the sandbox."""
    with sqlite_store(tmp_path) as store:
        lexi = LexiClient(sandbox.url, sandbox.api_key, attempts=1)
        yield store, lexi


def _contexts(sandbox: Sandbox) -> list[Any]:
    """The context of each chat message LeadLex received, in order."""
    return [call.body.get("context") for call in sandbox.calls_to("POST", "/v1/lexi/chat")]


def _listed(sandbox: Sandbox) -> list[str]:
    """The status asked for by each task listing LeadLex received, in order."""
    return [call.path.split("status=")[1] for call in sandbox.calls_to("GET", "/v1/lexi/tasks")]


def test_a_person_continues_their_own_conversation_in_each_channel(
    parts: tuple[Store, LexiClient], sandbox: Sandbox
) -> None:
    """Each person has their own conversation in each channel; `new` starts afresh, and that one goes on.

    The first message starts a conversation and the next one in that channel continues it.
    """
    conversations = Conversations(*parts)
    first = conversations.ask("U1", CHANNEL, "hello")
    assert first.conversation_id
    conversations.ask("U1", CHANNEL, "and then?")
    conversations.ask("U1", "C0OTHER", "hello")
    conversations.ask("U2", CHANNEL, "hello")
    fresh = conversations.ask("U1", CHANNEL, "start over", new=True)
    conversations.ask("U1", CHANNEL, "go on")
    assert fresh.conversation_id not in (None, first.conversation_id)
    assert _contexts(sandbox) == [
        {},
        {"conversation_id": first.conversation_id},
        {},
        {},
        {},
        {"conversation_id": fresh.conversation_id},
    ]


def test_a_task_is_found_in_the_bot_s_records_or_in_leadlex_s_lists(
    parts: tuple[Store, LexiClient], sandbox: Sandbox
) -> None:
    """Records come from the store; LeadLex is asked for pending tasks alone, or for every later state in turn."""
    store, lexi = parts
    lookup = TaskLookup(store, lexi)
    waiting = sandbox.add_task("prospect_search", "waiting")["id"]
    done = sandbox.add_task("prospect_search", "done")["id"]
    sandbox.set_status(done, "approved")
    task = Task.from_api(sandbox.task(waiting))
    assert task is not None
    assert store.claim_announcement(task, CHANNEL)

    record = lookup.record(waiting)
    assert record is not None
    assert record.channel == CHANNEL
    assert lookup.record(done) is None
    assert lookup.known([waiting, done, "nope"]) == {waiting}
    assert not sandbox.calls_to("GET", "/v1/lexi/tasks")  # the bot's records cost LeadLex nothing

    assert [t.id for t in lookup.listed()] == [waiting]
    assert [t.id for t in lookup.listed("approved")] == [done]
    assert _listed(sandbox) == ["pending", "approved"]
    sandbox.reset_calls()

    found = lookup.pending(waiting)
    assert found is not None
    assert found.id == waiting
    assert lookup.pending(done) is None
    assert _listed(sandbox) == ["pending", "pending"]
    sandbox.reset_calls()

    decided = lookup.decided(done)
    assert decided is not None
    assert decided.status == "approved"
    assert lookup.decided(waiting) is None
    assert _listed(sandbox) == ["approved", "approved", "dismissed", "completed", "failed"]
