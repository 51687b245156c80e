"""The database holds tasks.state to the task states (migration 0007's CHECK), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.db import migrate
from bot.db.models import STATES
from bot.db.store import Store
from bot.lexi.models import Task, TaskState

BEFORE = "0006"  # the revision before the CHECK


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store on an empty database (not migrated)."""
    store = Store.from_url(database_url)
    yield store
    store.close()


def _announce(store: Store, task_id: str) -> None:
    """Claim and record a task as announced (its record is pending)."""
    assert store.claim_announcement(Task(id=task_id, description="d"), "C0LEXI")
    store.record_message(task_id, "C0LEXI", "100.1", rendered_version=1)


def _announce_raw(store: Store, task_id: str) -> None:
    """Write a pending record as the schema of BEFORE holds it (today's store writes columns it lacks)."""
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, task_type, payload, state, channel, message_ts, claimed_at, version,"
                " rendered_version, needs_render, announced_at, updated_at) VALUES (:id, 'x', '{}', 'pending',"
                " 'C0LEXI', '100.1', :now, 1, 1, false, :now, :now)"
            ),
            {"id": task_id, "now": "2026-01-01 00:00:00"},
        )


def _set_state(store: Store, task_id: str, state: str) -> None:
    """Write a state straight into the table, as no store method would."""
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE tasks SET state = :state WHERE task_id = :id"), {"state": state, "id": task_id})


def _states(store: Store) -> dict[str, str]:
    """Each task record's state."""
    with store.engine.connect() as conn:
        return {row[0]: row[1] for row in conn.execute(text("SELECT task_id, state FROM tasks"))}


def _checks(store: Store) -> list[str | None]:
    """The names of the CHECK constraints on tasks."""
    return [check["name"] for check in inspect(store.engine).get_check_constraints("tasks")]


def _indexes(store: Store) -> list[tuple[str | None, dict[str, str]]]:
    """The indexes on tasks, each with its predicate where it is partial."""
    found = inspect(store.engine).get_indexes("tasks")
    options = [(index["name"], {k: str(v) for k, v in index.get("dialect_options", {}).items()}) for index in found]
    return sorted(options, key=lambda item: str(item[0]))


def test_a_state_that_is_no_task_state_is_refused(store: Store) -> None:
    """Updating or inserting a record in an unknown state fails; every TaskState is accepted."""
    migrate.upgrade(store.engine)
    _announce(store, "t1")
    for state in STATES:
        _set_state(store, "t1", state)
    with pytest.raises(IntegrityError):
        _set_state(store, "t1", "bogus")
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (task_id, task_type, payload, state, channel, claimed_at, version,"
                " rendered_version, needs_render, announced_at, updated_at) VALUES ('t2', 'x', '{}', 'Pending', 'C',"
                " :now, 1, 0, false, :now, :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
    assert _states(store) == {"t1": TaskState.EXPIRED}


def test_upgrade_and_downgrade_keep_the_records(store: Store) -> None:
    """Records written before the CHECK keep their state through the upgrade and back through the downgrade."""
    migrate.upgrade(store.engine, BEFORE)
    for task_id in ("t1", "t2", "t3"):
        _announce_raw(store, task_id)
    _set_state(store, "t2", TaskState.APPROVED)
    _set_state(store, "t3", TaskState.COMPLETED)
    before, indexes = _states(store), _indexes(store)
    assert _checks(store) == []

    migrate.upgrade(store.engine)
    assert _states(store) == before
    assert _checks(store) == ["ck_tasks_state"]
    assert _indexes(store) == indexes  # SQLite's rebuilt table keeps its (partial) indexes
    assert store.unreplied()  # the partial index's query still finds the finished task owed a reply
    with pytest.raises(IntegrityError):
        _set_state(store, "t1", "bogus")

    migrate.downgrade(store.engine, BEFORE)
    assert _states(store) == before
    assert _checks(store) == []
    assert _indexes(store) == indexes
    _set_state(store, "t1", "bogus")  # no CHECK any more
    assert _states(store)["t1"] == "bogus"
