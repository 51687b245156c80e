"""The side-by-side's floor (bench/minimal_bot.py --record): the minimal Bolt bot plus one durable write per click."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest
from sqlalchemy import select

from bench import minimal_bot
from bench.common import fresh_database, wait_until
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack.blocks import APPROVE_ACTION

SECRET = "floor-secret"


def _request(body: bytes, content_type: str, secret: str) -> BoltRequest:
    """A click as Slack sends it, signed with `secret`."""
    headers: dict[str, str | Sequence[str]] = {**payloads.signed_request(secret, body, content_type)}
    return BoltRequest(body=body.decode(), headers=headers)


@pytest.mark.parametrize("write", ["core", "driver-sql"])
def test_the_floor_writes_the_click_before_acknowledging_it_then_approves(tmp_path: Path, write: str) -> None:
    """When Bolt's answer comes back, the click is already in the database; LeadLex's approval follows.

    Alike whether the row is written with a Core statement or with the driver's own SQL (`--driver-sql`).
    """
    _writes_before_the_ack(f"sqlite:///{tmp_path}/floor.db", driver_sql=write == "driver-sql")


@pytest.mark.postgres
@pytest.mark.parametrize("write", ["core", "driver-sql"])
def test_the_floor_on_postgresql_writes_before_the_ack(postgres_url: str, write: str) -> None:
    """The same on PostgreSQL, on a fresh database (its driver's SQL takes %s placeholders, not ?)."""
    with fresh_database(postgres_url) as url:
        assert url is not None
        _writes_before_the_ack(url, driver_sql=write == "driver-sql")


def _writes_before_the_ack(url: str, *, driver_sql: bool) -> None:
    """A click on the floor bot over `url`: written when the ack comes back, then approved; a forgery writes nothing."""
    sandbox = Sandbox(seed=False).start()
    slack = SlackStandIn().start()  # Bolt asks auth.test who the bot is on its first request
    engine = minimal_bot.journal(url)
    try:
        task_id = sandbox.add_task()["id"]
        app = minimal_bot.build_app(
            signing_secret=SECRET,
            lexi_url=sandbox.url,
            api_key=sandbox.api_key,
            slack_url=slack.api_url,
            token="xoxb-test-token",
            executor_threads=2,
            record=engine,
            driver_sql=driver_sql,
        )
        body, content_type = payloads.encode_interactive(
            payloads.build_block_action(action_id=APPROVE_ACTION, value=task_id, user="UFLOOR")
        )
        answer = app.dispatch(_request(body, content_type, SECRET))
        with engine.connect() as conn:  # read at once: the write came before the ack
            written = conn.execute(select(minimal_bot.DECISIONS.c.task_id, minimal_bot.DECISIONS.c.actor)).all()
        assert answer.status == 200
        assert [tuple(row) for row in written] == [(task_id, "UFLOOR")]
        assert wait_until(lambda: (sandbox.task(task_id) or {}).get("status") == "approved", 10)
        forged = app.dispatch(_request(body, content_type, "not-the-secret"))
        assert forged.status == 401  # nothing is written for a click Slack did not sign
        with engine.connect() as conn:
            assert len(conn.execute(select(minimal_bot.DECISIONS.c.id)).all()) == 1
    finally:
        engine.dispose()
        slack.stop()
        sandbox.stop()
