"""An acknowledged decision is carried out: recorded before the ack, resumed after a crash, sent to LeadLex at once."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.core.keeper import Leases
from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks, modals
from tests.support.harness import CHANNEL, SIGNING_SECRET, BotHarness, bot_env, start_bot
from tests.support.lexi_hold import HoldingProxy
from tests.support.process import BotProcess, clean_env, free_port


def _announce(bot: BotHarness, sandbox: Sandbox) -> str:
    """Add a pending task in LeadLex and let the bot announce it; return its id."""
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    bot.poll()
    assert bot.store.get(task_id).message_ts is not None
    return task_id


def _approvals(sandbox: Sandbox, task_id: str, status: int | None = None) -> int:
    """How many approve requests LeadLex received for a task (answered with `status`, when given)."""
    calls = sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}/approve")
    return len([c for c in calls if status is None or c.status == status])


def _card_text(slack: SlackStandIn, task_id: str) -> str:
    """The blocks of a task's card, as JSON text ('' before it is posted)."""
    for message in slack.messages(CHANNEL):
        if message.metadata and message.metadata["event_payload"]["task_id"] == task_id and not message.thread_ts:
            return json.dumps(message.blocks, ensure_ascii=False)
    return ""


def _click(port: int, slack: SlackStandIn, task_id: str, ts: str | None, user: str = "UALICE") -> httpx.Response:
    """Click Approve on a card as Slack would, at the bot listening on `port`."""
    action = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION, value=task_id, user=user, message_ts=ts, response_url=slack.new_response_url()
    )
    body, kind = payloads.encode_interactive(action)
    return httpx.post(
        f"http://127.0.0.1:{port}/slack/events",
        content=body,
        headers=payloads.signed_request(SIGNING_SECRET, body, kind),
        timeout=10,
    )


# --- click → LeadLex at once ------------------------------------------------------------------------


def test_approve_reaches_leadlex_while_the_card_update_is_held(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """The approve call is made even while Slack holds the "Approving…" card update: the card never delays it."""
    task_id = _announce(bot, sandbox)
    release = slack.hold_next("chat.update")
    try:
        assert bot.click(blocks.APPROVE_ACTION, task_id).status_code == 200
        slack.wait_held()
        bot.wait_for(lambda: _approvals(sandbox, task_id, 200) == 1)
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        release.set()
    bot.settle()
    bot.wait_for(lambda: "Approved by <@UALICE>" in _card_text(slack, task_id))


# --- the database may be unreachable -----------------------------------------------------------------


class _CutProxy:
    """A loopback TCP proxy in front of PostgreSQL; `cut()` closes every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._cut = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        """Accept connections and pump each both ways (closed at once while cut)."""
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        """Copy bytes until either side closes."""
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """The database goes away: every connection closes, new ones are refused."""
        self._cut.set()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def restore(self) -> None:
        """The database is back."""
        self._cut.clear()

    def close(self) -> None:
        """Stop listening."""
        self.cut()
        self._listener.close()


class _Outage:
    """Makes the bot's database unreachable and brings it back (SQLite: the file is replaced by a directory)."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._direct = database_url
        self.proxy = (
            None if url.get_backend_name() == "sqlite" else _CutProxy(url.host or "127.0.0.1", url.port or 5432)
        )
        self.url = (
            database_url
            if self.proxy is None
            else url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(hide_password=False)
        )
        self._path = Path(url.database or "") if self.proxy is None else None

    def cut(self, store: Store) -> None:
        """Take the database away from `store`."""
        if self.proxy is not None:
            self.proxy.cut()
            return
        assert self._path is not None
        store.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self._path}{suffix}")
            if part.exists():
                part.rename(f"{part}.away")
        self._path.mkdir()  # opening it now fails: "unable to open database file"

    def restore(self, store: Store) -> None:
        """Give the database back."""
        if self.proxy is not None:
            self.proxy.restore()
            return
        assert self._path is not None
        store.engine.dispose()
        self._path.rmdir()
        for suffix in ("", "-wal", "-shm"):
            away = Path(f"{self._path}{suffix}.away")
            if away.exists():
                away.rename(f"{self._path}{suffix}")

    def close(self) -> None:
        """Stop the proxy, if any, and end the sessions it carried (a cut session may linger with its locks)."""
        if self.proxy is None:
            return
        self.proxy.close()
        engine = create_engine(self._direct)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
        finally:
            engine.dispose()


@pytest.fixture
def outage(database_url: str) -> Iterator[_Outage]:
    """A way to take the database away from a bot started on `outage.url`."""
    made = _Outage(database_url)
    try:
        yield made
    finally:
        made.close()


