"""Issue 15, running for many workspaces: two Slack workspaces, each connected to its own LeadLex, never mixed.

Both are installed through the OAuth flow against the Slack stand-in, connected in the registry to their own
workspace of the LeadLex sandbox, and served by the real Bolt app over HTTP with requests signed as Slack signs them.
Both Slack workspaces have a channel C0LEXI and the same people, so that a leak could not hide behind different ids.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.keeper import Leases
from bot.core.schedule import Scheduler
from bot.db.vault import generate_key
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_webhooks import sign
from bot.dev.sandbox_workspace import SandboxWorkspace
from bot.dev.standin import payloads
from bot.dev.standin.oauth import CLIENT_ID, CLIENT_SECRET
from bot.dev.standin.records import Message
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.models import TaskState
from bot.slack import blocks
from bot.slack.unconnected import NOT_CONNECTED
from bot.tenants import Tenants
from tests.support.harness import CHANNEL, SIGNING_SECRET
from tests.support.installer import Installer, start_installer
from tests.support.process import BotProcess, clean_env, free_port

A, B = "TAAA", "TBBB"


@dataclass
class Pair:
    """The multi-workspace bot with workspaces A and B installed and connected, each to its own LeadLex workspace."""

    bot: Installer
    lexi: dict[str, SandboxWorkspace]

    @property
    def tenants(self) -> Tenants:
        """The workspaces' runtimes."""
        assert self.bot.tenants is not None
        return self.bot.tenants

    def poll(self, team: str) -> None:
        """Run one poll of a workspace now, and wait for what it queued (announcements included)."""
        registry = self.bot.registry
        assert registry is not None
        self.tenants.poll(registry.require(team))
        runtime = self.tenants.get(team)
        assert runtime is not None and runtime.drain(10), "the workspace's work did not settle in time"

    def channel(self, team: str) -> list[Message]:
        """The top-level messages of a workspace's C0LEXI, as its people see them."""
        workspace = self.bot.slack.oauth.teams[team].workspace
        return [m for m in workspace.messages(CHANNEL) if m.thread_ts is None]

    def post(self, body: bytes, content_type: str) -> httpx.Response:
        """POST a request to /slack/events signed as Slack signs it; wait for the listeners and the work they queued."""
        headers = payloads.signed_request(SIGNING_SECRET, body, content_type)
        answer = self.bot.browser.post(f"{self.bot.url}/slack/events", content=body, headers=headers)
        assert self.bot.listeners.wait_idle(10), "Bolt's listeners did not finish in time"
        assert self.tenants.workers.drain(10), "the workers did not settle in time"
        return answer

    def click(self, team: str, task_id: str) -> httpx.Response:
        """Click Approve on a card in a workspace's channel, as UALICE of that workspace."""
        payload = payloads.build_block_action(
            action_id=blocks.APPROVE_ACTION,
            value=task_id,
            team_id=team,
            channel=CHANNEL,
            response_url=self.bot.slack.new_response_url(),
            trigger_id=self.bot.slack.new_trigger_id(),
        )
        return self.post(*payloads.encode_interactive(payload))

    def command(self, team: str, text: str) -> httpx.Response:
        """Run `/lexi <text>` in a workspace, as UALICE of that workspace."""
        fields = payloads.build_slash_command(text=text, team_id=team, response_url=self.bot.slack.new_response_url())
        return self.post(*payloads.encode_command(fields))


@pytest.fixture
def pair(slack: SlackStandIn, sandbox: Sandbox, database_url: str) -> Iterator[Pair]:
    """Workspaces A and B installed over OAuth and connected, each to a LeadLex workspace of its own."""
    for running in start_installer(slack, database_url, serve_tenants=True):
        assert running.registry is not None
        lexi = {}
        for team in (A, B):
            assert running.install(team=team).status_code == 302
            lexi[team] = sandbox.add_workspace()
            running.registry.connect_lexi(team, str(lexi[team].api_key), sandbox.url)
            running.registry.configure(team, channel=CHANNEL)
        yield Pair(running, lexi)


