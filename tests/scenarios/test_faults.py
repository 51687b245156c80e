"""Behaviours 5 and 6: LeadLex and Slack faults, hostile text, malformed tasks, forged requests."""

from __future__ import annotations

import json
import logging
import time

import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import CHANNEL, SIGNING_SECRET, BotHarness


def _posted_ids(slack: SlackStandIn) -> list[str]:
    """Task ids of the top-level messages in the channel."""
    return [
        m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.thread_ts is None and m.metadata
    ]


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 502, "body": "<html><body>Bad Gateway</body></html>"},
        {"status": 200, "body": "<html>maintenance</html>"},
        {"status": 429, "retry_after": 0.1},
        {"status": 429},
    ],
    ids=["500", "gateway-page", "non-json-200", "429-retry-after", "429-bare"],
)
def test_transient_leadlex_faults_are_retried(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, fault: dict
) -> None:
    """5xx, HTML pages and 429s on the task list are retried; the task is announced exactly once."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    sandbox.fail_next("GET", "/v1/lexi/tasks", times=2, **fault)
    bot.poll()
    bot.poll()
    assert _posted_ids(slack) == [task_id]


def test_timeouts_are_retried(sandbox: Sandbox, slack: SlackStandIn, database_url: str) -> None:
    """A LeadLex that does not answer in time is retried, and the task is announced once."""
    from tests.support.harness import start_bot

    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=200, delay=1.0, times=1)
    harness = start_bot(sandbox, slack, database_url, lexi_options={"timeout": 0.3})
    try:
        harness.poll()
    finally:
        harness.close()
    assert _posted_ids(slack) == [task_id]


def test_persistent_outage_backs_off_and_loses_nothing(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """When LeadLex is down for a whole cycle, the poller waits longer, then announces once it is back."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=503, times=4)
    delay = bot.poll()
    assert delay > bot.runtime.poller.interval * 0.9
    assert _posted_ids(slack) == []
    assert bot.poll() == bot.runtime.poller.interval
    assert _posted_ids(slack) == [task_id]


@pytest.mark.parametrize(("key_kind", "words"), [("unknown", "invalid_key"), ("no_lexi", "Lexi permission")])
def test_key_refused_later_is_reported_once_and_backs_off(
    bot: BotHarness,
    sandbox: Sandbox,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
    key_kind: str,
    words: str,
) -> None:
    """A key revoked while running is logged once, posted to the channel once, and polling backs off."""
    status, code = (401, "invalid_key") if key_kind == "unknown" else (403, "insufficient_permissions")
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=status, code=code, times=3)
    with caplog.at_level(logging.ERROR):
        delays = [bot.poll() for _ in range(3)]
    notices = [m for m in slack.messages(CHANNEL) if "cannot work" in m.text]
    assert len(notices) == 1 and words in notices[0].text
    assert len([r for r in caplog.records if code in r.getMessage()]) == 1
    assert delays[0] > bot.runtime.poller.interval * 0.9
    assert bot.poll() == bot.runtime.poller.interval  # the key works again


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found", "invalid_auth"])
def test_slack_setup_errors_are_explained_and_lose_nothing(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    """Slack setup errors on posting are logged with what to fix; the task is announced once fixed."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    slack.fail_next("chat.postMessage", error)
    with caplog.at_level(logging.ERROR):
        bot.poll()
    assert bot.store.get(task_id) is None
    assert any(error in r.getMessage() for r in caplog.records)
    bot.poll()
    assert task_id in _posted_ids(slack)


def test_hostile_text_cannot_ping_mention_or_disguise_links(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Mentions, channel pings and link markup in task text arrive escaped, never as live mrkdwn."""
    evil = "Hi <!channel> and <!here> <@U0BOSS> see <https://evil.example|your bank> & more"
    task_id = sandbox.add_task("campaign_start", evil, {"campaign_id": "<!everyone>", "contact_count": 5})["id"]
    bot.poll()
    (message,) = slack.messages(CHANNEL)
    raw = json.dumps(message.blocks) + message.text
    for live in ("<!channel>", "<!here>", "<@U0BOSS>", "<https://evil", "<!everyone>"):
        assert live not in raw
    assert "&lt;!channel&gt;" in raw and "&amp; more" in raw
    assert bot.store.get(task_id).state == "pending"


def test_odd_tasks_are_announced_and_never_stop_the_others(
    bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn
) -> None:
    """Tasks with missing or odd fields are announced; an item without an id is skipped; none blocks the rest."""
    sandbox.add_raw_task({"id": "odd-1", "type": None, "metadata": None, "description": None})
    sandbox.add_raw_task(
        {"id": 12345, "type": "prospect_search", "metadata": ["not", "a", "dict"], "created_at": "yesterday"}
    )
    sandbox.add_raw_task({"description": "no id at all"})
    sandbox.add_raw_task("not even an object")
    huge = sandbox.add_task("contact_update", "x" * 100_000, {f"field_{i}": "v" * 500 for i in range(300)})["id"]
    normal = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    bot.poll()
    assert sorted(_posted_ids(slack)) == sorted(["odd-1", "12345", huge, normal])
    (big,) = [m for m in slack.messages(CHANNEL) if m.metadata["event_payload"]["task_id"] == huge]
    assert "…" in json.dumps(big.blocks, ensure_ascii=False)


def test_forged_or_stale_requests_are_rejected(bot: BotHarness, sandbox: Sandbox) -> None:
    """A wrong signature or a timestamp more than five minutes off is refused, and nothing is decided."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    bot.poll()
    payload = payloads.build_block_action(action_id=blocks.APPROVE_ACTION, value=task_id)
    body, content_type = payloads.encode_interactive(payload)
    assert bot.post(body, content_type, secret="not-the-secret").status_code == 401
    assert bot.post(body, content_type, timestamp=int(time.time()) - 600).status_code == 401
    unsigned = bot.http.post(f"{bot.url}/slack/events", content=body, headers={"Content-Type": content_type})
    assert unsigned.status_code == 401
    bot.settle()
    assert sandbox.task(task_id)["status"] == "pending"
    assert bot.post(body, content_type, secret=SIGNING_SECRET).status_code == 200


def test_healthz_answers(bot: BotHarness) -> None:
    """GET /healthz reports liveness as JSON; unknown paths are 404."""
    response = bot.http.get(f"{bot.url}/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert bot.http.get(f"{bot.url}/nope").status_code == 404