def test_a_click_the_database_cannot_record_is_answered_and_not_sent(
    sandbox: Sandbox, slack: SlackStandIn, outage: _Outage
) -> None:
    """With the database gone, Approve is acknowledged, the person is told plainly, and LeadLex gets nothing."""
    bot = start_bot(sandbox, slack, outage.url)
    try:
        task_id = _announce(bot, sandbox)
        outage.cut(bot.store)
        try:
            response = _click(int(bot.url.rsplit(":", 1)[1]), slack, task_id, None)  # no store read: it is gone
            assert response.status_code == 200
            told = bot.wait_for(
                lambda: [e for e in slack.ephemerals_for("UALICE") if "could not be recorded" in e.text]
            )
            assert "try again" in told[0].text and "Nothing was sent to LeadLex" in told[0].text
            bot.settle()
            assert _approvals(sandbox, task_id) == 0
        finally:
            outage.restore(bot.store)
        assert bot.click(blocks.APPROVE_ACTION, task_id).status_code == 200
        bot.settle()
        assert _approvals(sandbox, task_id, 200) == 1
        assert bot.store.get(task_id).state == "approved"
    finally:
        bot.close()


def test_a_command_or_dismiss_form_the_database_cannot_record_says_so(
    sandbox: Sandbox, slack: SlackStandIn, outage: _Outage
) -> None:
    """With the database gone, /lexi approve answers in its ack and the dismiss form stays open saying why."""
    bot = start_bot(sandbox, slack, outage.url)
    try:
        task_id = _announce(bot, sandbox)
        outage.cut(bot.store)
        try:
            answer = bot.command(f"approve {task_id}")
            assert answer.status_code == 200 and "could not be recorded" in answer.json()["text"]
            submission = payloads.build_view_submission(
                callback_id=modals.DISMISS_MODAL,
                private_metadata=json.dumps({"task_id": task_id}),
                user="UBOB",
                values={
                    modals.REASON_BLOCK: {
                        modals.REASON_INPUT: {"type": "radio_buttons", "selected_option": {"value": "duplicate"}}
                    }
                },
            )
            form = bot.post(*payloads.encode_interactive(submission))
            assert form.status_code == 200 and form.json()["response_action"] == "errors"
            assert "could not be recorded" in form.json()["errors"][modals.REASON_BLOCK]
            bot.settle()
        finally:
            outage.restore(bot.store)
        assert sandbox.calls_to("POST", f"/v1/lexi/tasks/{task_id}") == []
        assert bot.store.get(task_id).state == "pending"
    finally:
        bot.close()


# --- resumed after a crash ---------------------------------------------------------------------------


@contextmanager
def _killed_after_the_ack(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], None]]]:
    """A `lexi-bot run` process SIGKILLed right after acknowledging an Approve whose LeadLex call never arrived.

    Yields the task id and a function that starts the restarted bot (on the same database) and waits until it serves.
    """
    proxy = HoldingProxy(sandbox.url)
    port = free_port()
    env = clean_env(
        **bot_env(sandbox, slack, f"sqlite:///{tmp_path / 'bot.db'}", LEXI_API_URL=proxy.url, PORT=str(port))
    )
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    crashed = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
    restarted: list[BotProcess] = []

    def restart() -> None:
        restarted.append(BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path))
        restarted[0].wait_healthy(port)

    try:
        crashed.wait_healthy(port)
        slack.wait_for(lambda: _card_text(slack, task_id), timeout=20)
        proxy.hold("/approve")
        assert _click(port, slack, task_id, None).status_code == 200
        proxy.wait_arrived()
        crashed.kill()
        proxy.drop()  # the call never reached LeadLex
        yield task_id, restart
    finally:
        crashed.stop()
        for process in restarted:
            process.stop()
        proxy.close()


