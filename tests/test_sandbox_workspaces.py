"""Issue 15: the LeadLex sandbox serves many workspaces, each alone with its keys, tasks, budget and webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.dev.sandbox import PLANS, Sandbox, SandboxWorkspace

ROOT = Path(__file__).resolve().parent.parent
#: 2026-03-10 12:00:10 UTC: ten seconds into a minute, far from midnight.
NOON = 1_773_144_010.0


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: float = NOON

    def __call__(self) -> float:
        """Return the current fake time."""
        return self.now


@dataclass
class FakeReceiver:
    """A loopback webhook receiver recording each request (path, headers, body)."""

    base: str
    received: queue.Queue[tuple[str, dict[str, str], bytes]] = field(default_factory=queue.Queue)

    def url(self, path: str) -> str:
        """The receiver's URL for `path`."""
        return f"{self.base}{path}"

    def next(self, timeout: float = 5.0) -> tuple[str, dict[str, str], bytes]:
        """The next request received, waiting at most `timeout` seconds."""
        return self.received.get(timeout=timeout)


class _Receiver(ThreadingHTTPServer):
    """A threaded HTTP server whose listen queue holds every courier's connection at once (the default holds 5)."""

    daemon_threads = True
    request_queue_size = 64


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox without sample tasks."""
    with Sandbox(seed=False) as server:
        yield server


@pytest.fixture
def fake_receiver() -> Iterator[FakeReceiver]:
    """A loopback webhook receiver in a thread, stopped afterwards."""
    holder: list[FakeReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            holder[0].received.put((self.path, headers, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = _Receiver(("127.0.0.1", 0), Handler)
    holder.append(FakeReceiver(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def build_client(sandbox: Sandbox, key: str | None) -> httpx.Client:
    """An httpx client for the sandbox, authenticated with `key`."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=sandbox.url, headers=headers, timeout=5.0, trust_env=False)


def error_code(response: httpx.Response) -> str:
    """The code of a LeadLex error envelope."""
    return str(response.json()["error"]["code"])


def pending_ids(http: httpx.Client) -> list[str]:
    """The ids of the pending tasks the client's key lists."""
    response = http.get("/v1/lexi/tasks")
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()["data"]["tasks"]]


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `predicate` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"condition not met within {timeout} s")


# --- isolation ---


def test_a_key_sees_only_its_own_workspaces_tasks(sandbox: Sandbox) -> None:
    """Each key lists its workspace's tasks only; the default workspace is the sandbox itself."""
    a, b = sandbox.add_workspace(), sandbox.add_workspace()
    mine, theirs, default = a.add_task(description="A's"), b.add_task(description="B's"), sandbox.add_task()
    with build_client(sandbox, a.api_key) as as_a, build_client(sandbox, b.api_key) as as_b:
        assert pending_ids(as_a) == [mine["id"]]
        assert pending_ids(as_b) == [theirs["id"]]
    with build_client(sandbox, sandbox.api_key) as as_default:
        assert pending_ids(as_default) == [default["id"]]
    assert [w.id for w in sandbox.workspaces] == [sandbox.id, a.id, b.id]
    assert len({sandbox.api_key, a.api_key, b.api_key, a.no_lexi_key, b.no_lexi_key}) == 5


def test_a_key_can_never_approve_or_dismiss_another_workspaces_task(sandbox: Sandbox) -> None:
    """B's task ids are unknown to A's key: approve and dismiss answer 404 not_found and B's task stays pending."""
    a, b = sandbox.add_workspace(), sandbox.add_workspace()
    theirs = b.add_task()["id"]
    default = sandbox.add_task()["id"]
    with build_client(sandbox, a.api_key) as as_a:
        for task_id in (theirs, default):
            for action in ("approve", "dismiss"):
                response = as_a.post(f"/v1/lexi/tasks/{task_id}/{action}", json={"reason": "duplicate"})
                assert (response.status_code, error_code(response)) == (404, "not_found"), (task_id, action)
        assert theirs not in json.dumps(as_a.get("/v1/lexi/tasks", params={"status": "pending"}).json())
    assert b.task(theirs)["status"] == "pending"  # type: ignore[index]
    assert sandbox.task(default)["status"] == "pending"  # type: ignore[index]
    with build_client(sandbox, b.api_key) as as_b:
        assert as_b.post(f"/v1/lexi/tasks/{theirs}/approve").status_code == 200
    assert b.task(theirs)["status"] == "approved"  # type: ignore[index]
    assert a.task(theirs) is None


