"""The LeadLex client against the sandbox over loopback: error mapping, retries, budget."""

from __future__ import annotations

import httpx
import pytest

from bot.dev.sandbox import Sandbox
from bot.errors import (
    InvalidKey,
    NotFound,
    NotPending,
    OutOfCredits,
    PermissionDenied,
    RateLimited,
    TransientError,
)
from bot.lexi.client import LexiClient
from bot.ops.tls import SharedConnections


def _client(sandbox: Sandbox, key: str | None = None, sleeps: list[float] | None = None, **kw: object) -> LexiClient:
    """A client for the sandbox whose sleeps are recorded instead of slept."""
    record = sleeps if sleeps is not None else []
    return LexiClient(sandbox.url, key or sandbox.api_key, sleep=record.append, **kw)  # type: ignore[arg-type]


def test_lists_decides_and_tracks_the_budget(sandbox: Sandbox) -> None:
    """Listing, approving and dismissing work, and every answer updates the rate-limit budget."""
    first = sandbox.add_task("prospect_search", "one")["id"]
    second = sandbox.add_task("campaign_start", "two", {"contact_count": 3})["id"]
    client = _client(sandbox)
    assert [t.id for t in client.list_tasks()] == [first, second]
    assert client.approve(first)["status"] == "approved"
    assert client.dismiss(second, "duplicate")["status"] == "dismissed"
    assert sandbox.task(second)["dismiss_reason"] == "duplicate"
    budget = client.budget
    assert budget.limit == 10_000_000 and budget.remaining is not None and budget.remaining < 10_000_000
    assert budget.reset is not None
    assert client.find_task(first).status == "approved"
    assert client.find_task("nope") is None


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "validation_error", NotPending),
        (401, "invalid_key", InvalidKey),
        (402, "insufficient_credits", OutOfCredits),
        (403, "insufficient_permissions", PermissionDenied),
        (404, "not_found", NotFound),
    ],
)
def test_error_codes_map_to_typed_errors_without_retry(sandbox: Sandbox, status: int, code: str, error: type) -> None:
    """Each documented 4xx becomes its own error at once, without retries."""
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=status, code=code)
    with pytest.raises(error) as caught:
        _client(sandbox).list_tasks()
    assert caught.value.status == status and caught.value.code == code
    assert len(sandbox.calls_to("GET", "/v1/lexi/tasks")) == 1


def test_real_refusals_come_from_the_api(sandbox: Sandbox) -> None:
    """An unknown key is 401, a key without Lexi is 403, approving twice is 400, an unknown id is 404."""
    with pytest.raises(InvalidKey):
        _client(sandbox, key="wbk_unknown").list_tasks()
    with pytest.raises(PermissionDenied):
        _client(sandbox, key=sandbox.no_lexi_key).list_tasks()
    task_id = sandbox.add_task()["id"]
    client = _client(sandbox)
    client.approve(task_id)
    with pytest.raises(NotPending):
        client.approve(task_id)
    with pytest.raises(NotFound):
        client.dismiss("missing-task")


def test_retry_after_is_honoured(sandbox: Sandbox) -> None:
    """A 429 with Retry-After waits exactly that long before the next attempt."""
    sleeps: list[float] = []
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=429, retry_after=2.5)
    _client(sandbox, sleeps=sleeps).list_tasks()
    assert sleeps == [2.5]


def test_a_wait_longer_than_allowed_gives_up_at_once(sandbox: Sandbox) -> None:
    """When LeadLex asks for a wait beyond the caller's patience, the client raises instead of blocking."""
    sleeps: list[float] = []
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=429, retry_after=3600)
    with pytest.raises(RateLimited) as caught:
        _client(sandbox, sleeps=sleeps, max_wait=20).list_tasks()
    assert caught.value.retry_after == 3600 and sleeps == []


def test_exhausted_daily_budget_waits_for_the_reset(sandbox: Sandbox) -> None:
    """With the day's budget spent, the implied wait is the time to the daily reset."""
    sandbox.set_remaining(0)
    with pytest.raises(RateLimited) as caught:
        _client(sandbox, max_wait=5).list_tasks()
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