def test_installs_are_recorded_in_the_registry(pair: Pair) -> None:
    """The OAuth install recorded each workspace in the registry, which the connection then completed."""
    registry = pair.bot.registry
    assert registry is not None
    assert {w.id: w.state for w in registry.all()} == {A: "connected", B: "connected"}
    assert registry.require(A).installer is not None


def test_a_task_is_announced_in_its_own_workspace_with_its_own_token(pair: Pair) -> None:
    """A task of A's LeadLex is announced in A's channel, with A's token only; B's channel stays empty."""
    task_id = pair.lexi[A].add_task(description="Find CFOs for A", task_id="task-of-a")["id"]
    pair.poll(A)
    pair.poll(B)
    (card,) = pair.channel(A)
    assert card.metadata["event_payload"]["task_id"] == task_id
    assert pair.channel(B) == []
    posts = pair.bot.slack.calls_to("chat.postMessage")
    assert posts and {call.team for call in posts} == {A}


def test_a_click_in_one_workspace_cannot_decide_the_other_s_task(pair: Pair) -> None:
    """A click signed for A on B's task id is refused, and B's task stays pending (and the other way round)."""
    of_a = pair.lexi[A].add_task(task_id="task-of-a")["id"]
    of_b = pair.lexi[B].add_task(task_id="task-of-b")["id"]
    pair.poll(A)
    pair.poll(B)
    assert pair.click(A, of_b).status_code == 200
    assert pair.click(B, of_a).status_code == 200
    assert pair.lexi[B].task(of_b)["status"] == TaskState.PENDING  # type: ignore[index]
    assert pair.lexi[A].task(of_a)["status"] == TaskState.PENDING  # type: ignore[index]
    for team, task_id in ((A, of_a), (B, of_b)):
        row = pair.bot.store.scoped(team).get(task_id)
        assert row is not None and row.state == TaskState.PENDING
    assert pair.lexi[A].calls_to("POST", "/") == [] and pair.lexi[B].calls_to("POST", "/") == []
    assert pair.click(A, of_a).status_code == 200  # A's own click on A's task decides it
    pair.bot.slack.wait_for(lambda: pair.lexi[A].task(of_a)["status"] != TaskState.PENDING)  # type: ignore[index]
    assert pair.lexi[B].task(of_b)["status"] == TaskState.PENDING  # type: ignore[index]


def test_task_list_of_one_workspace_never_shows_the_other_s(pair: Pair) -> None:
    """`/lexi tasks` in A lists A's LeadLex tasks and never one of B's."""
    pair.lexi[A].add_task(description="Only for A", task_id="task-of-a")
    pair.lexi[B].add_task(description="Only for B", task_id="task-of-b")
    before = len(pair.bot.slack.responses)
    assert pair.command(A, "tasks").status_code == 200
    said = json.dumps([r.body for r in pair.bot.slack.responses[before:]])
    assert "task-of-a" in said and "Only for A" in said
    assert "task-of-b" not in said and "Only for B" not in said


def _delivery(task_id: str) -> bytes:
    """A task.created delivery body as LeadLex signs it."""
    task = {
        "id": task_id,
        "type": "prospect_search",
        "status": "pending",
        "description": "From a webhook",
        "created_at": datetime.now(UTC).isoformat(),
        "metadata": {},
    }
    envelope = {"event": "task.created", "timestamp": datetime.now(UTC).isoformat(), "data": {"task": task}}
    return json.dumps(envelope).encode()


def _deliver(pair: Pair, path: str, secret: str, body: bytes) -> httpx.Response:
    """POST a delivery to /lexi/webhooks/<path>, signed with `secret`."""
    headers = {
        "Content-Type": "application/json",
        "X-LeadLex-Signature": sign(secret, body),
        "X-LeadLex-Delivery-ID": str(time.time()),
    }
    return pair.bot.browser.post(f"{pair.bot.url}/lexi/webhooks/{path}", content=body, headers=headers)