def test_the_same_task_id_in_two_workspaces_is_two_tasks(sandbox: Sandbox) -> None:
    """Ids are per workspace: deciding A's task "t-1" leaves B's "t-1" pending."""
    a, b = sandbox.add_workspace(), sandbox.add_workspace()
    a.add_task(task_id="t-1")
    b.add_task(task_id="t-1")
    with build_client(sandbox, a.api_key) as as_a:
        assert as_a.post("/v1/lexi/tasks/t-1/dismiss").status_code == 200
    assert (a.task("t-1") or {})["status"] == "dismissed" and (b.task("t-1") or {})["status"] == "pending"


def test_webhooks_are_per_workspace(sandbox: Sandbox) -> None:
    """A key lists, changes and deletes its own workspace's webhooks only; another's id is 404."""
    sandbox.allow_private_webhooks = True
    a, b = sandbox.add_workspace(), sandbox.add_workspace()
    body = {"url": "https://example.com/hook", "events": ["task.created"]}
    with build_client(sandbox, a.api_key) as as_a, build_client(sandbox, b.api_key) as as_b:
        hook_a = as_a.post("/v1/webhooks", json=body).json()["data"]["webhook"]
        assert as_b.post("/v1/webhooks", json=body).status_code == 201  # the same URL in another workspace is fine
        assert [h["id"] for h in as_a.get("/v1/webhooks").json()["data"]["webhooks"]] == [hook_a["id"]]
        assert hook_a["id"] not in json.dumps(as_b.get("/v1/webhooks").json())
        assert as_b.patch(f"/v1/webhooks/{hook_a['id']}", json={"active": False}).status_code == 404
        assert as_b.delete(f"/v1/webhooks/{hook_a['id']}").status_code == 404
        assert as_a.get("/v1/webhooks").json()["data"]["webhooks"][0]["active"] is True


