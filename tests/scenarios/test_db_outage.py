"""The database may go away: PostgreSQL behind a loopback proxy that the test cuts for about ten seconds."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import make_url, text

from bot.db.store import PING_IDLE, make_engine
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.conftest import _reset_postgres
from tests.support.harness import CHANNEL, BotHarness, start_bot
from tests.support.tcp_proxy import TcpProxy

#: The outage puts PostgreSQL behind a proxy: without a server the whole module is skipped (tests/conftest.py).
pytestmark = pytest.mark.postgres

#: How long the database stays away.
OUTAGE = 10.0


def _posted_ids(slack: SlackStandIn) -> list[str]:
    """Task ids of the top-level messages in the channel, once per message."""
    return [
        m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.thread_ts is None and m.metadata
    ]


def _approve(bot: BotHarness, slack: SlackStandIn, task_id: str) -> httpx.Response:
    """Click Approve on a task's card (found in the channel, not in the store, which may be away)."""
    ts = next(m.ts for m in slack.messages(CHANNEL) if m.metadata and m.metadata["event_payload"]["task_id"] == task_id)
    payload = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION,
        value=task_id,
        user="UALICE",
        channel=CHANNEL,
        message_ts=ts,
        trigger_id=slack.new_trigger_id("UALICE"),
        response_url=slack.new_response_url(),
    )
    return bot.post(*payloads.encode_interactive(payload))


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """An empty PostgreSQL database reached through a proxy the test can cut, and its URL through the proxy."""
    _reset_postgres(postgres_url)
    base = make_url(postgres_url)
    with TcpProxy(base.host or "127.0.0.1", base.port or 5432) as proxy:
        yield proxy, base.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def polling_bot(sandbox: Sandbox, slack: SlackStandIn, proxied: tuple[TcpProxy, str]) -> Iterator[BotHarness]:
    """The bot on the proxied database with its poller thread running (every second), as in production."""
    harness = start_bot(sandbox, slack, proxied[1], claim_timeout=timedelta(seconds=3))
    stop = threading.Event()
    harness.runtime.start_poller(stop)
    try:
        yield harness
    finally:
        stop.set()
        harness.close()


def _probe(bot: BotHarness, path: str) -> tuple[int, dict]:
    """GET a probe; its status and JSON body."""
    response = httpx.get(f"{bot.url}{path}", timeout=10)
    return response.status_code, response.json()


@pytest.mark.slow
def test_database_outage_pauses_polling_and_loses_nothing(
    polling_bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, proxied: tuple[TcpProxy, str]
) -> None:
    """A 10 s database outage during a poll: /readyz says why, /healthz stays up, then every task is announced once."""
    bot, (proxy, _) = polling_bot, proxied
    first = sandbox.add_task("prospect_search", "Before the outage")["id"]
    bot.wait_for(lambda: first in _posted_ids(slack), timeout=15)
    bot.wait_for(lambda: _probe(bot, "/readyz")[0] == 200, timeout=15)  # the first cycle has finished

    # Cut while a poll runs: LeadLex answers slowly, so the cut lands between the task list and the store.
    sandbox.latency = 0.5
    arrived = [sandbox.add_task("prospect_search", f"Arrived {n}")["id"] for n in range(3)]
    listed = len(sandbox.calls_to("GET", "/v1/lexi/tasks"))
    bot.wait_for(lambda: len(sandbox.calls_to("GET", "/v1/lexi/tasks")) > listed, timeout=10)
    proxy.cut()
    sandbox.latency = 0.0
    readiness: list[tuple[int, dict]] = []
    health: list[int] = []
    ends = time.monotonic() + OUTAGE
    clicked = _approve(bot, slack, first)
    while time.monotonic() < ends:
        if len(arrived) < 8:
            arrived.append(sandbox.add_task("prospect_search", f"During the outage {len(arrived)}")["id"])
        readiness.append(_probe(bot, "/readyz"))
        health.append(_probe(bot, "/healthz")[0])
        time.sleep(0.5)
    proxy.resume()

    expected = {first, *arrived}
    bot.wait_for(lambda: expected <= set(_posted_ids(slack)), timeout=20)
    bot.wait_for(lambda: _probe(bot, "/readyz")[0] == 200, timeout=20)
    seen = bot.runtime.poller.last_success
    bot.wait_for(lambda: (bot.runtime.poller.last_success or 0) > (seen or 0), timeout=10)  # one more full cycle

    assert clicked.status_code == 200  # Slack got its answer; the decision could not be recorded, so …
    assert sandbox.calls_to("POST", f"/v1/lexi/tasks/{first}/approve") == []  # … nothing went to LeadLex
    doubled = {task_id: n for task_id, n in Counter(_posted_ids(slack)).items() if n > 1}
    assert doubled == {}
    assert set(_posted_ids(slack)) == expected
    assert all(status == 200 for status in health), health
    down = [body for status, body in readiness if status == 503]
    assert down, "readiness never reported the outage"
    assert all(body["database"].startswith("unreachable") for body in down), down
    assert any(body.get("poll") == "paused: database unreachable" for body in down), down


def test_store_rides_out_a_brief_disconnect(proxied: tuple[TcpProxy, str]) -> None:
    """A connection reset and a database that answers again within a second: store operations retry and succeed."""
    from bot.db import migrate
    from bot.db.store import Store
    from bot.lexi.models import Task

    proxy, url = proxied
    store = Store.from_url(url)
    try:
        migrate.upgrade(store.engine)
        assert store.claim_announcement(Task(id="T-before"), CHANNEL)
        proxy.cut()  # the pooled connection is now dead, and new ones are refused …
        threading.Timer(0.3, proxy.resume).start()  # … for a moment only
        assert store.claim_announcement(Task(id="T-after"), CHANNEL)
        proxy.cut()
        threading.Timer(0.3, proxy.resume).start()
        # A generator, as the poller passes: the retry must still see every id.
        assert store.known(task_id for task_id in ("T-before", "T-after")) == {"T-before", "T-after"}
    finally:
        store.close()


def test_a_connection_dropped_while_idle_is_replaced_at_checkout(proxied: tuple[TcpProxy, str]) -> None:
    """PostgreSQL dropped the pool's connections (a restart): one idle past PING_IDLE is replaced at checkout.

    It is pinged, found dead and replaced before the statement runs, so even an operation that is not retried
    succeeds.
    """
    proxy, url = proxied
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        before = proxy.accepted
        proxy.cut()  # every open connection is reset, as by a server restart
        proxy.resume()
        time.sleep(PING_IDLE + 0.2)
        with engine.connect() as conn:  # no retry here: the checkout itself must find the dead connection
            assert conn.execute(text("SELECT 2")).scalar() == 2
        assert proxy.accepted > before  # a new connection was made
    finally:
        engine.dispose()