def test_webhooks_are_verified_with_their_own_workspace_s_secret(pair: Pair) -> None:
    """A's delivery path refuses B's secret (401) and accepts A's; an unknown path is a 404 like any other."""
    registry = pair.bot.registry
    assert registry is not None
    secrets = {team: f"whsec_{team}_" + "s" * 32 for team in (A, B)}
    path_a = registry.set_webhook(A, "wh_a", secrets[A])
    registry.set_webhook(B, "wh_b", secrets[B])
    for team in (A, B):
        pair.tenants.forget(team)  # their configuration changed
    body = _delivery("hooked-a")
    assert _deliver(pair, path_a, secrets[B], body).status_code == 401
    answer = _deliver(pair, path_a, secrets[A], body)
    assert answer.status_code == 200, answer.text
    pair.bot.slack.wait_for(lambda: pair.channel(A), timeout=10)
    assert pair.channel(B) == []
    unknown = _deliver(pair, "no-such-path-" + "x" * 30, secrets[A], body)
    elsewhere = pair.bot.browser.post(f"{pair.bot.url}/no/such/path", content=body)
    assert unknown.status_code == elsewhere.status_code == 404
    assert unknown.content == elsewhere.content
    assert pair.bot.browser.get(f"{pair.bot.url}/lexi/webhooks/{path_a}").status_code == 404


def test_an_unconnected_workspace_is_told_an_admin_connects_it(pair: Pair) -> None:
    """A workspace installed but not connected to LeadLex answers /lexi with the "not connected" text, never a 5xx."""
    assert pair.bot.install(team="TCCC").status_code == 302
    answer = pair.command("TCCC", "tasks")
    assert answer.status_code == 200
    assert answer.json()["text"] == NOT_CONNECTED
    assert answer.json()["response_type"] == "ephemeral"
    assert pair.click("TCCC", "task-of-a").status_code == 200
    assert pair.tenants.get("TCCC") is None


def _published(pair: Pair, team: str) -> list[dict[str, Any]]:
    """The Home views published with a workspace's token, in order."""
    calls = pair.bot.slack.calls_to("views.publish")
    return [
        json.loads(c.args["view"]) if isinstance(c.args["view"], str) else c.args["view"]
        for c in calls
        if c.ok and c.team == team
    ]


def test_home_is_the_workspace_s_own_or_the_welcome_until_connected(pair: Pair) -> None:
    """A connected workspace's Home is the bot's Home, published with its token; an unconnected one gets the welcome."""
    pair.lexi[A].add_task(description="Only for A", task_id="task-of-a")
    pair.poll(A)
    assert pair.bot.install(team="TCCC").status_code == 302
    for team in (A, "TCCC"):
        pair.post(*payloads.encode_event(payloads.build_app_home_opened(team_id=team)))
    pair.bot.slack.wait_for(lambda: _published(pair, A) and _published(pair, "TCCC"), timeout=10)
    assert "not connected to LeadLex yet" not in json.dumps(_published(pair, A))
    (welcome,) = _published(pair, "TCCC")
    assert "not connected to LeadLex yet" in json.dumps(welcome)
    assert _published(pair, B) == []


def test_a_changed_configuration_is_served_once_forgotten(pair: Pair) -> None:
    """After `configure` and `forget`, the workspace's next request is served with its new channel."""
    pair.bot.slack.oauth.teams[A].workspace.add_channel("C0NEW", "new-approvals", member=True)
    registry = pair.bot.registry
    assert registry is not None
    before = pair.tenants.get(A)
    registry.configure(A, channel="C0NEW")
    pair.tenants.forget(A)
    after = pair.tenants.get(A)
    assert after is not None and after is not before
    assert after.announcer.channel == "C0NEW" and after.settings.slack_channel == "C0NEW"


