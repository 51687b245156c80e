"""Issue 15, many workspaces on many replicas: changes seen everywhere, tokens refreshed by polls, one keeper.

Two replicas are two multi-workspace bots (each its own Bolt app over HTTP, its own Tenants) on one PostgreSQL
database with one encryption key, installed through the Slack stand-in and connected to the LeadLex sandbox.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from bot import tenants as tenants_module
from bot.core.keeper import Leases
from bot.core.schedule import Polled, Scheduler
from bot.db.vault import generate_key
from bot.db.workspaces import Workspace, Workspaces
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_workspace import SandboxWorkspace
from bot.dev.standin import payloads
from bot.dev.standin.records import Message
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.models import TaskState
from bot.slack import blocks
from bot.tenants import RECHECK, Tenants
from tests.support.harness import CHANNEL, SIGNING_SECRET
from tests.support.installer import Installer, start_installer

A, B = "TAAA", "TBBB"
#: Replicas need a database they can share: PostgreSQL (SQLite is one process per file).
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@dataclass
class Replicas:
    """Two replicas of the multi-workspace bot on one database; A and B installed (at `one`) and connected."""

    one: Installer
    two: Installer
    lexi: dict[str, SandboxWorkspace]

    def tenants(self, replica: Installer) -> Tenants:
        """A replica's workspace runtimes."""
        assert replica.tenants is not None
        return replica.tenants

    @property
    def registry(self) -> Workspaces:
        """The registry (the same rows, whichever replica reads them)."""
        assert self.one.registry is not None
        return self.one.registry

    def channel(self, team: str, channel: str = CHANNEL) -> list[Message]:
        """The top-level messages of a workspace's channel."""
        workspace = self.one.slack.oauth.teams[team].workspace
        return [m for m in workspace.messages(channel) if m.thread_ts is None]

    def poll(self, replica: Installer, team: str) -> None:
        """One poll of a workspace at a replica, and the work it queued (its announcements included)."""
        tenants = self.tenants(replica)
        tenants.poll(self.registry.require(team))
        runtime = tenants.get(team)
        assert runtime is not None and runtime.drain(10), "the workspace's work did not settle in time"

    def click(self, replica: Installer, team: str, task_id: str) -> int:
        """Click Approve on a task's card at a replica, as UALICE of `team`; the HTTP status."""
        payload = payloads.build_block_action(
            action_id=blocks.APPROVE_ACTION,
            value=task_id,
            team_id=team,
            channel=CHANNEL,
            response_url=replica.slack.new_response_url(),
            trigger_id=replica.slack.new_trigger_id(),
        )
        body, content_type = payloads.encode_interactive(payload)
        headers = payloads.signed_request(SIGNING_SECRET, body, content_type)
        answer = replica.browser.post(f"{replica.url}/slack/events", content=body, headers=headers)
        assert replica.listeners.wait_idle(10), "Bolt's listeners did not finish in time"
        assert self.tenants(replica).workers.drain(10), "the workers did not settle in time"
        return answer.status_code


def _connect(bot: Installer, sandbox: Sandbox, teams: tuple[str, ...]) -> dict[str, SandboxWorkspace]:
    """Install each team over OAuth and connect it to a LeadLex workspace of its own, announcing in C0LEXI."""
    assert bot.registry is not None
    lexi = {}
    for team in teams:
        assert bot.install(team=team).status_code == 302
        lexi[team] = sandbox.add_workspace()
        bot.registry.connect_lexi(team, str(lexi[team].api_key), sandbox.url)
        bot.registry.configure(team, channel=CHANNEL)
    return lexi


@pytest.fixture
def replicas(slack: SlackStandIn, sandbox: Sandbox, database_url: str) -> Iterator[Replicas]:
    """Replicas one and two on one database, workspaces A and B installed and connected."""
    key = generate_key()
    for one in start_installer(slack, database_url, serve_tenants=True, encryption_key=key):
        for two in start_installer(slack, database_url, serve_tenants=True, encryption_key=key):
            yield Replicas(one, two, _connect(one, sandbox, (A, B)))


