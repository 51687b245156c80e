"""Issue 4, webhooks: real-time announcements from signed LeadLex deliveries, idempotent and order-safe."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bot import blocks
from bot.cli import main
from bot.lexi.client import LexiClient
from bot.lexi.sandbox import Sandbox
from bot.lexi.sandbox_webhooks import sign
from bot.standin.slack import SlackStandIn
from tests.support.harness import CHANNEL, BotHarness, start_bot


@pytest.fixture
def hooked(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[tuple[BotHarness, str]]:
    """A bot whose webhook is registered with the sandbox, as `lexi-bot webhooks register` would; and its secret."""
    sandbox.allow_private_webhooks = True
    lexi = LexiClient(sandbox.url, sandbox.api_key)
    hook = lexi.create_webhook("https://bot.example.com/lexi/webhooks", ["task.created", "task.updated",
                                                                        "task.approved", "task.dismissed"])
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET=hook["secret"])
    response = httpx.patch(f"{sandbox.url}/v1/webhooks/{hook['id']}", json={"url": f"{harness.url}/lexi/webhooks"},
                           headers={"Authorization": f"Bearer {sandbox.api_key}"})
    assert response.status_code == 200
    try:
        yield harness, hook["secret"]
    finally:
        harness.close()
        lexi.close()


def _deliver(harness: BotHarness, secret: str, event: str, task: dict, *, age: timedelta = timedelta(0),
             signature: str | None = None) -> httpx.Response:
    """POST one delivery to the bot, signed as LeadLex signs it."""
    body = json.dumps({"event": event, "timestamp": "2026-11-23T10:00:00Z", "workspace_id": "ws",
                       "data": {"task": task}}).encode()
    sent = (datetime.now(timezone.utc) - age).isoformat()
    headers = {"Content-Type": "application/json", "X-LeadLex-Timestamp": sent,
               "X-LeadLex-Signature": signature or sign(secret, body), "X-LeadLex-Delivery-ID": str(time.time())}
    return harness.http.post(f"{harness.url}/lexi/webhooks", content=body, headers=headers)


def _posted(slack: SlackStandIn) -> list[str]:
    """Task ids of the channel's top-level messages."""
    return [m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL)
            if m.thread_ts is None and m.metadata]


def _task(task_id: str, status: str = "pending", description: str = "Find CFOs") -> dict:
    """A LeadLex task object."""
    return {"id": task_id, "type": "prospect_search", "status": status, "description": description,
            "created_at": "2026-11-23T09:00:00Z", "metadata": {"per_page": 10}}


def test_created_task_is_announced_without_polling(hooked: tuple[BotHarness, str], sandbox: Sandbox,
                                                   slack: SlackStandIn) -> None:
    """A task.created delivery from LeadLex announces the task with no poll at all."""
    harness, _ = hooked
    task_id = sandbox.add_task("campaign_start", "Start campaign 'Q1'", {"contact_count": 300})["id"]
    harness.wait_for(lambda: _posted(slack) == [task_id])
    assert sandbox.calls_to("GET", "/v1/lexi/tasks") == []


def test_dashboard_decisions_reach_the_card_through_webhooks(hooked: tuple[BotHarness, str], sandbox: Sandbox,
                                                             slack: SlackStandIn) -> None:
    """Dismissed in the LeadLex dashboard: the card says so, without a poll."""
    harness, _ = hooked
    task_id = sandbox.add_task()["id"]
    harness.wait_for(lambda: _posted(slack))
    sandbox.set_status(task_id, "dismissed")
    harness.wait_for(lambda: harness.store.get(task_id).state == "dismissed")
    harness.settle()
    ts = harness.store.get(task_id).message_ts
    assert "Dismissed in LeadLex" in json.dumps(slack.message(CHANNEL, ts).blocks)
    assert sandbox.calls_to("GET", "/v1/lexi/tasks") == []


def test_edited_task_rerenders_its_card(hooked: tuple[BotHarness, str], sandbox: Sandbox,
                                        slack: SlackStandIn) -> None:
    """A task.updated delivery with new content updates the pending card in place."""
    harness, _ = hooked
    task_id = sandbox.add_task(description="Find CFOs")["id"]
    harness.wait_for(lambda: harness.store.get(task_id) and harness.store.get(task_id).message_ts)
    sandbox.update_task(task_id, description="Find CFOs and VPs of Finance")
    ts = harness.store.get(task_id).message_ts
    harness.wait_for(lambda: "VPs of Finance" in json.dumps(slack.message(CHANNEL, ts).blocks))
    assert len(_posted(slack)) == 1


def test_replays_and_reordering_never_duplicate_or_regress(hooked: tuple[BotHarness, str],
                                                           slack: SlackStandIn) -> None:
    """Replayed created events post once; a stale created or updated after approval changes nothing."""
    harness, secret = hooked
    for _ in range(3):
        assert _deliver(harness, secret, "task.created", _task("wh-1")).status_code == 200
    harness.settle()
    assert _posted(slack) == ["wh-1"]
    _deliver(harness, secret, "task.approved", _task("wh-1", "approved"))
    _deliver(harness, secret, "task.created", _task("wh-1"))
    _deliver(harness, secret, "task.updated", _task("wh-1", description="stale edit"))
    harness.settle()
    assert _posted(slack) == ["wh-1"]
    assert harness.store.get("wh-1").state == "approved"
    assert "stale edit" not in json.dumps(slack.message(CHANNEL, harness.store.get("wh-1").message_ts).blocks)