def test_an_org_wide_install_is_served_by_its_organization(pair: Pair, sandbox: Sandbox) -> None:
    """An org-wide install is one workspace (the org id): a workspace of the org is served with the org's runtime."""
    registry = pair.bot.registry
    assert registry is not None
    assert pair.bot.install(team="E0ORG").status_code == 302
    org_lexi = sandbox.add_workspace()
    org_lexi.add_task(description="Only for the org", task_id="task-of-org")
    registry.connect_lexi("E0ORG", str(org_lexi.api_key), sandbox.url)
    registry.configure("E0ORG", channel=CHANNEL)
    fields = payloads.build_slash_command(
        text="tasks", team_id="T0INORG", response_url=pair.bot.slack.new_response_url()
    )
    fields.update(enterprise_id="E0ORG", is_enterprise_install="true")
    before = len(pair.bot.slack.responses)
    assert pair.post(*payloads.encode_command(fields)).status_code == 200
    said = json.dumps([r.body for r in pair.bot.slack.responses[before:]])
    assert "task-of-org" in said and "task-of-a" not in said


def test_the_scheduler_polls_each_due_workspace_and_plans_its_next_poll(pair: Pair) -> None:
    """`lexi-bot run`'s Scheduler, polling through Tenants.poll, announces each workspace's tasks in its own channel.

    It records when each is due next.
    """
    registry = pair.bot.registry
    assert registry is not None
    for team in (A, B):
        pair.lexi[team].add_task(description=f"Only for {team}", task_id=f"task-of-{team}")
    stop = threading.Event()
    thread = threading.Thread(target=Scheduler(registry, pair.tenants.poll).run, args=(stop,), daemon=True)
    thread.start()
    try:
        pair.bot.slack.wait_for(lambda: pair.channel(A) and pair.channel(B), timeout=10)
        pair.bot.slack.wait_for(lambda: all(registry.require(t).next_poll_at for t in (A, B)), timeout=10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    for team in (A, B):
        (card,) = pair.channel(team)
        assert card.metadata["event_payload"]["task_id"] == f"task-of-{team}"
        workspace = registry.require(team)
        assert workspace.last_poll_at is not None and workspace.last_error is None


def test_run_serves_many_workspaces_and_stops_on_sigterm(tmp_path: Path, slack: SlackStandIn) -> None:
    """`lexi-bot run` in multi-workspace mode migrates, serves /healthz, and exits 0 on SIGTERM."""
    port = free_port()
    env = clean_env(
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=CLIENT_SECRET,
        LEXI_ENCRYPTION_KEYS=generate_key(),
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'multi.db'}",
        PORT=str(port),
    )
    proc = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
    try:
        proc.wait_healthy(port)
        health: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        assert health["ok"] is True
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output
        assert "Traceback" not in proc.output and "listening" in proc.output
    finally:
        proc.stop()


def test_status_says_it_serves_the_workspace_in_multi_workspace_mode(pair: Pair) -> None:
    """`/lexi status` in a connected workspace names multi-workspace mode, not a bare "HTTP"."""
    before = len(pair.bot.slack.responses)
    answer = pair.command(A, "status")
    assert answer.status_code == 200
    said = answer.text + json.dumps([r.body for r in pair.bot.slack.responses[before:]])
    assert "serving this workspace in multi-workspace mode" in said


def test_a_connected_workspace_gets_its_own_webhook_and_its_tasks_arrive_through_it(pair: Pair) -> None:
    """With LEXI_PUBLIC_URL, a connected workspace's webhook is registered with its own key, at its own path.

    A task created in its LeadLex workspace is then announced in its channel without a poll; the other workspace's
    LeadLex has no webhook, and registering again does nothing.
    """
    pair.tenants.settings = pair.tenants.settings.model_copy(update={"public_url": pair.bot.url})
    pair.lexi[A].allow_private_webhooks = True  # a loopback URL, which real LeadLex refuses
    registry = pair.bot.registry
    assert registry is not None
    pair.tenants.changed(A)  # as after the setup form: the registration runs on the general queue
    assert pair.tenants.workers.drain(10)
    workspace = registry.require(A)
    assert workspace.has_webhook_secret and workspace.webhook_id
    hooks = pair.lexi[A].calls_to("POST", "/v1/webhooks")
    assert len(hooks) == 1 and hooks[0].body["url"] == f"{pair.bot.url}/lexi/webhooks/{workspace.webhook_path}"
    assert pair.lexi[B].calls_to("POST", "/v1/webhooks") == []
    assert pair.tenants.ensure_webhook(A) is False  # it has one
    pair.lexi[A].add_task(description="Arrives by webhook", task_id="hooked-task")
    pair.bot.slack.wait_for(lambda: pair.channel(A), timeout=10)  # no poll: the delivery announced it
    (card,) = pair.channel(A)
    assert card.metadata["event_payload"]["task_id"] == "hooked-task"
    assert pair.channel(B) == []


