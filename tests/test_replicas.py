"""Three replicas on one PostgreSQL database: exactly-once announcements and decisions, and poller takeover."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, SIGNING_SECRET, bot_env
from tests.support.process import BotProcess, clean_env, free_port


def _posted(slack: SlackStandIn) -> list[str]:
    """Task ids of the channel's top-level messages."""
    return [m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.metadata and not m.thread_ts]


def _role(port: int) -> str:
    """What /readyz says this replica does with polling ('ok' for the poller, 'standby' otherwise)."""
    try:
        return str(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json().get("poll"))
    except httpx.HTTPError:
        return "down"


@pytest.mark.slow
def test_three_replicas_announce_and_decide_exactly_once(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Across three replicas each task gets one message and one LeadLex call, also after the poller is killed."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several replicas need PostgreSQL; SQLite refuses a second process (tests/test_cli.py)")
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    first = [sandbox.add_task("prospect_search", f"Search {i}")["id"] for i in range(5)]
    ports = [free_port() for _ in range(3)]
    env = clean_env(**bot_env(sandbox, slack, database_url, POLL_INTERVAL="0.5"))
    replicas = [BotProcess(["run", "--host", "127.0.0.1"], {**env, "PORT": str(p)}, tmp_path) for p in ports]
    try:
        for replica, port in zip(replicas, ports):
            replica.wait_healthy(port)
        slack.wait_for(lambda: sorted(_posted(slack)) == sorted(first), timeout=20)
        roles = slack.wait_for(lambda: (r := [_role(p) for p in ports]).count("ok") == 1 and r, timeout=10)
        assert sorted(roles) == ["ok", "standby", "standby"]

        # Nine people click Approve on one task at once, spread over the three replicas.
        target = first[0]
        ts = store.get(target).message_ts
        barrier = threading.Barrier(9)

        def click(n: int) -> None:
            action = payloads.build_block_action(
                action_id=blocks.APPROVE_ACTION,
                value=target,
                message_ts=ts,
                user=["UALICE", "UBOB", "UCAROL"][n % 3],
                response_url=slack.new_response_url(),
            )
            body, kind = payloads.encode_interactive(action)
            barrier.wait(timeout=10)
            response = httpx.post(
                f"http://127.0.0.1:{ports[n % 3]}/slack/events",
                content=body,
                headers=payloads.signed_request(SIGNING_SECRET, body, kind),
                timeout=10,
            )
            assert response.status_code == 200

        threads = [threading.Thread(target=click, args=(n,)) for n in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        slack.wait_for(lambda: store.get(target).state == "approved", timeout=15)
        assert len(sandbox.calls_to("POST", f"/v1/lexi/tasks/{target}/approve")) == 1

        # The polling replica dies without a word; another takes over and announces new work once.
        leader = roles.index("ok")
        replicas[leader].kill()
        later = [sandbox.add_task("campaign_start", f"Campaign {i}", {"contact_count": 120})["id"] for i in range(3)]
        slack.wait_for(lambda: set(later) <= set(_posted(slack)), timeout=20)
        survivors = [p for i, p in enumerate(ports) if i != leader]
        slack.wait_for(lambda: sorted(_role(p) for p in survivors) == ["ok", "standby"], timeout=10)
        posted = _posted(slack)
        assert sorted(posted) == sorted(first + later) and len(posted) == len(set(posted))
        for i, replica in enumerate(replicas):
            if i != leader:
                replica.proc.send_signal(signal.SIGTERM)
                assert replica.wait() == 0, replica.output
    finally:
        for replica in replicas:
            replica.stop()
        store.close()
