"""The Service: the one way the bot is started and stopped (run, the demo, the harness, the benchmarks)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime
from bot.service import Service
from bot.slack.app import create_app
from tests.support.harness import SECRETS_GIVEN, bot_settings


def _runtime(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> Runtime:
    """A runtime on a fresh SQLite file, pointed at the sandbox and the stand-in."""
    settings = bot_settings(sandbox, slack, f"sqlite:///{tmp_path / 'service.db'}")
    SECRETS_GIVEN.update(settings.secrets())
    store = Store.from_url(settings.database_url)
    migrate.upgrade(store.engine)
    return Runtime.build(settings, store=store, post_interval=0.0)


def test_closing_stops_what_it_started_newest_first_then_the_runtime(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """On close the front stops, then the poller and keeper end, then the runtime drains.

    What the caller handed over before them stops last.
    """
    runtime = _runtime(sandbox, slack, tmp_path)
    order: list[str] = []
    with Service(runtime, drain_timeout=5) as service:
        service.own(order.append, "owned first")
        front = service.serve_http(create_app(runtime), "127.0.0.1", 0, stop_timeout=5)
        poller = service.start_poller()
        url = f"http://127.0.0.1:{front.port}/healthz"
        assert httpx.get(url, timeout=5).json()["ok"] is True
        service.own(order.append, "owned last")
        keepers = [t for t in threading.enumerate() if t.name == "lexi-keeper"]
        assert keepers and poller.is_alive()
    assert order == ["owned last", "owned first"]
    assert service.stop.is_set() and runtime.stopping.is_set()
    assert not poller.is_alive() and not any(t.is_alive() for t in keepers)
    try:
        httpx.get(url, timeout=1)
        answered = True
    except httpx.TransportError:
        answered = False
    assert not answered


def test_wait_ends_with_the_names_of_parts_that_stopped(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """`wait` returns the dead parts' names (the caller exits non-zero), and [] once `stop` is set."""
    runtime = _runtime(sandbox, slack, tmp_path)
    with Service(runtime, drain_timeout=5) as service:
        alive = threading.Event()
        alive.set()
        runtime.watch("thing", alive.is_set)
        alive.clear()
        assert service.wait() == ["thing"]
        alive.set()
        threading.Timer(0.2, service.stop.set).start()
        assert service.wait() == []