def _with_webhook(pair: Pair, *lexis: SandboxWorkspace) -> None:
    """LEXI_PUBLIC_URL set to the bot's loopback address (which these LeadLex workspaces accept), A's webhook made."""
    pair.tenants.settings = pair.tenants.settings.model_copy(update={"public_url": pair.bot.url})
    for lexi in lexis:
        lexi.allow_private_webhooks = True
    pair.tenants.changed(A)
    assert pair.tenants.workers.drain(10)


def test_a_key_of_another_leadlex_workspace_moves_the_webhook_there(pair: Pair, sandbox: Sandbox) -> None:
    """A's key replaced by one of another LeadLex workspace: its webhook is registered there, the old one refused.

    The old LeadLex workspace's deliveries are signed with a secret the bot no longer keeps: 401, nothing announced.
    """
    other = sandbox.add_workspace()
    _with_webhook(pair, pair.lexi[A], other)
    registry = pair.bot.registry
    assert registry is not None
    first = registry.require(A)
    assert first.webhook_id
    registry.connect_lexi(A, str(other.api_key), sandbox.url)
    assert not registry.require(A).has_webhook_secret  # forgotten with the old key
    pair.tenants.changed(A)
    assert pair.tenants.workers.drain(10)
    moved = registry.require(A)
    assert moved.has_webhook_secret and moved.webhook_id and moved.webhook_id != first.webhook_id
    (hook,) = other.calls_to("POST", "/v1/webhooks")
    assert hook.body["url"] == f"{pair.bot.url}/lexi/webhooks/{first.webhook_path}"
    other.add_task(description="From the new LeadLex", task_id="new-side")
    pair.bot.slack.wait_for(lambda: pair.channel(A), timeout=10)  # by webhook: no poll ran
    pair.lexi[A].add_task(description="From the old LeadLex", task_id="old-side")
    pair.bot.slack.wait_for(lambda: any(d.event == "task.created" for d in pair.lexi[A].deliveries), timeout=10)
    assert {d.status for d in pair.lexi[A].deliveries if d.event == "task.created"} == {401}
    assert [m.metadata["event_payload"]["task_id"] for m in pair.channel(A)] == ["new-side"]


def test_the_same_key_again_keeps_the_webhook(pair: Pair, sandbox: Sandbox) -> None:
    """The setup form saved again with the same key and URL: the webhook and its secret stay; nothing is registered."""
    _with_webhook(pair, pair.lexi[A])
    registry = pair.bot.registry
    assert registry is not None
    before = registry.require(A)
    registry.connect_lexi(A, f"  {pair.lexi[A].api_key} ", sandbox.url)
    pair.tenants.changed(A)
    assert pair.tenants.workers.drain(10)
    after = registry.require(A)
    assert after.has_webhook_secret and after.webhook_id == before.webhook_id
    assert len(pair.lexi[A].calls_to("POST", "/v1/webhooks")) == 1


def test_a_new_key_of_the_same_leadlex_workspace_replaces_its_webhook(pair: Pair, sandbox: Sandbox) -> None:
    """A rotated key of the same LeadLex workspace: its old webhook is replaced, deliveries use the new secret.

    LeadLex refuses a second webhook at the URL (409), so the one registered with the old key is deleted and the
    webhook registered again.
    """
    _with_webhook(pair, pair.lexi[A])
    registry = pair.bot.registry
    assert registry is not None
    first = registry.require(A)
    rotated = pair.lexi[A].add_key()
    registry.connect_lexi(A, rotated, sandbox.url)
    pair.tenants.changed(A)
    assert pair.tenants.workers.drain(10)
    second = registry.require(A)
    assert second.has_webhook_secret and second.webhook_id and second.webhook_id != first.webhook_id
    posts = pair.lexi[A].calls_to("POST", "/v1/webhooks")
    assert [c.status for c in posts][1] == 409 and len(posts) == 3
    assert [c.path for c in pair.lexi[A].calls_to("DELETE", "/v1/webhooks/")] == [f"/v1/webhooks/{first.webhook_id}"]
    pair.lexi[A].add_task(description="After the rotation", task_id="rotated-task")
    pair.bot.slack.wait_for(lambda: pair.channel(A), timeout=10)
    assert {d.status for d in pair.lexi[A].deliveries if d.event == "task.created"} == {200}