def test_decision_arriving_before_creation_is_never_announced(hooked: tuple[BotHarness, str],
                                                              slack: SlackStandIn) -> None:
    """Reordered: task.dismissed comes before task.created, so the task is never posted as pending."""
    harness, secret = hooked
    _deliver(harness, secret, "task.dismissed", _task("wh-2", "dismissed"))
    harness.settle()
    _deliver(harness, secret, "task.created", _task("wh-2"))
    harness.settle()
    assert _posted(slack) == []
    assert harness.store.get("wh-2").state == "dismissed"


def test_own_decision_keeps_its_author_when_the_webhook_races(hooked: tuple[BotHarness, str], sandbox: Sandbox,
                                                              slack: SlackStandIn) -> None:
    """A click's own task.approved echo never turns 'Approved by <@U>' into 'Approved in LeadLex'."""
    harness, _ = hooked
    task_id = sandbox.add_task()["id"]
    harness.wait_for(lambda: _posted(slack))
    harness.click(blocks.APPROVE_ACTION, task_id, user="UALICE")
    harness.settle()
    harness.wait_for(lambda: any(d.event == "task.approved" and d.status == 200 for d in sandbox.deliveries))
    harness.settle()
    row = harness.store.get(task_id)
    assert row.state == "approved" and row.actor == "UALICE"
    assert "Approved by <@UALICE>" in json.dumps(slack.message(CHANNEL, row.message_ts).blocks)


@pytest.mark.parametrize(
    ("kind", "status"),
    [("bad-signature", 401), ("no-signature", 401), ("stale", 401), ("future", 401), ("not-json", 400)],
)
def test_refused_deliveries_change_nothing(hooked: tuple[BotHarness, str], slack: SlackStandIn,
                                           kind: str, status: int) -> None:
    """Forged, unsigned, stale, future-dated or malformed deliveries are refused and change nothing."""
    harness, secret = hooked
    task = _task("wh-3")
    if kind == "bad-signature":
        response = _deliver(harness, secret, "task.created", task, signature="sha256=" + "0" * 64)
    elif kind == "no-signature":
        response = _deliver(harness, secret, "task.created", task, signature="nothing")
    elif kind == "stale":
        response = _deliver(harness, secret, "task.created", task, age=timedelta(minutes=6))
    elif kind == "future":
        response = _deliver(harness, secret, "task.created", task, age=-timedelta(minutes=6))
    else:
        body = b"not json"
        response = harness.http.post(f"{harness.url}/lexi/webhooks", content=body, headers={
            "X-LeadLex-Signature": sign(secret, body),
            "X-LeadLex-Timestamp": datetime.now(timezone.utc).isoformat()})
    assert response.status_code == status
    harness.settle()
    assert _posted(slack) == [] and harness.store.get("wh-3") is None


def test_unknown_events_are_acknowledged_and_ignored(hooked: tuple[BotHarness, str], slack: SlackStandIn) -> None:
    """An event the bot does not know is answered 200 and ignored."""
    harness, secret = hooked
    response = _deliver(harness, secret, "campaign.finished", _task("wh-4"))
    assert response.status_code == 200 and response.json()["ignored"] is True
    harness.settle()
    assert _posted(slack) == []


def test_endpoint_is_off_without_a_secret(bot: BotHarness) -> None:
    """Without LEXI_WEBHOOK_SECRET the bot accepts no deliveries at all."""
    assert bot.http.post(f"{bot.url}/lexi/webhooks", content=b"{}").status_code == 404


def test_webhooks_commands_register_list_and_delete(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`lexi-bot webhooks register` prints the secret once; list shows no secret; delete removes it."""
    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("LEXI_API_KEY", sandbox.api_key)
    monkeypatch.setenv("LEXI_API_URL", sandbox.url)
    assert main(["webhooks", "register", "--url", "https://bot.example.com/lexi/webhooks"]) == 0
    out = capsys.readouterr().out
    secret = out.split("LEXI_WEBHOOK_SECRET=")[1].split()[0]
    assert len(secret) >= 16
    (hook,) = sandbox_hooks = LexiClient(sandbox.url, sandbox.api_key).list_webhooks()
    assert main(["webhooks", "list"]) == 0
    listing = capsys.readouterr().out
    assert hook["id"] in listing and secret not in listing
    assert main(["webhooks", "register", "--url", "http://10.0.0.5/lexi/webhooks"]) == 1
    assert "invalid_url" in capsys.readouterr().err
    assert main(["webhooks", "delete", hook["id"]]) == 0
    assert LexiClient(sandbox.url, sandbox.api_key).list_webhooks() == [] and sandbox_hooks
