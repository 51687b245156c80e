"""The simplest Bolt bot a newcomer would write, for `bench.side_by_side` to compare lexi-bot with.

One listener: the Approve button acknowledges, then calls LeadLex's approve endpoint, on Bolt's own listener
executor (no database, no claim, no card update, no retries). It is served by the same waitress front as
lexi-bot (`bot.ops.server.HttpFront` with `make_wsgi`, so the same signature gate runs before Bolt).

`python -m bench.minimal_bot --port N` with LEXI_API_URL, LEXI_API_KEY, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and
SLACK_API_URL in the environment; prints `ready` once it listens; stops on SIGTERM.

The LeadLex client: one per executor thread (see build_app), the transport lexi-bot uses too.

With `--record DATABASE_URL` it is the floor the issue's own rule sets: before acknowledging, the click is written
in one durable INSERT (SQLAlchemy Core, one transaction, on lexi-bot's own engine: `make_engine`), and nothing else is
added. The gap between this bot and the bare one is what the rule "record the decision before the ack" costs by
itself on the harness; the gap between it and lexi-bot is lexi-bot's own. `--driver-sql` writes the same row with
SQLAlchemy's leanest call, `Connection.exec_driver_sql` (the driver's own SQL, no statement compiled or cached): the
least the rule can cost through SQLAlchemy.

The executor: Bolt runs each listener, `ack()` included, on `listener_executor` (by default 5 threads). A
listener that then waits 5 s on LeadLex holds its thread, so with the default pool the sixth click's ack waits
for a free thread; a newcomer who measures that sizes the pool for the load (`--executor-threads`, default 256).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, func

from bot.db.store import make_engine
from bot.ops.server import HttpFront, make_wsgi
from bot.slack.blocks import APPROVE_ACTION

#: The pool a newcomer would size for 200 clicks that each hold a thread for 5 s (Bolt's default is 5).
EXECUTOR_THREADS = 256

_METADATA = MetaData()
#: The floor's journal: who decided what, written before the ack.
DECISIONS = Table(
    "bench_floor_decisions",
    _METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(255), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(16), nullable=False),
    Column("accepted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
#: The floor's INSERT in the driver's own SQL (`--driver-sql`), with qmark placeholders.
RAW_INSERT = "INSERT INTO bench_floor_decisions (task_id, actor, action) VALUES (?, ?, ?)"


def journal(url: str) -> Engine:
    """The floor's database, on lexi-bot's own engine (its pool, SQLite's pragmas, PostgreSQL's idle-only pings)."""
    engine = make_engine(url)
    _METADATA.create_all(engine)
    return engine


def build_app(
    *,
    signing_secret: str,
    lexi_url: str,
    api_key: str,
    slack_url: str,
    token: str,
    executor_threads: int,
    record: Engine | None = None,
    driver_sql: bool = False,
) -> App:
    """The Bolt app: Approve acks, then calls LeadLex on the listener's executor thread.

    With `record`, the click is first written to that database (one INSERT, committed) and only then acknowledged;
    `driver_sql`: written with `exec_driver_sql` instead of a Core statement.
    """
    # One client per executor thread, as lexi-bot's LeadLex client does, so that both bots send their calls the
    # same way: a single shared client keeps every kept-alive connection in one pool, which it scans (a socket
    # poll each) on every request; with 200 connections that alone made this bot's click → call p50 a second.
    options = {
        "base_url": lexi_url,
        "headers": {"Authorization": f"Bearer {api_key}"},
        "timeout": 30,
        "trust_env": False,
        "verify": httpx.create_ssl_context(),
    }
    local = threading.local()
    # The driver's own SQL: constant text, each value a placeholder in the driver's style.
    pyformat = record is not None and record.dialect.paramstyle in ("format", "pyformat")
    raw_insert = RAW_INSERT.replace("?", "%s") if pyformat else RAW_INSERT
    # SQLite takes one writer at a time and makes the others sleep and retry (busy_timeout): queueing them on a lock
    # here is cheaper, so the floor is the write's cost, not the busy handler's sleeps. PostgreSQL needs no lock.
    writing: Any = (
        threading.Lock() if record is not None and record.dialect.name == "sqlite" else contextlib.nullcontext()
    )

    def leadlex() -> httpx.Client:
        """The calling executor thread's client."""
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(**options)  # type: ignore[arg-type]
        return client

    app = App(
        client=WebClient(token=token, base_url=slack_url),
        signing_secret=signing_secret,
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(max_workers=executor_threads, thread_name_prefix="bolt"),
        logger=logging.getLogger("minimal.bolt"),
    )

    @app.action(APPROVE_ACTION)
    def handle_approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Acknowledge, then approve the task in LeadLex (this thread waits for LeadLex's answer)."""
        if record is not None:
            with writing, record.begin() as conn:
                if driver_sql:
                    conn.exec_driver_sql(raw_insert, (action["value"], body["user"]["id"], "approve"))
                else:
                    conn.execute(
                        DECISIONS.insert().values(task_id=action["value"], actor=body["user"]["id"], action="approve")
                    )
        ack()
        leadlex().post(f"/v1/lexi/tasks/{action['value']}/approve")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--http-threads", type=int, default=16, help="waitress threads (lexi-bot's default: 16)")
    parser.add_argument("--executor-threads", type=int, default=EXECUTOR_THREADS)
    parser.add_argument("--record", metavar="DATABASE_URL", help="write each click durably before the ack (the floor)")
    parser.add_argument("--driver-sql", action="store_true", help="with --record: write it with exec_driver_sql")
    args = parser.parse_args(argv)
    if args.driver_sql and not args.record:
        parser.error("--driver-sql says how to write the click: it needs --record")
    logging.basicConfig(
        level=os.environ.get("BENCH_BOT_LOG_LEVEL", "ERROR"), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    app = build_app(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        lexi_url=os.environ["LEXI_API_URL"],
        api_key=os.environ["LEXI_API_KEY"],
        slack_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
        token=os.environ["SLACK_BOT_TOKEN"],
        executor_threads=args.executor_threads,
        record=journal(args.record) if args.record else None,
        driver_sql=args.driver_sql,
    )
    front = HttpFront(
        make_wsgi(app, health=lambda: {"mode": "minimal"}), "127.0.0.1", args.port, threads=args.http_threads
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        """Stop serving."""
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    front.start()
    print("ready", flush=True)
    while not stop.wait(0.5):
        pass
    front.stop(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
