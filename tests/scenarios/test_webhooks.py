"""Issue 4, webhooks: real-time announcements from signed LeadLex deliveries, idempotent and order-safe."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.cli import main
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_webhooks import sign
from bot.dev.standin.slack import SlackStandIn
from bot.lexi.client import LexiClient
from bot.slack import blocks
from tests.support.harness import CHANNEL, BotHarness, start_bot


@pytest.fixture
def hooked(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> Iterator[tuple[BotHarness, str]]:
    """A bot whose webhook is registered with the sandbox, as `lexi-bot webhooks register` would; and its secret."""
    sandbox.allow_private_webhooks = True
    lexi = LexiClient(sandbox.url, sandbox.api_key)
    hook = lexi.create_webhook(
        "https://bot.example.com/lexi/webhooks", ["task.created", "task.updated", "task.approved", "task.dismissed"]
    )
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET=hook["secret"])
    response = httpx.patch(
        f"{sandbox.url}/v1/webhooks/{hook['id']}",
        json={"url": f"{harness.url}/lexi/webhooks"},
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
    )
    assert response.status_code == 200
    try:
        yield harness, hook["secret"]
    finally:
        harness.close()
        lexi.close()


def _envelope(event: str, task: object, *, signed: timedelta = timedelta(0), **extra: object) -> bytes:
    """A delivery body as LeadLex signs it, its envelope `timestamp` `signed` ago (negative: ahead)."""
    envelope = {
        "event": event,
        "timestamp": (datetime.now(UTC) - signed).isoformat(),
        "workspace_id": "ws",
        "data": {"task": task},
        **extra,
    }
    return json.dumps(envelope).encode()


def _post(
    harness: BotHarness, secret: str, body: bytes, *, age: timedelta = timedelta(0), signature: str | None = None
) -> httpx.Response:
    """POST a raw body to the bot, signed with the secret, its (unsigned) X-LeadLex-Timestamp header `age` ago."""
    sent = (datetime.now(UTC) - age).isoformat()
    headers = {
        "Content-Type": "application/json",
        "X-LeadLex-Timestamp": sent,
        "X-LeadLex-Signature": signature or sign(secret, body),
        "X-LeadLex-Delivery-ID": str(time.time()),
    }
    return harness.http.post(f"{harness.url}/lexi/webhooks", content=body, headers=headers)


def _deliver(
    harness: BotHarness,
    secret: str,
    event: str,
    task: dict,
    *,
    age: timedelta = timedelta(0),
    signed: timedelta = timedelta(0),
    signature: str | None = None,
) -> httpx.Response:
    """POST one delivery to the bot, signed as LeadLex signs it."""
    return _post(harness, secret, _envelope(event, task, signed=signed), age=age, signature=signature)


def _posted(slack: SlackStandIn) -> list[str]:
    """Task ids of the channel's top-level messages."""
    return [
        m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.thread_ts is None and m.metadata
    ]


def _task(task_id: str, status: str = "pending", description: str = "Find CFOs") -> dict:
    """A LeadLex task object."""
    return {
        "id": task_id,
        "type": "prospect_search",
        "status": status,
        "description": description,
        "created_at": "2026-11-23T09:00:00Z",
        "metadata": {"per_page": 10},
    }


