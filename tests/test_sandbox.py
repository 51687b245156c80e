"""The LeadLex sandbox, talked to over real loopback HTTP as the bot and its tests will talk to it."""

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
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.dev.sandbox import GATEWAY_PREFIX, Sandbox
from bot.lexi.models import KNOWN_TYPES, Task, parse_time

KEY = "wbk_sandbox"
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
    """A webhook receiver on loopback that records each request and answers with scripted statuses."""

    url: str
    received: queue.Queue[tuple[dict[str, str], bytes]] = field(default_factory=queue.Queue)
    statuses: list[int] = field(default_factory=list)

    def next(self, timeout: float = 5.0) -> tuple[dict[str, str], bytes]:
        """Return the next request received, waiting at most `timeout` seconds."""
        return self.received.get(timeout=timeout)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A hand-moved clock starting at NOON."""
    return FakeClock()


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with the given options on a free loopback port, and stop them all afterwards."""
    started: list[Sandbox] = []

    def start(**options: Any) -> Sandbox:
        sandbox = Sandbox(**options).start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A seeded sandbox with default options."""
    return start_sandbox()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An HTTP client for `sandbox` with the Lexi key."""
    with build_client(sandbox) as http:
        yield http


@pytest.fixture
def fake_receiver() -> Iterator[FakeReceiver]:
    """A loopback webhook receiver in a thread, stopped afterwards."""
    holder: list[FakeReceiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver = holder[0]
            receiver.received.put(({name.lower(): value for name, value in self.headers.items()}, body))
            self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(FakeReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/leadlex"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def build_client(sandbox: Sandbox, key: str | None = KEY, timeout: float = 5.0) -> httpx.Client:
    """Build an httpx client for the sandbox, authenticated with `key` (None: no Authorization header)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=sandbox.url, headers=headers, timeout=timeout, trust_env=False)


def error_code(response: httpx.Response) -> str:
    """Return the code of a LeadLex error envelope."""
    return str(response.json()["error"]["code"])


def status_of(sandbox: Sandbox, task_id: str) -> str | None:
    """Return a task's status in the sandbox, or None when it is gone."""
    task = sandbox.task(task_id)
    return task["status"] if task else None


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll `predicate` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"condition not met within {timeout} s")


# --- auth, paths and envelopes ---


def test_unknown_or_missing_key_is_401(sandbox: Sandbox) -> None:
    """A missing, malformed or unknown key gets 401 invalid_key in a JSON error envelope."""
    for key in (None, "wbk_unknown"):
        with build_client(sandbox, key) as http:
            response = http.get("/v1/lexi/tasks")
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/json"
            assert error_code(response) == "invalid_key"
    with build_client(sandbox, None) as http:
        assert http.get("/v1/lexi/tasks", headers={"Authorization": f"Basic {KEY}"}).status_code == 401


def test_key_without_lexi_permission_is_403_on_lexi_endpoints_only(sandbox: Sandbox) -> None:
    """The no-Lexi key gets 403 insufficient_permissions on /v1/lexi/*, yet may list webhooks."""
    with build_client(sandbox, "wbk_nolexi") as http:
        for response in (http.get("/v1/lexi/tasks"), http.post("/v1/lexi/chat", json={"message": "hi"})):
            assert response.status_code == 403
            assert error_code(response) == "insufficient_permissions"
        assert http.get("/v1/webhooks").status_code == 200


def test_gateway_prefix_serves_the_same_api(sandbox: Sandbox, client: httpx.Client) -> None:
    """Routes answer under the real gateway prefix too, and calls are recorded without it."""
    plain = client.get("/v1/lexi/tasks").json()
    prefixed = client.get(f"{GATEWAY_PREFIX}/v1/lexi/tasks").json()
    assert prefixed == plain
    assert [call.path for call in sandbox.calls_to("GET", "/v1/lexi/tasks")] == ["/v1/lexi/tasks"] * 2


def test_unknown_path_is_404(client: httpx.Client) -> None:
    """An unknown path or method gets 404 not_found."""
    for response in (client.get("/v1/nothing"), client.delete("/v1/lexi/tasks")):
        assert response.status_code == 404
        assert error_code(response) == "not_found"


def test_cors_preflight_is_answered_without_auth(client: httpx.Client) -> None:
    """A browser's OPTIONS preflight gets 204 with CORS headers, so a web demo can call the sandbox."""
    response = client.options("/v1/lexi/tasks", headers={"Authorization": ""})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in response.headers["access-control-allow-headers"]


# --- tasks ---


def test_seeded_tasks_are_pending_realistic_and_oldest_first(client: httpx.Client) -> None:
    """The sample data lists 5 to 7 pending tasks of all four known types, oldest first, each parseable."""
    tasks = client.get("/v1/lexi/tasks").json()["data"]["tasks"]
    assert 5 <= len(tasks) <= 7
    assert {task["type"] for task in tasks} == set(KNOWN_TYPES)
    assert all(task["status"] == "pending" for task in tasks)
    created = [task["created_at"] for task in tasks]
    assert all(parse_time(stamp) for stamp in created) and created == sorted(created)
    assert all(Task.from_api(task) is not None for task in tasks)
    search = next(task for task in tasks if task["type"] == "prospect_search")
    assert search["metadata"]["query"]["person_titles"] and search["metadata"]["per_page"] == 25


def test_list_filters_by_status_and_refuses_unknown_status(sandbox: Sandbox, client: httpx.Client) -> None:
    """`status` selects one status (pending by default); an unknown status is 400 validation_error."""
    approved = sandbox.add_task("campaign_start", "Start campaign 'X'", status="approved")
    listed = client.get("/v1/lexi/tasks", params={"status": "approved"}).json()["data"]["tasks"]
    assert [task["id"] for task in listed] == [approved["id"]]
    assert approved["id"] not in [task["id"] for task in client.get("/v1/lexi/tasks").json()["data"]["tasks"]]
    response = client.get("/v1/lexi/tasks", params={"status": "archived"})
    assert response.status_code == 400 and error_code(response) == "validation_error"


def test_approve_is_once_only_and_unknown_task_is_404(sandbox: Sandbox, client: httpx.Client) -> None:
    """Approving a pending task starts it; approving again is 400 naming the status; an unknown id is 404."""
    task = sandbox.add_task()
    response = client.post(f"/v1/lexi/tasks/{task['id']}/approve")
    assert response.status_code == 200
    expected = {"task_id": task["id"], "status": "approved", "execution_started": True}
    assert response.json() == {"data": expected}
    assert status_of(sandbox, task["id"]) == "approved"
    again = client.post(f"/v1/lexi/tasks/{task['id']}/approve")
    assert again.status_code == 400 and error_code(again) == "validation_error"
    assert "status: approved" in again.json()["error"]["message"]
    missing = client.post(f"/v1/lexi/tasks/{uuid.uuid4()}/approve")
    assert missing.status_code == 404 and error_code(missing) == "not_found"


def test_dismiss_records_the_reason_and_blocks_later_approval(sandbox: Sandbox, client: httpx.Client) -> None:
    """Dismiss stores its reason; a non-string reason is 400; a dismissed task can never be approved."""
    task = sandbox.add_task()
    bad = client.post(f"/v1/lexi/tasks/{task['id']}/dismiss", json={"reason": 42})
    assert bad.status_code == 400 and error_code(bad) == "validation_error"
    response = client.post(f"/v1/lexi/tasks/{task['id']}/dismiss", json={"reason": "duplicate"})
    assert response.json() == {"data": {"task_id": task["id"], "status": "dismissed"}}
    assert (sandbox.task(task["id"]) or {}).get("dismiss_reason") == "duplicate"
    approve = client.post(f"/v1/lexi/tasks/{task['id']}/approve")
    assert approve.status_code == 400 and "status: dismissed" in approve.json()["error"]["message"]
    assert client.post(f"/v1/lexi/tasks/{uuid.uuid4()}/dismiss").status_code == 404


def test_dismiss_without_body_is_fine(sandbox: Sandbox, client: httpx.Client) -> None:
    """The dismiss body is optional."""
    task = sandbox.add_task()
    assert client.post(f"/v1/lexi/tasks/{task['id']}/dismiss").status_code == 200
    assert "dismiss_reason" not in (sandbox.task(task["id"]) or {})
    assert status_of(sandbox, task["id"]) == "dismissed"


def test_malformed_json_body_is_400_not_500(sandbox: Sandbox, client: httpx.Client) -> None:
    """Broken or non-object JSON bodies get 400 validation_error from every endpoint that reads a body."""
    task = sandbox.add_task()
    for path, body in (
        (f"/v1/lexi/tasks/{task['id']}/dismiss", b"{not json"),
        ("/v1/lexi/chat", b"[1, 2]"),
        ("/v1/lexi/chat", b"\xff\xfe"),
        ("/v1/webhooks", b"nope"),
    ):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, path
        assert error_code(response) == "validation_error"


def test_dashboard_changes_and_removal_are_seen_by_the_api(sandbox: Sandbox, client: httpx.Client) -> None:
    """A task approved in the dashboard refuses approval; a removed task answers 404."""
    decided, removed = sandbox.add_task(), sandbox.add_task()
    assert sandbox.set_status(decided["id"], "approved")["status"] == "approved"
    assert client.post(f"/v1/lexi/tasks/{decided['id']}/approve").status_code == 400
    sandbox.remove_task(removed["id"])
    assert status_of(sandbox, removed["id"]) is None
    assert client.post(f"/v1/lexi/tasks/{removed['id']}/dismiss").status_code == 404
    with pytest.raises(ValueError, match="unknown status 'archived'"):
        sandbox.set_status(decided["id"], "archived")


def test_odd_and_raw_tasks_are_served_verbatim(start_sandbox: Callable[..., Sandbox]) -> None:
    """add_task keeps odd values such as null metadata, and add_raw_task serves any object as it is."""
    sandbox = start_sandbox(seed=False)
    # Malformed on purpose: the API may send null text fields.
    odd = sandbox.add_task("brand_new_type", description=None, metadata=None)  # type: ignore[arg-type]
    sandbox.add_raw_task({"id": 7, "description": "no type, no status"})
    sandbox.add_raw_task({"type": "prospect_search", "metadata": "not an object"})
    with build_client(sandbox) as http:
        tasks = http.get("/v1/lexi/tasks").json()["data"]["tasks"]
    assert tasks[0] == odd and odd["metadata"] is None and odd["description"] is None
    assert tasks[1:] == [
        {"id": 7, "description": "no type, no status"},
        {"type": "prospect_search", "metadata": "not an object"},
    ]
    assert sandbox.add_task()["metadata"] == {}


# --- chat ---


def test_chat_plain_answer_costs_one_credit(sandbox: Sandbox, client: httpx.Client) -> None:
    """A message that asks for nothing gets an answer, no task, and costs 1 credit."""
    before = sandbox.credits
    data = client.post("/v1/lexi/chat", json={"message": "Hello Lexi"}).json()["data"]
    assert data["task_id"] is None and data["requires_approval"] is False
    assert data["response"] and data["conversation_id"]
    assert sandbox.credits == before - 1


def test_chat_prospect_search_creates_a_pending_task(sandbox: Sandbox, client: httpx.Client) -> None:
    """Asking to find prospects costs 3 credits and creates a pending prospect search with that per_page."""
    before = sandbox.credits
    message = "Find 20 VPs of Sales at SaaS companies in Germany"
    data = client.post("/v1/lexi/chat", json={"message": message}).json()["data"]
    assert data["requires_approval"] is True
    pending = {task["id"]: task for task in client.get("/v1/lexi/tasks").json()["data"]["tasks"]}
    task = pending[data["task_id"]]
    assert task["type"] == "prospect_search" and task["metadata"]["per_page"] == 20
    assert task["metadata"]["query"]["person_locations"] == ["Germany"]
    assert sandbox.credits == before - 3


def test_chat_creates_each_kind_of_task(client: httpx.Client, sandbox: Sandbox) -> None:
    """Campaign, update and list requests create pending tasks of the matching types."""
    cases = {
        "Launch the campaign 'Spring webinar' to 300 contacts": "campaign_start",
        "Update 42 contacts and set lifecycle stage to customer": "contact_update",
        "Merge the list 'Webinar attendees'": "list_operation",
    }
    created = {}
    for message, kind in cases.items():
        data = client.post("/v1/lexi/chat", json={"message": message}).json()["data"]
        task = sandbox.task(data["task_id"])
        assert task is not None and task["type"] == kind and task["status"] == "pending", message
        created[kind] = task
    assert created["campaign_start"]["metadata"]["contact_count"] == 300
    update = created["contact_update"]["metadata"]
    assert update == {"contact_count": 42, "fields": {"lifecycle_stage": "customer"}}


def test_chat_keeps_conversations(client: httpx.Client) -> None:
    """The same conversation_id continues a conversation; an unknown one starts a new conversation."""
    first = client.post("/v1/lexi/chat", json={"message": "hi"}).json()["data"]
    assert "(message 1 in this conversation)" in first["response"]
    context = {"conversation_id": first["conversation_id"]}
    second = client.post("/v1/lexi/chat", json={"message": "and?", "context": context}).json()["data"]
    assert second["conversation_id"] == first["conversation_id"]
    assert "(message 2 in this conversation)" in second["response"]
    other = client.post("/v1/lexi/chat", json={"message": "hi", "context": {"conversation_id": "conv_x"}})
    assert other.json()["data"]["conversation_id"] not in ("conv_x", first["conversation_id"])


def test_chat_out_of_credits_is_402(start_sandbox: Callable[..., Sandbox]) -> None:
    """A message costing more credits than are left gets 402 insufficient_credits and costs nothing."""
    sandbox = start_sandbox(credits=2)
    with build_client(sandbox) as http:
        search = http.post("/v1/lexi/chat", json={"message": "find prospects"})
        assert search.status_code == 402 and error_code(search) == "insufficient_credits"
        assert sandbox.credits == 2
        assert http.post("/v1/lexi/chat", json={"message": "hi"}).status_code == 200
        assert http.post("/v1/lexi/chat", json={"message": "hi"}).status_code == 200
        assert http.post("/v1/lexi/chat", json={"message": "hi"}).status_code == 402


def test_chat_requires_a_message(client: httpx.Client) -> None:
    """A missing, empty or non-string message, or a non-object context, is 400 validation_error."""
    for body in ({}, {"message": "  "}, {"message": 5}, {"message": "hi", "context": "x"}):
        response = client.post("/v1/lexi/chat", json=body)
        assert response.status_code == 400 and error_code(response) == "validation_error", body


# --- rate limits ---


def test_every_response_carries_rate_limit_headers(
    start_sandbox: Callable[..., Sandbox], fake_clock: FakeClock
) -> None:
    """Success and error answers carry the daily limit, what remains, the next midnight and a request id."""
    sandbox = start_sandbox(daily_limit=100, clock=fake_clock)
    with build_client(sandbox) as http, build_client(sandbox, "wbk_bad") as stranger:
        responses = [http.get("/v1/lexi/tasks"), http.get("/v1/missing"), stranger.get("/v1/lexi/tasks")]
    midnight = (int(NOON // 86400) + 1) * 86400
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == "100"
        assert response.headers["x-ratelimit-reset"] == str(midnight)
        uuid.UUID(response.headers["x-request-id"])
    assert [response.headers["x-ratelimit-remaining"] for response in responses] == ["99", "98", "98"]
    assert len({response.headers["x-request-id"] for response in responses}) == 3


def test_spent_daily_budget_is_429_until_utc_midnight(
    start_sandbox: Callable[..., Sandbox], fake_clock: FakeClock
) -> None:
    """With the daily budget spent every call is 429 rate_limited, until the clock passes 00:00 UTC."""
    sandbox = start_sandbox(clock=fake_clock, daily_limit=10_000)  # an Org plan
    sandbox.set_remaining(1)
    with build_client(sandbox) as http:
        last = http.get("/v1/lexi/tasks")
        assert last.status_code == 200 and last.headers["x-ratelimit-remaining"] == "0"
        refused = http.get("/v1/lexi/tasks")
        assert refused.status_code == 429 and error_code(refused) == "rate_limited"
        fake_clock.now = float(refused.headers["x-ratelimit-reset"]) + 1
        fresh = http.get("/v1/lexi/tasks")
        assert fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining"] == "9999"


def test_per_minute_limit_is_429_with_retry_after(start_sandbox: Callable[..., Sandbox], fake_clock: FakeClock) -> None:
    """Past the per-minute limit calls get 429 with Retry-After up to the next minute, then pass again."""
    sandbox = start_sandbox(minute_limit=3, clock=fake_clock)
    with build_client(sandbox) as http:
        assert [http.get("/v1/lexi/tasks").status_code for _ in range(3)] == [200, 200, 200]
        refused = http.get("/v1/lexi/tasks")
        assert refused.status_code == 429 and error_code(refused) == "rate_limited"
        assert refused.headers["retry-after"] == "50"
        fake_clock.now += 50
        assert http.get("/v1/lexi/tasks").status_code == 200


# --- fault injection and observation ---


def test_fail_next_answers_the_matching_request_with_json(sandbox: Sandbox, client: httpx.Client) -> None:
    """An injected 500 hits only the next matching request, with the default internal_error code."""
    sandbox.fail_next("GET", "/v1/lexi/tasks")
    assert client.post("/v1/lexi/chat", json={"message": "hi"}).status_code == 200
    failed = client.get("/v1/lexi/tasks")
    assert failed.status_code == 500 and error_code(failed) == "internal_error"
    assert "x-ratelimit-remaining" in failed.headers
    assert client.get("/v1/lexi/tasks").status_code == 200
    assert [call.status for call in sandbox.calls_to("GET", "/v1/lexi/tasks")] == [500, 200]


def test_fail_next_can_send_a_gateway_html_page(sandbox: Sandbox, client: httpx.Client) -> None:
    """A fault with an HTML body is sent verbatim as text/html, as a gateway would."""
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    sandbox.fail_next(status=502, body=page)
    response = client.post(f"{GATEWAY_PREFIX}/v1/lexi/chat", json={"message": "hi"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == page


def test_fail_next_repeats_and_sends_retry_after(sandbox: Sandbox, client: httpx.Client) -> None:
    """A fault with times=2 and retry_after answers twice with that Retry-After and the status's code."""
    sandbox.fail_next(path_prefix="/v1/lexi", status=429, times=2, retry_after=1.5, headers={"X-Extra": "1"})
    for _ in range(2):
        response = client.get("/v1/lexi/tasks")
        assert response.status_code == 429 and error_code(response) == "rate_limited"
        assert response.headers["retry-after"] == "1.5" and response.headers["x-extra"] == "1"
    assert client.get("/v1/lexi/tasks").status_code == 200


def test_fail_next_delay_makes_the_client_time_out(sandbox: Sandbox) -> None:
    """A delayed fault outlasts a short client timeout, and the sandbox keeps serving afterwards."""
    sandbox.fail_next("GET", status=504, delay=1.0)
    with build_client(sandbox, timeout=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.get("/v1/lexi/tasks")
    with build_client(sandbox) as http:
        assert http.get("/v1/lexi/tasks").status_code == 200


def test_latency_slows_every_answer(sandbox: Sandbox, client: httpx.Client) -> None:
    """`latency` delays every request by that many seconds."""
    sandbox.latency = 0.2
    started = time.monotonic()
    assert client.get("/v1/lexi/tasks").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_calls_are_recorded_and_can_be_reset(sandbox: Sandbox, client: httpx.Client) -> None:
    """Every request is recorded with method, path, status and parsed body; reset_calls forgets them."""
    client.post("/v1/lexi/chat", json={"message": "hi"})
    client.get("/v1/lexi/tasks", params={"status": "failed"})
    chat, listing = sandbox.calls
    assert (chat.method, chat.path, chat.status) == ("POST", "/v1/lexi/chat", 200)
    assert chat.body == {"message": "hi"}
    assert listing.path == "/v1/lexi/tasks?status=failed" and listing.body is None
    assert sandbox.calls_to("post", f"{GATEWAY_PREFIX}/v1/lexi") == [chat]
    sandbox.reset_calls()
    assert sandbox.calls == []


# --- webhooks ---


def test_webhook_registration_is_validated(client: httpx.Client) -> None:
    """Registration refuses non-HTTPS or private URLs, unknown events, missing fields and duplicates."""
    events = ["task.created"]
    cases = [
        ({"url": "http://example.com/hook", "events": events}, 400, "invalid_url"),
        ({"url": "https://127.0.0.1/hook", "events": events}, 400, "invalid_url"),
        ({"url": "https://10.1.2.3/hook", "events": events}, 400, "invalid_url"),
        ({"url": "https://localhost:8443/hook", "events": events}, 400, "invalid_url"),
        ({"url": "not a url", "events": events}, 400, "invalid_url"),
        ({"url": "https://example.com/hook", "events": ["task.completed"]}, 400, "invalid_events"),
        ({"url": "https://example.com/hook", "events": []}, 400, "invalid_events"),
        ({"events": events}, 400, "missing_required_field"),
        ({"url": "https://example.com/hook"}, 400, "missing_required_field"),
    ]
    for body, status, code in cases:
        response = client.post("/v1/webhooks", json=body)
        assert (response.status_code, error_code(response)) == (status, code), body
    created = client.post("/v1/webhooks", json={"url": "https://example.com/hook", "events": events})
    assert created.status_code == 201
    hook = created.json()["data"]["webhook"]
    assert hook["secret"] and hook["active"] is True and hook["events"] == events and hook["created_at"]
    duplicate = client.post("/v1/webhooks", json={"url": "https://example.com/hook", "events": events})
    assert duplicate.status_code == 409 and error_code(duplicate) == "duplicate_webhook"


def test_webhooks_can_be_listed_changed_and_deleted(client: httpx.Client) -> None:
    """Listing hides secrets; PATCH changes fields; DELETE removes; unknown ids are 404."""
    hook = client.post("/v1/webhooks", json={"url": "https://example.com/a", "events": ["task.created"]})
    hook_id = hook.json()["data"]["webhook"]["id"]
    listed = client.get("/v1/webhooks").json()["data"]["webhooks"]
    assert [item["id"] for item in listed] == [hook_id] and "secret" not in listed[0]
    patched = client.patch(f"/v1/webhooks/{hook_id}", json={"active": False, "events": ["task.approved"]})
    changed = patched.json()["data"]["webhook"]
    assert changed["active"] is False and changed["events"] == ["task.approved"] and "secret" not in changed
    assert client.patch(f"/v1/webhooks/{hook_id}", json={"active": "no"}).status_code == 400
    assert client.patch("/v1/webhooks/wh_missing", json={"active": True}).status_code == 404
    assert client.delete(f"/v1/webhooks/{hook_id}").status_code == 200
    assert client.delete(f"/v1/webhooks/{hook_id}").status_code == 404
    assert client.get("/v1/webhooks").json()["data"]["webhooks"] == []


def test_webhook_delivery_is_signed_and_enveloped(
    sandbox: Sandbox, client: httpx.Client, fake_receiver: FakeReceiver
) -> None:
    """Approving a task POSTs task.approved to the receiver, signed with HMAC-SHA256 of the raw body."""
    sandbox.allow_private_webhooks = True
    registered = client.post("/v1/webhooks", json={"url": fake_receiver.url, "events": ["task.approved"]})
    secret = registered.json()["data"]["webhook"]["secret"]
    task = sandbox.add_task()  # task.created: not subscribed, so not delivered
    started = time.monotonic()
    assert client.post(f"/v1/lexi/tasks/{task['id']}/approve").status_code == 200
    assert time.monotonic() - started < 1.0  # delivery never blocks the request
    headers, body = fake_receiver.next()
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-leadlex-signature"], expected)
    assert headers["user-agent"] == "LeadLex-Webhook/1.0"
    assert parse_time(headers["x-leadlex-timestamp"]) is not None
    uuid.UUID(headers["x-leadlex-delivery-id"])
    envelope = json.loads(body)
    assert envelope["event"] == "task.approved" and envelope["workspace_id"]
    assert envelope["data"]["task"]["id"] == task["id"] and envelope["data"]["task"]["status"] == "approved"
    delivery = wait_for(lambda: sandbox.deliveries)[0]
    assert (delivery.event, delivery.status, delivery.attempt) == ("task.approved", 200, 1)
    with pytest.raises(queue.Empty):
        fake_receiver.next(timeout=0.3)


def test_webhook_delivery_is_retried_with_a_new_delivery_id(
    sandbox: Sandbox, client: httpx.Client, fake_receiver: FakeReceiver
) -> None:
    """A non-2xx answer is retried after a short backoff, each attempt with a new delivery id."""
    sandbox.allow_private_webhooks = True
    fake_receiver.statuses = [500]
    client.post("/v1/webhooks", json={"url": fake_receiver.url, "events": ["task.created", "task.dismissed"]})
    sandbox.add_task()
    first, _ = fake_receiver.next()
    second, _ = fake_receiver.next(timeout=5.0)
    assert first["x-leadlex-delivery-id"] != second["x-leadlex-delivery-id"]
    assert first["x-leadlex-signature"] == second["x-leadlex-signature"]
    deliveries = wait_for(lambda: sandbox.deliveries if len(sandbox.deliveries) == 2 else None)
    assert [(item.attempt, item.status) for item in deliveries] == [(1, 500), (2, 200)]


# --- lifecycle and generated tasks ---


def test_approved_tasks_complete_after_the_delay(start_sandbox: Callable[..., Sandbox]) -> None:
    """With complete_after, an approved task becomes completed shortly afterwards and is listed so."""
    sandbox = start_sandbox(seed=False, complete_after=0.2)
    task = sandbox.add_task()
    with build_client(sandbox) as http:
        http.post(f"/v1/lexi/tasks/{task['id']}/approve")
        assert status_of(sandbox, task["id"]) == "approved"
        wait_for(lambda: status_of(sandbox, task["id"]) == "completed")
        completed = http.get("/v1/lexi/tasks", params={"status": "completed"}).json()["data"]["tasks"]
    assert [item["id"] for item in completed] == [task["id"]]


def test_fail_ratio_makes_approved_tasks_fail(start_sandbox: Callable[..., Sandbox]) -> None:
    """With fail_ratio 1.0, every approved task ends as failed."""
    sandbox = start_sandbox(seed=False, complete_after=0.1, fail_ratio=1.0)
    ids = [sandbox.set_status(sandbox.add_task()["id"], "approved")["id"] for _ in range(3)]
    wait_for(lambda: all(status_of(sandbox, task_id) == "failed" for task_id in ids))


def test_complete_finishes_only_approved_tasks(sandbox: Sandbox) -> None:
    """complete() ends an approved task as completed or failed, and refuses a task that is not approved."""
    done, broken, pending = sandbox.add_task(), sandbox.add_task(), sandbox.add_task()
    for task in (done, broken):
        sandbox.set_status(task["id"], "approved")
    assert sandbox.complete(done["id"])["status"] == "completed"
    assert sandbox.complete(broken["id"], ok=False)["status"] == "failed"
    with pytest.raises(ValueError, match="is pending, not approved"):
        sandbox.complete(pending["id"])


def test_generate_every_adds_realistic_pending_tasks(start_sandbox: Callable[..., Sandbox]) -> None:
    """With generate_every, new pending tasks of known types keep appearing until stop()."""
    sandbox = start_sandbox(seed=False, generate_every=0.05)
    tasks = wait_for(lambda: sandbox.tasks() if len(sandbox.tasks()) >= 3 else None)
    assert all(task["status"] == "pending" and task["type"] in KNOWN_TYPES for task in tasks)
    assert all(Task.from_api(task) is not None and task["description"] for task in tasks)
    sandbox.stop()
    count = len(sandbox.tasks())
    time.sleep(0.2)
    assert len(sandbox.tasks()) == count


# --- lifetime and command line ---


def test_context_manager_starts_and_stop_is_idempotent() -> None:
    """`with Sandbox()` serves on a loopback port; stop() may be called again; afterwards nothing listens."""
    with Sandbox(seed=False) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        with build_client(sandbox) as http:
            assert http.get("/v1/lexi/tasks").json() == {"data": {"tasks": []}}
    sandbox.stop()
    with build_client(sandbox, timeout=1.0) as http, pytest.raises(httpx.ConnectError):
        http.get("/v1/lexi/tasks")


def test_command_line_serves_until_ctrl_c() -> None:
    """`python -m bot.dev.sandbox --port 0` prints its URL and key, serves, and exits 0 on Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.dev.sandbox", "--port", "0"],
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
        first = process.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert KEY in process.stdout.readline()
        auth = {"Authorization": f"Bearer {KEY}"}
        response = httpx.get(f"{url}/v1/lexi/tasks", headers=auth, trust_env=False, timeout=5.0)
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)


def test_the_default_plan_lets_run_sandbox_poll_every_5_seconds(start_sandbox: Callable[..., Sandbox]) -> None:
    """Against the sandbox's own default plan, the budget planner keeps `run --sandbox`'s 5 s polling unstretched."""
    import time

    from bot.core.budget import BudgetPolicy
    from bot.lexi.client import LexiClient

    sandbox = start_sandbox()  # the defaults `lexi-bot run --sandbox` and `lexi-bot sandbox` use
    client = LexiClient(sandbox.url, sandbox.api_key)
    client.list_tasks("pending")  # the plan is read from the rate-limit headers, as the bot reads it
    cost = 1 + len(sandbox.tasks())  # a cycle at its dearest: the list, then one call per task followed
    plan = BudgetPolicy().plan(client.budget, cost, time.time(), 5.0)
    assert (plan.interval, plan.reason) == (5.0, None)
