"""One poller among replicas: the PostgreSQL advisory lock is held by one process and passed on when it goes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.db.store import make_engine
from bot.ops.leader import Leadership


def test_sqlite_process_always_leads(tmp_path: Path) -> None:
    """On SQLite the one process always polls."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert Leadership(engine).hold() is True
    engine.dispose()


def test_one_replica_holds_the_lock_and_hands_it_on(database_url: str) -> None:
    """Of three replicas one leads; when its session ends, another takes over at its next attempt."""
    if not database_url.startswith("postgresql"):
        pytest.skip("advisory locks are a PostgreSQL feature; SQLite is covered above")
    engines = [make_engine(database_url) for _ in range(3)]
    replicas = [Leadership(e) for e in engines]
    try:
        assert [r.hold() for r in replicas] == [True, False, False]
        assert [r.hold() for r in replicas] == [True, False, False]  # holding is stable, not re-entrant
        replicas[0]._connection.invalidate()  # noqa: SLF001 - the leader's session dies, as in a crash
        deadline = time.monotonic() + 5  # PostgreSQL frees the lock as the backend exits
        while not replicas[1].hold() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replicas[1].is_leader
        assert [r.hold() for r in replicas] == [False, True, False]  # the old leader knows it lost the lock
        replicas[1].release()  # a graceful shutdown hands over at once
        assert [replicas[2].hold(), replicas[0].hold()] == [True, False]
    finally:
        for r in replicas:
            r.release()
        for e in engines:
            e.dispose()