def test_created_task_is_announced_without_polling(
    hooked: tuple[BotHarness, str], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A task.created delivery from LeadLex announces the task with no poll at all."""
    harness, _ = hooked
    task_id = sandbox.add_task("campaign_start", "Start campaign 'Q1'", {"contact_count": 300})["id"]
    harness.wait_for(lambda: _posted(slack) == [task_id])
    assert sandbox.calls_to("GET", "/v1/lexi/tasks") == []


def test_dashboard_decisions_reach_the_card_through_webhooks(
    hooked: tuple[BotHarness, str], sandbox: Sandbox, slack: SlackStandIn
) -> None:
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


def test_edited_task_rerenders_its_card(hooked: tuple[BotHarness, str], sandbox: Sandbox, slack: SlackStandIn) -> None:
    """A task.updated delivery with new content updates the pending card in place."""
    harness, _ = hooked
    task_id = sandbox.add_task(description="Find CFOs")["id"]
    harness.wait_for(lambda: harness.store.get(task_id) and harness.store.get(task_id).message_ts)
    sandbox.update_task(task_id, description="Find CFOs and VPs of Finance")
    ts = harness.store.get(task_id).message_ts
    harness.wait_for(lambda: "VPs of Finance" in json.dumps(slack.message(CHANNEL, ts).blocks))
    assert len(_posted(slack)) == 1


def test_replays_and_reordering_never_duplicate_or_regress(hooked: tuple[BotHarness, str], slack: SlackStandIn) -> None:
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


def test_decision_arriving_before_creation_is_never_announced(
    hooked: tuple[BotHarness, str], slack: SlackStandIn
) -> None:
    """Reordered: task.dismissed comes before task.created, so the task is never posted as pending."""
    harness, secret = hooked
    _deliver(harness, secret, "task.dismissed", _task("wh-2", "dismissed"))
    harness.settle()
    _deliver(harness, secret, "task.created", _task("wh-2"))
    harness.settle()
    assert _posted(slack) == []
    assert harness.store.get("wh-2").state == "dismissed"


def test_own_decision_keeps_its_author_when_the_webhook_races(
    hooked: tuple[BotHarness, str], sandbox: Sandbox, slack: SlackStandIn
) -> None:
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
def test_refused_deliveries_change_nothing(
    hooked: tuple[BotHarness, str], slack: SlackStandIn, kind: str, status: int
) -> None:
    """Forged, unsigned, stale, future-dated or malformed deliveries are refused and change nothing."""
    harness, secret = hooked
    task = _task("wh-3")
    if kind == "bad-signature":
        response = _deliver(harness, secret, "task.created", task, signature="sha256=" + "0" * 64)
    elif kind == "no-signature":
        response = _deliver(harness, secret, "task.created", task, signature="nothing")
    elif kind == "stale":
        response = _deliver(harness, secret, "task.created", task, signed=timedelta(hours=8))
    elif kind == "future":
        response = _deliver(harness, secret, "task.created", task, signed=-timedelta(minutes=6))
    else:
        body = b"not json"
        response = harness.http.post(
            f"{harness.url}/lexi/webhooks",
            content=body,
            headers={
                "X-LeadLex-Signature": sign(secret, body),
                "X-LeadLex-Timestamp": datetime.now(UTC).isoformat(),
            },
        )
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


def test_webhooks_commands_register_list_and_delete(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
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


# --- authenticity: freshness from the signed timestamp, replays, and order (issue 11) -------------------

CAMPAIGN_POLICY = """\
types:
  campaign_start:
    confirm_above: 1000
"""


@pytest.fixture
def hooked_campaigns(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> Iterator[tuple[BotHarness, str]]:
    """A webhook-driven bot whose campaigns above 1,000 contacts ask for confirmation before approval."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(CAMPAIGN_POLICY)
    sandbox.allow_private_webhooks = True
    lexi = LexiClient(sandbox.url, sandbox.api_key)
    hook = lexi.create_webhook(
        "https://bot.example.com/lexi/webhooks", ["task.created", "task.updated", "task.approved", "task.dismissed"]
    )
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET=hook["secret"], LEXI_POLICY_FILE=str(path))
    response = httpx.patch(
        f"{sandbox.url}/v1/webhooks/{hook['id']}",
        json={"url": f"{harness.url}/lexi/webhooks"},
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
    )
    assert response.status_code == 200
    try:
        yield harness, hook["secret"]
    finally:
        harness.close()
        lexi.close()


def _contacts(harness: BotHarness, slack: SlackStandIn, task_id: str) -> str:
    """The contact count a task's card shows."""
    message = slack.message(CHANNEL, harness.store.get(task_id).message_ts)
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    return next(text.split("\n", 1)[1] for text in fields if text.startswith("*Contacts*"))


def _approve_button(harness: BotHarness, slack: SlackStandIn, task_id: str) -> dict:
    """The Approve button of a task's card."""
    message = slack.message(CHANNEL, harness.store.get(task_id).message_ts)
    actions = next(b for b in message.blocks if b["type"] == "actions")
    return next(e for e in actions["elements"] if e["action_id"] == blocks.APPROVE_ACTION)