def _within(seconds: float, condition: Callable[[], object]) -> float:
    """Wait (bounded) until `condition` holds; how long it took. Fails after `seconds`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds:.1f} s"
        time.sleep(0.05)
    return time.monotonic() - start


@ON_POSTGRES
def test_a_channel_set_at_one_replica_is_used_by_the_other_within_seconds(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's channel changed at replica one (which forgets A): replica two announces in the new one within RECHECK."""
    monkeypatch.setattr(tenants_module, "RETIRE_GRACE", 0.0)  # the old runtime's clients close at the next round
    replicas.one.slack.oauth.teams[A].workspace.add_channel("C0NEW", "new-approvals", member=True)
    two = replicas.tenants(replicas.two)
    cached = two.get(A)
    assert cached is not None and cached.announcer.channel == CHANNEL
    replicas.registry.configure(A, channel="C0NEW")
    replicas.tenants(replicas.one).forget(A)  # what the setup modal does at the replica that served it
    _within(RECHECK + 1.0, lambda: (r := two.get(A)) is not None and r.announcer.channel == "C0NEW")
    replicas.lexi[A].add_task(description="After the move", task_id="task-moved")
    replicas.poll(replicas.two, A)
    (card,) = replicas.channel(A, "C0NEW")
    assert card.metadata["event_payload"]["task_id"] == "task-moved"
    assert replicas.channel(A) == []
    assert two.retiring() == 1
    two.keep_once()  # the replaced runtime had no decision in flight: its clients are closed
    assert two.retiring() == 0


@ON_POSTGRES
def test_an_uninstall_at_one_replica_stops_the_workspace_at_the_other(replicas: Replicas) -> None:
    """A uninstalled at replica one: replica two drops A within RECHECK, decides nothing for it, never polls it."""
    two = replicas.tenants(replicas.two)
    task_id = replicas.lexi[A].add_task(task_id="task-of-a")["id"]
    replicas.poll(replicas.two, A)
    assert replicas.channel(A) and two.get(A) is not None
    answer = replicas.one.post_event(payloads.build_app_uninstalled(team_id=A))
    assert answer.status_code == 200
    _within(RECHECK + 1.0, lambda: two.get(A) is None)
    assert replicas.click(replicas.two, A, task_id) in (200, 401)
    assert replicas.lexi[A].calls_to("POST", "/") == []
    assert replicas.lexi[A].task(task_id)["status"] == TaskState.PENDING  # type: ignore[index]
    polled: list[str] = []

    def poll(workspace: Workspace) -> Polled:
        """Replica two's poll, noting which workspace it was."""
        polled.append(workspace.id)
        return two.poll(workspace)

    scheduler = Scheduler(replicas.registry, poll)
    try:
        for _ in range(3):
            scheduler.tick(10)
    finally:
        scheduler.close(5)
    assert A not in polled and B in polled


@ON_POSTGRES
def test_a_decision_journaled_by_a_dead_replica_is_resumed_by_the_other(replicas: Replicas) -> None:
    """A click of A journaled by a replica that died before carrying it out: replica two's keeper approves it."""
    task_id = replicas.lexi[A].add_task(task_id="task-of-a")["id"]
    replicas.poll(replicas.one, A)
    dead = Leases(replicas.one.store.scoped(A), owner="a-replica-that-died", lease=timedelta(seconds=-1))
    dead.accept(task_id, actor="UALICE", action="approve", surface="button")
    two = replicas.tenants(replicas.two)  # nothing of A cached there: its keeper builds A's runtime itself
    stop = threading.Event()
    keeper = threading.Thread(target=two.keep, args=(stop,), daemon=True)
    keeper.start()
    try:
        _within(10, lambda: replicas.lexi[A].task(task_id)["status"] != TaskState.PENDING)  # type: ignore[index]
    finally:
        stop.set()
        keeper.join(5)
    assert replicas.lexi[A].task(task_id)["status"] == TaskState.APPROVED  # type: ignore[index]
    assert len(replicas.lexi[A].calls_to("POST", "/")) == 1


