"""Migration 0008: slack_sdk's installation and OAuth state stores work on the bot's database, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import inspect

from bot.db import migrate
from bot.db.store import Store

BEFORE = "0007"  # the revision before the installation tables
TABLES = {"slack_installations", "slack_bots", "slack_oauth_states"}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store on an empty database (not migrated)."""
    store = Store.from_url(database_url)
    yield store
    store.close()


def _installation(team_id: str, token: str, *, expires_in: int | None = None) -> Installation:
    """An installation as Bolt's OAuth flow builds it from oauth.v2.access."""
    return Installation(
        app_id="A0LEXI",
        enterprise_id=None,
        team_id=team_id,
        team_name=f"Team {team_id}",
        bot_token=token,
        bot_id="B" + team_id,
        bot_user_id="U" + team_id,
        bot_scopes="chat:write,commands",
        bot_refresh_token="xoxe-1-refresh" if expires_in else None,
        bot_token_expires_in=expires_in,
        user_id="UINSTALLER",
        is_enterprise_install=False,
        token_type="bot",
    )


def test_slack_sdk_stores_work_on_the_migrated_database(store: Store) -> None:
    """Without create_tables(), the installation store saves and finds per team and the state store issues once."""
    migrate.upgrade(store.engine)
    installations = SQLAlchemyInstallationStore(client_id="111.222", engine=store.engine)
    installations.save(_installation("TA", "xoxb-a"))
    installations.save(_installation("TB", "xoxb-b", expires_in=43200))
    found_a = installations.find_installation(enterprise_id=None, team_id="TA")
    found_b = installations.find_bot(enterprise_id=None, team_id="TB")
    assert found_a is not None and found_a.bot_token == "xoxb-a"
    assert found_b is not None and found_b.bot_token == "xoxb-b" and found_b.bot_refresh_token == "xoxe-1-refresh"
    assert found_b.bot_token_expires_at is not None and found_b.bot_token_expires_at > time.time() + 40000
    assert installations.find_bot(enterprise_id=None, team_id="TC") is None
    states = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=store.engine)
    state = states.issue()
    assert states.consume(state)
    assert not states.consume(state)  # single use
    assert not states.consume("never-issued")


def test_an_expired_state_is_refused(store: Store) -> None:
    """A state older than its expiry is not accepted, on the migrated table's naive UTC timestamps."""
    migrate.upgrade(store.engine)
    states = SQLAlchemyOAuthStateStore(expiration_seconds=-1, engine=store.engine)
    assert not states.consume(states.issue())


def test_upgrade_and_downgrade_around_0008(store: Store) -> None:
    """0007 → 0008 adds exactly the three tables; back to 0007 removes them and leaves the rest."""
    migrate.upgrade(store.engine, BEFORE)
    before = set(inspect(store.engine).get_table_names())
    assert not before & TABLES
    migrate.upgrade(store.engine, "0008")
    assert set(inspect(store.engine).get_table_names()) == before | TABLES
    indexes = {index["name"] for index in inspect(store.engine).get_indexes("slack_installations")}
    assert "slack_installations_idx" in indexes
    migrate.downgrade(store.engine, BEFORE)
    assert set(inspect(store.engine).get_table_names()) == before