@pytest.mark.parametrize(
    "timestamp",
    ["8 hours ago", "6 minutes ahead", "missing", "yesterday", 12345],
)
def test_freshness_is_decided_by_the_signed_timestamp_not_the_header(
    hooked: tuple[BotHarness, str], slack: SlackStandIn, timestamp: object
) -> None:
    """A body whose signed envelope timestamp is stale, ahead, missing or unreadable is refused, fresh header or not."""
    harness, secret = hooked
    envelope: dict = {"event": "task.created", "workspace_id": "ws", "data": {"task": _task("wh-10")}}
    now = datetime.now(UTC)
    if timestamp == "8 hours ago":
        envelope["timestamp"] = (now - timedelta(hours=8)).isoformat()
    elif timestamp == "6 minutes ahead":
        envelope["timestamp"] = (now + timedelta(minutes=6)).isoformat()
    elif timestamp != "missing":
        envelope["timestamp"] = timestamp
    response = _post(harness, secret, json.dumps(envelope).encode())
    assert response.status_code == 401 and response.json()["error"]
    harness.settle()
    assert _posted(slack) == [] and harness.store.get("wh-10") is None


def test_leadlex_last_retry_is_accepted_whatever_the_header_says(
    hooked: tuple[BotHarness, str], slack: SlackStandIn
) -> None:
    """LeadLex's last retry, about 6 hours after the event, is still accepted: the unsigned header decides nothing."""
    harness, secret = hooked
    response = _deliver(
        harness,
        secret,
        "task.created",
        _task("wh-11"),
        signed=timedelta(hours=6, minutes=5),
        age=timedelta(hours=6, minutes=5),
    )
    assert response.status_code == 200
    harness.settle()
    assert _posted(slack) == ["wh-11"]


def test_sandbox_signs_the_time_of_each_event_in_the_body(hooked: tuple[BotHarness, str], sandbox: Sandbox) -> None:
    """The sandbox, like LeadLex, puts the event's time inside the signed body, to the millisecond."""
    harness, _ = hooked
    before = datetime.now(UTC) - timedelta(seconds=1)
    sandbox.add_task()
    delivery = harness.wait_for(lambda: next((d for d in sandbox.deliveries if d.status == 200), None))
    assert json.loads(delivery.body) == delivery.payload
    stamp = delivery.payload["timestamp"]
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 4  # milliseconds, then Z
    assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)


def test_captured_update_cannot_roll_back_a_grown_campaign(
    hooked_campaigns: tuple[BotHarness, str], sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """A captured 40-contact task.updated, re-sent with a fresh header after the campaign grew to 50,000: no effect."""
    harness, secret = hooked_campaigns
    task_id = sandbox.add_task("campaign_start", "Start campaign 'Q1'", {"contact_count": 10})["id"]
    harness.wait_for(lambda: harness.store.get(task_id) and harness.store.get(task_id).message_ts)
    sandbox.update_task(task_id, metadata={"contact_count": 40})
    harness.wait_for(lambda: _contacts(harness, slack, task_id) == "40")
    (captured,) = [d for d in sandbox.deliveries if d.event == "task.updated" and d.status == 200]
    assert "confirm" not in _approve_button(harness, slack, task_id)
    sandbox.update_task(task_id, metadata={"contact_count": 50_000})
    harness.wait_for(lambda: _contacts(harness, slack, task_id) == "50,000")
    harness.settle()
    assert "50,000 contacts" in _approve_button(harness, slack, task_id)["confirm"]["text"]["text"]

    replay = _post(harness, secret, captured.body)  # the exact signed bytes, with a fresh header
    harness.settle()
    assert _contacts(harness, slack, task_id) == "50,000"
    assert "50,000 contacts" in _approve_button(harness, slack, task_id)["confirm"]["text"]["text"]
    assert harness.store.get(task_id).task.metadata == {"contact_count": 50_000}
    assert replay.status_code == 200 and replay.json() == {"ok": True, "duplicate": True}  # LeadLex-style: stop


def test_older_content_delivered_late_never_overwrites_newer(
    hooked_campaigns: tuple[BotHarness, str], slack: SlackStandIn
) -> None:
    """Content or a state report signed earlier but delivered later (a retry) is acknowledged and dropped."""
    harness, secret = hooked_campaigns
    task = {**_task("wh-12"), "type": "campaign_start", "metadata": {"contact_count": 10}}
    assert _deliver(harness, secret, "task.created", task, signed=timedelta(minutes=3)).status_code == 200
    grown = {**task, "metadata": {"contact_count": 50_000}}
    assert _deliver(harness, secret, "task.updated", grown, signed=timedelta(minutes=1)).status_code == 200
    harness.settle()
    older = {**task, "metadata": {"contact_count": 40}}
    assert _deliver(harness, secret, "task.updated", older, signed=timedelta(minutes=2)).status_code == 200
    harness.settle()
    assert _contacts(harness, slack, "wh-12") == "50,000"
    assert "confirm" in _approve_button(harness, slack, "wh-12")
    late_created = {**task, "metadata": {"contact_count": 5}}
    _deliver(harness, secret, "task.created", late_created, signed=timedelta(minutes=4))
    late_state = {**task, "status": "dismissed", "metadata": {"contact_count": 40}}
    _deliver(harness, secret, "task.dismissed", late_state, signed=timedelta(minutes=2))
    harness.settle()
    row = harness.store.get("wh-12")
    assert row.task.metadata == {"contact_count": 50_000} and row.state == "pending"


def test_a_replay_is_refused_by_every_replica(
    hooked: tuple[BotHarness, str], sandbox: Sandbox, slack: SlackStandIn, database_url: str
) -> None:
    """The replay cache lives in the database: a body applied by one replica is a duplicate for another."""
    harness, secret = hooked
    body = _envelope("task.created", _task("wh-13"))
    assert _post(harness, secret, body).json() == {"ok": True}
    other = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET=secret)
    try:
        assert _post(other, secret, body).json() == {"ok": True, "duplicate": True}
    finally:
        other.close()