def test_transient_errors_back_off_with_jitter_then_give_up(sandbox: Sandbox) -> None:
    """5xx answers are retried with growing waits, then raised as TransientError."""
    sleeps: list[float] = []
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=500, times=10)
    with pytest.raises(TransientError):
        _client(sandbox, sleeps=sleeps, attempts=4).list_tasks()
    assert len(sleeps) == 3 and all(0 < s <= 8.5 for s in sleeps)
    assert len(sandbox.calls_to("GET", "/v1/lexi/tasks")) == 4


def test_chat_is_never_retried(sandbox: Sandbox) -> None:
    """A failed chat message is not sent twice (it costs credits and could create two tasks)."""
    sandbox.fail_next("POST", "/v1/lexi/chat", status=502)
    with pytest.raises(TransientError):
        _client(sandbox).chat("find 20 CFOs")
    assert len(sandbox.calls_to("POST", "/v1/lexi/chat")) == 1
    reply = _client(sandbox).chat("find 20 CFOs")
    assert reply.requires_approval and reply.task_id and reply.conversation_id


def test_unreachable_leadlex_is_transient() -> None:
    """A connection refused is a TransientError, not a crash."""
    client = LexiClient("http://127.0.0.1:9", "wbk_x", sleep=lambda _: None, attempts=2)
    with pytest.raises(TransientError):
        client.list_tasks()


def test_a_list_too_deep_for_the_decoder_loses_only_the_deep_task(sandbox: Sandbox) -> None:
    """One task nested beyond Python's decoder, or with a 5000-digit number, costs only itself; each is logged once."""
    deep: object = "bottom"
    for _ in range(5000):
        deep = [deep]
    before = sandbox.add_task(description="before")["id"]
    sandbox.add_raw_task({"id": "deep-1", "type": "campaign_start", "description": "d" * 5000, "metadata": deep})
    sandbox.add_raw_task({"id": "huge-1", "metadata": {"contact_count": 10**5000}})
    after = sandbox.add_task(description="after")["id"]
    reported: list[str] = []
    client = _client(sandbox, on_unparseable=reported.append)
    for _ in range(2):
        tasks = {t.id: t for t in client.list_tasks()}
    assert set(tasks) == {before, "deep-1", "huge-1", after}
    assert tasks["deep-1"].metadata == {} and tasks["deep-1"].type == "campaign_start"
    assert len(tasks["deep-1"].description) == 2000  # cut, as on a plain card
    assert tasks["huge-1"].metadata == {}
    assert sorted(reported) == ["too_deep", "unreadable"]


def test_shared_connections_serve_every_key_on_one_client_per_thread(sandbox: Sandbox) -> None:
    """Two workspaces' clients share one HTTP client on a thread, yet each request carries its own key only."""
    other = sandbox.add_workspace()
    mine = sandbox.add_task("prospect_search", "mine")["id"]
    theirs = other.add_task("prospect_search", "theirs")["id"]
    connections = SharedConnections()
    try:
        first = LexiClient(sandbox.url, sandbox.api_key, connections=connections)
        second = LexiClient(sandbox.url, other.api_key, connections=connections)
        for _ in range(2):
            assert [t.id for t in first.list_tasks()] == [mine]
            assert [t.id for t in second.list_tasks()] == [theirs]
        assert len(connections) == 1
        first.close()  # a workspace's client leaves the shared ones open for the others
        assert [t.id for t in second.list_tasks()] == [theirs]
    finally:
        connections.close()


def test_shared_connections_keep_no_cookie(sandbox: Sandbox) -> None:
    """A cookie one workspace's answer sets is never kept, so it cannot ride along on another workspace's request."""
    connections = SharedConnections()
    try:
        client = connections.client(sandbox.url, 10.0)
        request = httpx.Request("GET", f"{sandbox.url}/v1/lexi/tasks")
        client.cookies.extract_cookies(httpx.Response(200, headers={"Set-Cookie": "session=abc"}, request=request))
        assert not list(client.cookies.jar)
    finally:
        connections.close()