def test_without_a_public_url_no_webhook_is_registered(pair: Pair) -> None:
    """Without LEXI_PUBLIC_URL the workspace is polled: nothing is registered with LeadLex."""
    assert pair.tenants.settings.public_url is None
    pair.tenants.changed(A)
    assert pair.tenants.workers.drain(10)
    assert pair.tenants.ensure_webhook(A) is False
    assert pair.lexi[A].calls_to("POST", "/v1/webhooks") == []


def test_the_assistant_pane_works_in_each_workspace_with_its_own_token(pair: Pair) -> None:
    """Opening the assistant pane in workspace A greets and suggests prompts there, with A's token; B sees nothing."""
    workspace_a = pair.bot.slack.oauth.teams[A].workspace
    parent = workspace_a.open_assistant_thread("UALICE")
    envelope = payloads.build_assistant_thread_started(
        user="UALICE", channel=parent.channel, thread_ts=parent.ts, context_channel=CHANNEL, team_id=A
    )
    assert pair.post(*payloads.encode_event(envelope)).status_code == 200
    prompts = [u for u in workspace_a.assistant.updates if u.kind == "prompts" and u.thread_ts == parent.ts]
    assert len(prompts) == 1
    workspace_b = pair.bot.slack.oauth.teams[B].workspace
    assert workspace_b.assistant.updates == []


def test_a_mention_is_answered_in_its_workspace_by_its_own_lexi(pair: Pair) -> None:
    """A mention of the bot in workspace A is answered in a thread there, by A's LeadLex; B's LeadLex is not asked."""
    workspace_a = pair.bot.slack.oauth.teams[A].workspace
    text = f"<@{workspace_a.bot_user_id}> who are you?"
    mention = Message(CHANNEL, workspace_a.next_ts(), text, user="UALICE")
    workspace_a.store(mention)
    envelope = payloads.build_app_mention(
        user="UALICE", channel=CHANNEL, text=text, ts=mention.ts, team_id=A, bot_user_id=workspace_a.bot_user_id
    )
    assert pair.post(*payloads.encode_event(envelope)).status_code == 200
    (call,) = pair.lexi[A].calls_to("POST", "/v1/lexi/chat")
    assert call.body["message"] == "who are you?"
    assert pair.lexi[B].calls_to("POST", "/v1/lexi/chat") == []
    (reply,) = workspace_a.thread(CHANNEL, mention.ts)
    assert reply.user == workspace_a.bot_user_id and reply.text.startswith("*Lexi:*")


def test_the_keeper_resumes_a_dead_replica_s_decision_in_its_own_workspace(pair: Pair) -> None:
    """A decision journaled in A by a replica that died is carried out by the keeper in A's LeadLex, not B's."""
    task_id = pair.lexi[A].add_task(description="Find CFOs for A", task_id="task-of-a")["id"]
    pair.poll(A)
    pair.poll(B)
    runtime = pair.tenants.get(A)
    assert runtime is not None
    Leases(runtime.store, owner="a-dead-replica", lease=timedelta(seconds=-1)).accept(
        task_id, actor="UALICE", action="approve", surface="button"
    )
    stop = threading.Event()
    keeper = threading.Thread(target=pair.tenants.keep, args=(stop,), daemon=True)
    keeper.start()
    try:
        deadline = time.monotonic() + 10
        while pair.lexi[A].task(task_id)["status"] != "approved" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        keeper.join(5)
    assert pair.lexi[A].task(task_id)["status"] == "approved"
    assert pair.lexi[B].calls_to("POST", "/v1/lexi/tasks") == []
