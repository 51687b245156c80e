"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set), peers, a running bot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.config import normalize_database_url
from bot.lexi.sandbox import Sandbox
from bot.standin.slack import SlackStandIn
from tests.support.harness import BotHarness, start_bot

PG_URL = os.environ.get("TEST_DATABASE_URL")


def _reset_postgres(url: str) -> None:
    """Give a test an empty PostgreSQL database (tests run one at a time)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not PG_URL, reason="PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
            ),
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lexi-bot.db'}"
    assert PG_URL is not None
    url = normalize_database_url(PG_URL)
    _reset_postgres(url)
    return url


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A LeadLex sandbox on loopback with no sample tasks and a budget too large to shape polling.

    Budget behaviour is tested on its own, with the real plans' limits (tests/scenarios/test_budget.py).
    """
    with Sandbox(seed=False, daily_limit=10_000_000, minute_limit=100_000) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A Slack Web API stand-in on loopback."""
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def bot(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[BotHarness]:
    """The bot, running over HTTP against the sandbox and the stand-in."""
    harness = start_bot(sandbox, slack, database_url)
    try:
        yield harness
    finally:
        harness.close()