def _statements(tenants: Tenants) -> int:
    """How many SQL statements one round of the keeper runs."""
    count = 0

    def counted(*_: Any) -> None:
        """Count one statement."""
        nonlocal count
        count += 1

    engine = tenants.store.engine
    event.listen(engine, "before_cursor_execute", counted)
    try:
        tenants.keep_once()
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def test_the_keeper_s_queries_do_not_grow_with_the_workspaces_cached(
    slack: SlackStandIn, sandbox: Sandbox, database_url: str
) -> None:
    """One keeper round costs as many statements with two workspaces cached as with five (one decision in flight)."""
    for bot in start_installer(slack, database_url, serve_tenants=True):
        tenants = bot.tenants
        assert tenants is not None
        lexi = _connect(bot, sandbox, (A, B))
        for team in lexi:
            assert tenants.get(team) is not None
        runtime = tenants.get(A)
        assert runtime is not None
        task_id = lexi[A].add_task(task_id="task-of-a")["id"]
        held = runtime.decider.leases.accept(task_id, actor="UALICE", action="approve", surface="button")
        tenants.keep_once()  # the hourly prune
        few = _statements(tenants)
        lexi.update(_connect(bot, sandbox, ("TCCC", "TDDD", "TEEE")))
        for team in lexi:
            assert tenants.get(team) is not None
        many = _statements(tenants)
        assert few == many <= 3, (few, many)
        assert runtime.decider.leases.held() == [held.id]
        runtime.decider.close(held)


def test_a_poll_refreshes_an_expired_token_and_announces(
    slack: SlackStandIn, sandbox: Sandbox, database_url: str
) -> None:
    """Rotation on, A's token expired and no request since: the next poll refreshes it once and announces."""
    slack.oauth.token_rotation = True
    for bot in start_installer(slack, database_url, serve_tenants=True):
        assert bot.tenants is not None and bot.registry is not None
        lexi = _connect(bot, sandbox, (A,))
        first = bot.installation(A)
        assert first is not None and first.bot_refresh_token
        slack.expire_tokens(A)
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
        with bot.store.engine.begin() as conn:  # the store learns of the expiry as the clock would tell it
            for table in ("slack_installations", "slack_bots"):
                conn.execute(text(f"UPDATE {table} SET bot_token_expires_at = :at"), {"at": past})  # noqa: S608
        lexi[A].add_task(description="While nobody clicks", task_id="task-of-a")
        bot.tenants.poll(bot.registry.require(A))
        assert bot.tenants.workers.drain(10)
        runtime = bot.tenants.get(A)
        assert runtime is not None and runtime.drain(10)
        refreshes = [c for c in slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
        assert len(refreshes) == 1 and refreshes[0].ok
        workspace = slack.oauth.teams[A].workspace
        (card,) = [m for m in workspace.messages(CHANNEL) if m.thread_ts is None]
        assert card.metadata["event_payload"]["task_id"] == "task-of-a"
        assert [c.error for c in slack.calls_to("chat.postMessage")] == [None]  # never tried with the expired one
        second = bot.installation(A)
        assert second is not None and second.bot_token != first.bot_token
        assert runtime.slack.token == second.bot_token


def test_a_poll_claimed_just_before_a_change_uses_the_changed_workspace(
    slack: SlackStandIn, sandbox: Sandbox, database_url: str
) -> None:
    """A claim that read A's row before its channel changed still polls with the new channel (no stale rebuild)."""
    for bot in start_installer(slack, database_url, serve_tenants=True):
        assert bot.tenants is not None and bot.registry is not None
        lexi = _connect(bot, sandbox, (A,))
        slack.oauth.teams[A].workspace.add_channel("C0NEW", "new-approvals", member=True)
        claimed = bot.registry.require(A)  # as the Scheduler's claim read it
        bot.registry.configure(A, channel="C0NEW")
        bot.tenants.forget(A)
        current = bot.tenants.get(A)
        assert current is not None and current.announcer.channel == "C0NEW"
        lexi[A].add_task(task_id="task-of-a")
        bot.tenants.poll(claimed)
        assert bot.tenants.get(A) is current
        assert current.drain(10)
        workspace = slack.oauth.teams[A].workspace
        assert [m.metadata["event_payload"]["task_id"] for m in workspace.messages("C0NEW")] == ["task-of-a"]