@pytest.mark.slow
def test_killed_right_after_the_ack_the_restarted_bot_approves_once(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """SIGKILLed while its approve call was on the way, the restarted bot resends it: one approval, card approved."""
    with _killed_after_the_ack(sandbox, slack, tmp_path) as (task_id, restart):
        assert _approvals(sandbox, task_id) == 0
        restart()
        slack.wait_for(lambda: "Approved by <@UALICE>" in _card_text(slack, task_id), timeout=30)
        assert _approvals(sandbox, task_id, 200) == 1 and _approvals(sandbox, task_id) == 1
        assert any("resumed after a restart" in json.dumps(call.args) for call in slack.calls_to("chat.update"))


@pytest.mark.parametrize("runs_for", [None, 0.2], ids=["stays-approved", "completes-at-once"])
@pytest.mark.slow
def test_a_resumed_approval_that_had_landed_ends_approved(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, runs_for: float | None
) -> None:
    """The dead bot's call reached LeadLex after all: the resumed call's 400 means it landed; it stays this person's."""
    sandbox.complete_after = runs_for
    proxy = HoldingProxy(sandbox.url)
    port = free_port()
    env = clean_env(
        **bot_env(sandbox, slack, f"sqlite:///{tmp_path / 'bot.db'}", LEXI_API_URL=proxy.url, PORT=str(port))
    )
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    crashed = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
    restarted = None
    try:
        crashed.wait_healthy(port)
        slack.wait_for(lambda: _card_text(slack, task_id), timeout=20)
        proxy.hold("/approve")
        assert _click(port, slack, task_id, None).status_code == 200
        proxy.wait_arrived()
        crashed.kill()
        proxy.release()  # it lands after its caller died
        slack.wait_for(lambda: sandbox.task(task_id)["status"] == "approved", timeout=10)
        restarted = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
        restarted.wait_healthy(port)
        slack.wait_for(lambda: "Approved by <@UALICE>" in _card_text(slack, task_id), timeout=30)
        assert _approvals(sandbox, task_id, 200) == 1
    finally:
        crashed.stop()
        if restarted is not None:
            restarted.stop()
        proxy.close()


@pytest.mark.slow
def test_a_decision_acked_by_a_killed_replica_is_finished_by_another(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """Three replicas on PostgreSQL: the one that acked the click dies, another approves once, well within a minute."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several replicas need PostgreSQL; SQLite refuses a second process (tests/test_cli.py)")
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    proxy = HoldingProxy(sandbox.url)
    task_id = sandbox.add_task("prospect_search", "Find VPs of Sales in fintech")["id"]
    ports = [free_port() for _ in range(3)]
    env = clean_env(**bot_env(sandbox, slack, database_url, POLL_INTERVAL="0.5", LEXI_API_URL=proxy.url))
    replicas = [BotProcess(["run", "--host", "127.0.0.1"], {**env, "PORT": str(p)}, tmp_path) for p in ports]
    try:
        for replica, port in zip(replicas, ports):
            replica.wait_healthy(port)
        slack.wait_for(lambda: _card_text(slack, task_id), timeout=20)
        proxy.hold("/approve")
        assert _click(ports[0], slack, task_id, None).status_code == 200
        proxy.wait_arrived()
        replicas[0].kill()
        proxy.drop()
        slack.wait_for(lambda: "Approved by <@UALICE>" in _card_text(slack, task_id), timeout=30)
        assert _approvals(sandbox, task_id, 200) == 1 and _approvals(sandbox, task_id) == 1
        assert store.get(task_id).state in ("approved", "completed")
    finally:
        for replica in replicas:
            replica.stop()
        proxy.close()
        store.close()


@pytest.mark.slow
def test_restart_hands_back_only_what_leadlex_refuses(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """A resumed approval that LeadLex refuses (the task is still pending there) gets its buttons back, with why."""
    with _killed_after_the_ack(sandbox, slack, tmp_path) as (task_id, restart):
        sandbox.fail_next("POST", f"/v1/lexi/tasks/{task_id}/approve", status=403, code="permission_denied")
        restart()
        slack.wait_for(lambda: "Could not approve" in _card_text(slack, task_id), timeout=30)
        assert '"Approve"' in _card_text(slack, task_id)  # the buttons are back
        assert _approvals(sandbox, task_id, 200) == 0


def test_the_journal_is_not_left_open_by_a_decision_carried_out(bot: BotHarness, sandbox: Sandbox) -> None:
    """After a click is carried out, no decision is left for a keeper to resume (nothing is done twice)."""
    task_id = _announce(bot, sandbox)
    assert bot.click(blocks.APPROVE_ACTION, task_id).status_code == 200
    bot.settle()
    assert bot.runtime.decider.leases.held() == []
    other = Leases(bot.store, owner="another-process", orphans=True)
    assert other.take_over() == []
    assert _approvals(sandbox, task_id) == 1


def test_a_dead_process_decision_is_taken_over_by_exactly_one_process(database_url: str) -> None:
    """Five live processes sweep at once for a decision whose lease ran out: one takes it; a live lease is untouched."""
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    try:
        dead = Leases(store, owner="dead", lease=timedelta(seconds=-1))
        alive = Leases(store, owner="alive", lease=timedelta(minutes=5))
        lost = dead.accept("t1", actor="UALICE", action="approve", surface="button")
        alive.accept("t2", actor="UBOB", action="approve", surface="button")
        sweepers = [Leases(store, owner=f"p{n}") for n in range(5)]
        barrier = threading.Barrier(len(sweepers))
        taken: list[int] = []

        def sweep(leases: Leases) -> None:
            barrier.wait(timeout=10)
            taken.extend(d.id for d in leases.take_over())

        threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert taken == [lost.id]
        assert store.decision(lost.id).attempts == 2 and store.decision(lost.id).resumed
    finally:
        store.close()