def test_a_poll_is_newer_than_deliveries_signed_before_it(
    sandbox: Sandbox, slack: SlackStandIn, database_url: str, tmp_path: Path
) -> None:
    """What the poller fetched is as of the poll: a delivery signed before it changes nothing, a later one applies."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(CAMPAIGN_POLICY)
    secret = "whsec_" + "c" * 40
    harness = start_bot(sandbox, slack, database_url, LEXI_WEBHOOK_SECRET=secret, LEXI_POLICY_FILE=str(path))
    try:
        task = sandbox.add_task("campaign_start", "Start campaign 'Q1'", {"contact_count": 50_000})
        harness.poll()
        harness.settle()
        assert _contacts(harness, slack, task["id"]) == "50,000"
        older = {**task, "metadata": {"contact_count": 40}}
        assert _deliver(harness, secret, "task.updated", older, signed=timedelta(minutes=1)).status_code == 200
        harness.settle()
        assert _contacts(harness, slack, task["id"]) == "50,000"
        newer = {**task, "metadata": {"contact_count": 45_000}}
        assert _deliver(harness, secret, "task.updated", newer, signed=-timedelta(seconds=2)).status_code == 200
        harness.wait_for(lambda: _contacts(harness, slack, task["id"]) == "45,000")
    finally:
        harness.close()


def test_a_delivery_the_bot_cannot_queue_is_left_for_leadlex_to_retry(hooked: tuple[BotHarness, str]) -> None:
    """Shutting down, the bot answers 503 and forgets the body, so LeadLex's retry is not taken for a replay."""
    harness, secret = hooked
    harness.runtime.queues["cards"].shutdown()
    body = _envelope("task.created", _task("wh-14"))
    response = _post(harness, secret, body)
    assert response.status_code == 503 and response.json()["error"]
    digest = hashlib.sha256(body).hexdigest()
    assert harness.store.first_sighting(f"webhook:{digest}", datetime.now(UTC) + timedelta(hours=1))


# --- malformed deliveries (issue 11) ------------------------------------------------------------------


def _fresh() -> str:
    """A signed timestamp of now."""
    return datetime.now(UTC).isoformat()