def test_each_workspaces_events_go_to_its_own_webhooks_signed_with_their_secrets(
    sandbox: Sandbox, fake_receiver: FakeReceiver
) -> None:
    """A task event of A reaches A's webhook only, signed with A's secret, with A's workspace id in the envelope."""
    sandbox.allow_private_webhooks = True
    a, b = sandbox.add_workspace(), sandbox.add_workspace()
    secrets = {}
    for name, workspace in (("a", a), ("b", b)):
        with build_client(sandbox, workspace.api_key) as http:
            hook = {"url": fake_receiver.url(f"/{name}"), "events": ["task.created", "task.approved"]}
            secrets[f"/{name}"] = http.post("/v1/webhooks", json=hook).json()["data"]["webhook"]["secret"]
    task = a.add_task()
    path, headers, body = fake_receiver.next()
    assert path == "/a"
    expected = "sha256=" + hmac.new(secrets["/a"].encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-leadlex-signature"], expected)
    wrong = "sha256=" + hmac.new(secrets["/b"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-leadlex-signature"] != wrong
    envelope = json.loads(body)
    assert (envelope["workspace_id"], envelope["data"]["task"]["id"]) == (a.id, task["id"])
    with pytest.raises(queue.Empty):
        fake_receiver.next(timeout=0.3)
    b.add_task()
    path, headers, body = fake_receiver.next()
    assert path == "/b" and json.loads(body)["workspace_id"] == b.id
    assert (
        headers["x-leadlex-signature"] == "sha256=" + hmac.new(secrets["/b"].encode(), body, hashlib.sha256).hexdigest()
    )
    wait_for(lambda: len(a.deliveries) == 1 and len(b.deliveries) == 1)
    assert sandbox.deliveries == []


# --- budgets, keys, faults and logs ---


def test_each_workspace_has_its_own_plan_budget_and_headers() -> None:
    """A Starter workspace past its minute is refused while a Pro one and the default go on, each with its headers."""
    clock = FakeClock()
    with Sandbox(seed=False, clock=clock) as sandbox:
        starter, pro = sandbox.add_workspace(plan="starter"), sandbox.add_workspace(plan="pro")
        with build_client(sandbox, starter.api_key) as as_starter, build_client(sandbox, pro.api_key) as as_pro:
            statuses = [as_starter.get("/v1/lexi/tasks").status_code for _ in range(PLANS["starter"][1] + 1)]
            assert statuses == [200] * 10 + [429]
            last = as_starter.get("/v1/lexi/tasks")
            assert last.headers["x-ratelimit-limit"] == "100" and last.headers["x-ratelimit-remaining"] == "90"
            fine = as_pro.get("/v1/lexi/tasks")
            assert fine.status_code == 200
            assert (fine.headers["x-ratelimit-limit"], fine.headers["x-ratelimit-remaining"]) == ("1000", "999")
        assert (starter.remaining(), pro.remaining(), sandbox.remaining()) == (90, 999, sandbox.daily_limit)
        pro.set_remaining(0)
        with build_client(sandbox, pro.api_key) as as_pro, build_client(sandbox, sandbox.api_key) as as_default:
            assert as_pro.get("/v1/lexi/tasks").status_code == 429
            assert as_default.get("/v1/lexi/tasks").status_code == 200
        clock.now += 60
        with build_client(sandbox, starter.api_key) as as_starter:
            assert as_starter.get("/v1/lexi/tasks").status_code == 200


def test_limits_override_the_plan_and_an_unknown_plan_is_refused(sandbox: Sandbox) -> None:
    """daily_limit and minute_limit override a plan's; an unknown plan or a workspace id in use is a ValueError."""
    workspace = sandbox.add_workspace(plan="org", daily_limit=7)
    assert (workspace.daily_limit, workspace.minute_limit, workspace.plan) == (7, 200, "org")
    with pytest.raises(ValueError, match="unknown plan 'enterprise'"):
        sandbox.add_workspace(plan="enterprise")
    named = sandbox.add_workspace(workspace_id="ws_acme", no_lexi_key=None)
    assert (named.id, named.no_lexi_key) == ("ws_acme", None)
    with pytest.raises(ValueError, match="'ws_acme' already exists"):
        sandbox.add_workspace(workspace_id="ws_acme")


def test_keys_of_a_workspace_can_be_added_revoked_and_lack_lexi(sandbox: Sandbox) -> None:
    """A revoked key gets 401; an added key works; a workspace's no-Lexi key gets 403 on Lexi endpoints only."""
    workspace = sandbox.add_workspace()
    extra = workspace.add_key()
    assert sandbox.workspace_of(extra) is workspace and sandbox.workspace_of("wbk_nobody") is None
    with build_client(sandbox, workspace.no_lexi_key) as no_lexi:
        assert error_code(no_lexi.get("/v1/lexi/tasks")) == "insufficient_permissions"
        assert no_lexi.get("/v1/webhooks").status_code == 200
    workspace.revoke_key(workspace.api_key)
    with build_client(sandbox, workspace.api_key) as revoked, build_client(sandbox, extra) as fresh:
        response = revoked.get("/v1/lexi/tasks")
        assert (response.status_code, error_code(response)) == (401, "invalid_key")
        assert fresh.get("/v1/lexi/tasks").status_code == 200
    with pytest.raises(KeyError):
        workspace.revoke_key(sandbox.api_key)  # not this workspace's key
    with pytest.raises(ValueError, match="one workspace only"):
        sandbox.add_workspace(api_key=extra)


def test_faults_latency_and_call_logs_are_per_workspace(sandbox: Sandbox) -> None:
    """A fault or latency set on B touches only B's requests; each workspace logs its own calls."""
    a, b = sandbox.add_workspace(), sandbox.add_workspace()
    b.fail_next("GET", "/v1/lexi/tasks", status=503)
    with build_client(sandbox, a.api_key) as as_a, build_client(sandbox, b.api_key) as as_b:
        assert as_a.get("/v1/lexi/tasks").status_code == 200
        assert as_b.get("/v1/lexi/tasks").status_code == 503
        assert as_b.get("/v1/lexi/tasks").status_code == 200
        b.latency = 0.3
        started = time.monotonic()
        as_a.get("/v1/lexi/tasks")
        assert time.monotonic() - started < 0.3
    assert [c.status for c in a.calls_to("GET", "/v1/lexi/tasks")] == [200, 200]
    assert [c.status for c in b.calls_to("GET", "/v1/lexi/tasks")] == [503, 200]
    assert sandbox.calls == []
    with build_client(sandbox, "wbk_unknown") as stranger:
        assert stranger.get("/v1/lexi/tasks").status_code == 401
    assert [c.status for c in sandbox.calls] == [401]  # a request naming no workspace is the default's


def test_many_workspaces_at_once_each_see_only_their_own(sandbox: Sandbox) -> None:
    """300 concurrent requests from 100 workspaces' keys: every one answered, each with its workspace's task only."""
    workspaces = [sandbox.add_workspace(plan="pro") for _ in range(100)]
    owned = {w.api_key: w.add_task(description=f"task of {w.id}")["id"] for w in workspaces}

    # A client per thread, as lexi-bot's LeadLex client has: one client shared by 32 threads once failed in CI reading
    # a kept-alive connection (EBADF: its socket closed under it). All on one SSL context (~20 ms to build each).
    tls = httpx.create_ssl_context()
    local = threading.local()
    clients: list[httpx.Client] = []

    def list_as(key: str) -> tuple[str, int, list[str], str]:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=sandbox.url, timeout=5.0, trust_env=False, verify=tls)
            clients.append(local.http)
        response = local.http.get("/v1/lexi/tasks", headers={"Authorization": f"Bearer {key}"})
        ids = [task["id"] for task in response.json()["data"]["tasks"]]
        return key, response.status_code, ids, response.headers["x-ratelimit-remaining"]

    try:
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(list_as, [w.api_key for w in workspaces] * 3))
    finally:
        for client in clients:
            client.close()
    assert all(status == 200 and ids == [owned[key]] for key, status, ids, _ in answers)
    assert all(w.remaining() == 997 for w in workspaces)


# --- the background, at scale ---


def test_approved_tasks_complete_and_generated_tasks_appear_per_workspace(sandbox: Sandbox) -> None:
    """complete_after (inherited from the sandbox unless given) and generate_every work in added workspaces."""
    quick = sandbox.add_workspace(complete_after=0.1)
    busy = sandbox.add_workspace(generate_every=0.05)
    never = sandbox.add_workspace()
    task_id = quick.add_task()["id"]
    idle_id = never.add_task()["id"]
    with build_client(sandbox, quick.api_key) as http:
        assert http.post(f"/v1/lexi/tasks/{task_id}/approve").status_code == 200
    never.set_status(idle_id, "approved")
    wait_for(lambda: (quick.task(task_id) or {}).get("status") == "completed")
    wait_for(lambda: len(busy.tasks("pending")) >= 3)
    assert quick.tasks("pending") == [] and never.tasks("pending") == []
    assert (never.task(idle_id) or {})["status"] == "approved"  # the sandbox's complete_after is None


def test_a_thousand_workspaces_cost_no_thread_and_no_work_while_idle() -> None:
    """1,000 workspaces start without a thread of their own; idle, no job waits; work in one is done in time."""
    with Sandbox(seed=False, complete_after=0.2) as sandbox:
        threads = _sandbox_threads()
        started = time.monotonic()
        workspaces = [sandbox.add_workspace(plan="starter") for _ in range(1000)]
        assert time.monotonic() - started < 10.0
        assert _sandbox_threads() == threads
        timers = sandbox._services.timers  # noqa: SLF001 - the one shared background, inspected
        assert timers.pending() == 0
        last = workspaces[-1]
        task_id = last.add_task()["id"]
        with build_client(sandbox, last.api_key) as http:
            assert pending_ids(http) == [task_id]
            assert http.post(f"/v1/lexi/tasks/{task_id}/approve").status_code == 200
        assert timers.pending() == 1
        wait_for(lambda: (last.task(task_id) or {}).get("status") == "completed", timeout=5.0)
        assert timers.pending() == 0 and _sandbox_threads() == threads
        assert all(w.calls == [] for w in workspaces[:-1])


def test_webhook_deliveries_share_a_few_threads(sandbox: Sandbox, fake_receiver: FakeReceiver) -> None:
    """Fifty workspaces' events are delivered by the sandbox's shared couriers, not a thread per delivery."""
    sandbox.allow_private_webhooks = True
    workspaces = [sandbox.add_workspace() for _ in range(50)]
    for workspace in workspaces:
        with build_client(sandbox, workspace.api_key) as http:
            http.post("/v1/webhooks", json={"url": fake_receiver.url(f"/{workspace.id}"), "events": ["task.created"]})
    for workspace in workspaces:
        for _ in range(4):
            workspace.add_task()
    received = [fake_receiver.next() for _ in range(200)]
    assert len(_sandbox_threads()) <= 2 + 16  # HTTP, lifecycle, couriers
    paths = {path for path, _, _ in received}
    assert paths == {f"/{w.id}" for w in workspaces}
    wait_for(lambda: all(len(w.deliveries) == 4 for w in workspaces))
    assert {d.status for w in workspaces for d in w.deliveries} == {200}


def _sandbox_threads() -> list[str]:
    """The names of the sandboxes' own threads (request handlers of HTTP servers are not among them)."""
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("sandbox-")]


