"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is set), peers, a running bot."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from bot.config import normalize_database_url
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from tests.support.harness import SECRETS_GIVEN, WEBHOOK_SECRET, BotHarness, start_bot
from tests.support.process import CHILD_OUTPUT, CHILD_SECRETS

PG_URL = os.environ.get("TEST_DATABASE_URL")
#: Why a test marked `postgres` did not run.
POSTGRES_SKIP = "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"


class _SecretScan(logging.Handler):
    """Keeps every log line the suite produces, to check at the end that none holds a configured secret."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted line (and its exception)."""
        self.lines.append(self.format(record))


_SCAN = _SecretScan()


def pytest_configure() -> None:
    """Watch the bot's and the libraries' logs for the whole session (the markers are in pyproject.toml)."""
    logging.getLogger().addHandler(_SCAN)
    logging.getLogger("bot").setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _keep_scanning() -> Iterator[None]:
    """Put the secret scan back on the root logger around every test.

    A test that runs the CLI's main() runs its logging set-up, which replaces the root logger's handlers: without
    this, every later test's log lines went unscanned (and went to that test's closed stderr).
    """
    root = logging.getLogger()
    if _SCAN not in root.handlers:
        root.addHandler(_SCAN)
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers  # also drops a handler writing to the test's captured (now closed) stderr
    root.setLevel(level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests marked `postgres` (pyproject.toml → markers) when TEST_DATABASE_URL names no server."""
    if PG_URL:
        return
    skip = pytest.mark.skip(reason=POSTGRES_SKIP)
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the session if any log line of any test contained a secret the bots under test were given."""
    secrets = sorted(s for s in SECRETS_GIVEN | CHILD_SECRETS if len(s) >= 8)
    lines = _SCAN.lines + CHILD_OUTPUT
    leaks = [(secret, line) for line in lines for secret in secrets if secret in line]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        _, line = leaks[0]
        message = f"SECRET LEAK: {len(leaks)} log line(s) contain a configured secret, e.g. {line[:300]!r}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        message = f"secret scan: {len(lines)} log lines checked for {len(secrets)} secrets, none found"
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(message)


def _reset_postgres(url: str) -> None:
    """Give a test an empty PostgreSQL database (tests in one session run one at a time)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own on the TEST_DATABASE_URL server, so parallel runs never collide.

    Falls back to TEST_DATABASE_URL's own database when the role may not create databases.
    """
    assert PG_URL is not None
    base = make_url(normalize_database_url(PG_URL))
    name = f"lexi_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:  # noqa: BLE001 - no CREATEDB right: share the configured database
        admin.dispose()
        yield base.render_as_string(hide_password=False)
        return
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lexi-bot.db'}"
    url = str(request.getfixturevalue("postgres_url"))
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


@pytest.fixture
def hooked(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[BotHarness]:
    """The bot, also accepting LeadLex webhook deliveries signed with WEBHOOK_SECRET."""
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET=WEBHOOK_SECRET)
    try:
        yield harness
    finally:
        harness.close()
