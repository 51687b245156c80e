"""Fixtures the scenario tests share beyond tests/conftest.py: a bot connected over Socket Mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime
from bot.service import Service
from bot.slack.app import create_app
from tests.support.harness import SECRETS_GIVEN, bot_env
from tests.support.socket_mode import SocketModeServer


@pytest.fixture
def socket_bot(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> Iterator[tuple[Runtime, SocketModeServer]]:
    """A bot configured for Socket Mode (app token, no signing secret), connected to a loopback server."""
    server = SocketModeServer().start()
    slack.socket_mode_url = server.url
    env = bot_env(sandbox, slack, f"sqlite:///{tmp_path / 'socket.db'}", SLACK_APP_TOKEN=slack.app_token)
    del env["SLACK_SIGNING_SECRET"]
    settings = load_settings(env)
    assert settings.mode == "socket"
    SECRETS_GIVEN.update(settings.secrets())
    store = Store.from_url(settings.database_url)
    migrate.upgrade(store.engine)
    runtime = Runtime.build(settings, store=store, post_interval=0.0)
    service = Service(runtime)
    service.own(server.stop)
    service.connect_socket(create_app(runtime), slack.app_token)
    server.wait_connected()
    with service:
        yield runtime, server