# --- command line ---


@pytest.mark.parametrize("command", [["bot.dev.sandbox"], ["bot.cli", "sandbox"]])
def test_command_line_serves_more_workspaces_and_prints_their_keys(command: list[str]) -> None:
    """`lexi-bot sandbox --workspaces 3 --plan pro` prints three lines of keys, each opening its own workspace."""
    process = subprocess.Popen(
        [sys.executable, "-m", *command, "--port", "0", "--workspaces", "3", "--plan", "pro"],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=10), "the sandbox printed nothing within 10 s"
        lines = [process.stdout.readline() for _ in range(8)]
        url = lines[0].rsplit(" ", 1)[-1].strip()
        assert "3 more workspaces" in lines[3] and lines[7].startswith("Press Ctrl-C")
        rows = [line.split() for line in lines[4:7]]
        assert all(len(row) == 3 and row[0].startswith("ws_") for row in rows)
        seen: set[str] = set()
        for _, key, no_lexi in rows:
            auth = {"Authorization": f"Bearer {key}"}
            response = httpx.get(f"{url}/v1/lexi/tasks", headers=auth, trust_env=False, timeout=5.0)
            assert response.status_code == 200 and response.headers["x-ratelimit-limit"] == "1000"
            ids = {task["id"] for task in response.json()["data"]["tasks"]}
            assert ids and not ids & seen  # sample tasks of its own
            seen |= ids
            denied = httpx.get(f"{url}/v1/lexi/tasks", headers={"Authorization": f"Bearer {no_lexi}"}, timeout=5.0)
            assert denied.status_code == 403
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0 and "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)


@pytest.mark.parametrize("count", ["-1", "many", "100001"])
def test_cli_refuses_a_bad_workspace_count(count: str) -> None:
    """`lexi-bot sandbox --workspaces` takes a whole number from 0 to 100,000 and says so otherwise."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", "--workspaces", count],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "is not a whole number from 0 to 100,000" in result.stderr and "Traceback" not in result.stderr


def test_workspace_class_is_exported_for_type_hints() -> None:
    """Callers can name the type add_workspace returns."""
    with Sandbox(seed=False) as sandbox:
        assert isinstance(sandbox.add_workspace(), SandboxWorkspace) and isinstance(sandbox, SandboxWorkspace)