def _malformed(kind: str) -> bytes:
    """A correctly shaped-or-not delivery body of one malformed kind."""

    def envelope(**fields: object) -> bytes:
        return json.dumps({"event": "task.created", "timestamp": _fresh(), "workspace_id": "ws", **fields}).encode()

    task = _task("wh-20")
    bodies = {
        "null": b"null",
        "true": b"true",
        "number": b"3",
        "string": b'"x"',
        "list": b"[]",
        "data-null": envelope(data=None),
        "data-number": envelope(data=3),
        "data-list": envelope(data=[task]),
        "task-string": envelope(data={"task": "wh-20"}),
        "task-list": envelope(data={"task": [task]}),
        "task-null": envelope(data={"task": None}),
        "no-id": envelope(data={"task": {"type": "prospect_search"}}),
        "id-true": envelope(data={"task": {**task, "id": True}}),
        "id-empty": envelope(data={"task": {**task, "id": ""}}),
        "id-object": envelope(data={"task": {**task, "id": {"a": 1}}}),
        "id-too-long": envelope(data={"task": {**task, "id": "x" * 300}}),
        "id-nul": envelope(data={"task": {**task, "id": "wh-20\u0000"}}),
        "event-number": envelope(event=3, data={"task": task}),
        "event-list": envelope(event=["task.created"], data={"task": task}),
        "invalid-utf8": b'{"event": "task.created", "timestamp": "' + _fresh().encode() + b'", "x": "\xff\xfe"}',
        "deep": (
            b'{"event": "task.created", "timestamp": "'
            + _fresh().encode()
            + b'", "data": {"task": {"id": "wh-20", "metadata": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}}}"
        ),
        "infinite": envelope(data={"task": {**task, "metadata": {"contact_count": 1e999}}}).replace(
            b"Infinity", b"1e999"
        ),
        "nan": envelope(data={"task": {**task, "metadata": {"contact_count": float("nan")}}}),
        "huge-int": envelope(data={"task": {**task, "metadata": {}}}).replace(b"{}", b'{"n": ' + b"9" * 5000 + b"}"),
        "lone-surrogate": envelope(data={"task": task}).replace(b"Find CFOs", b"Find \\ud800 CFOs"),
    }
    return bodies[kind]


MALFORMED = [
    "null",
    "true",
    "number",
    "string",
    "list",
    "data-null",
    "data-number",
    "data-list",
    "task-string",
    "task-list",
    "task-null",
    "no-id",
    "id-true",
    "id-empty",
    "id-object",
    "id-too-long",
    "id-nul",
    "event-number",
    "event-list",
    "invalid-utf8",
    "deep",
    "infinite",
    "nan",
    "huge-int",
    "lone-surrogate",
]


@pytest.mark.parametrize("kind", MALFORMED)
def test_signed_malformed_deliveries_get_400_with_a_reason(
    hooked: tuple[BotHarness, str], slack: SlackStandIn, kind: str
) -> None:
    """Correctly signed but malformed bodies are answered 400 with a reason, change nothing, and stop nothing."""
    harness, secret = hooked
    response = _post(harness, secret, _malformed(kind))
    assert response.status_code == 400 and response.json()["ok"] is False and response.json()["error"]
    harness.settle()
    assert _posted(slack) == [] and harness.store.get("wh-20") is None
    assert _deliver(harness, secret, "task.created", _task("wh-21")).status_code == 200
    harness.wait_for(lambda: _posted(slack) == ["wh-21"])


def test_logged_delivery_text_is_quoted_and_truncated(
    hooked: tuple[BotHarness, str], slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """Ids from a delivery are logged quoted and cut short: a newline never starts a line, a long id never floods."""
    harness, secret = hooked
    forged = "wh-22\n2026-12-03 12:00:00 CRITICAL bot: forged line"
    _deliver(harness, secret, "task.created", _task(forged))
    harness.wait_for(lambda: _posted(slack))
    _deliver(harness, secret, "task.approved", _task(forged, "approved"))
    harness.settle()
    long_id = "d" * 5000
    body = _envelope("task.created", _task("wh-23"))
    harness.http.post(
        f"{harness.url}/lexi/webhooks",
        content=body,
        headers={"X-LeadLex-Signature": "sha256=" + "0" * 64, "X-LeadLex-Delivery-ID": long_id},
    )
    harness.settle()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("bot.core.webhooks")]
    assert any("now approved" in m for m in messages) and any("refused" in m for m in messages)
    assert all("\n" not in m and len(m) < 500 for m in messages)
