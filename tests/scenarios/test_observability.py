"""Issue 6, observability: /metrics, /readyz and /healthz of a running bot."""

from __future__ import annotations

import re

from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.slack import blocks
from tests.support.harness import BotHarness


def _metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?") + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_announcements_decisions_and_calls(bot: BotHarness, sandbox: Sandbox) -> None:
    """/metrics counts announcements, LeadLex calls by endpoint (ids folded) and status, and the budget left."""
    task_id = sandbox.add_task()["id"]
    bot.poll()
    bot.click(blocks.APPROVE_ACTION, task_id)
    bot.settle()
    response = bot.http.get(f"{bot.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _metric(text, "lexi_tasks_announced_total") == 1
    assert _metric(text, "lexi_leadlex_calls_total", 'endpoint="GET /v1/lexi/tasks",status="200"') >= 1
    assert _metric(text, "lexi_leadlex_calls_total", 'endpoint="POST /v1/lexi/tasks/{id}/approve",status="200"') == 1
    assert task_id not in text
    assert _metric(text, "lexi_leadlex_budget_remaining") > 0


def test_metrics_count_slack_errors(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """Slack errors are counted by code."""
    sandbox.add_task()
    slack.fail_next("chat.postMessage", "channel_not_found")
    bot.poll()
    text = bot.http.get(f"{bot.url}/metrics").text
    assert _metric(text, "lexi_slack_api_errors_total", 'error="channel_not_found"') == 1


def test_readiness_follows_polls_and_credentials(bot: BotHarness, sandbox: Sandbox, slack: SlackStandIn) -> None:
    """/readyz is 503 before the first poll, 200 after, and 503 naming the cause when a credential is refused."""
    before = bot.http.get(f"{bot.url}/readyz")
    assert before.status_code == 503 and before.json()["poll"] == "no successful poll yet"
    bot.poll()
    ready = bot.http.get(f"{bot.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["database"] == "ok"
    sandbox.fail_next("GET", "/v1/lexi/tasks", status=401, code="invalid_key")
    bot.poll()
    refused = bot.http.get(f"{bot.url}/readyz")
    assert refused.status_code == 503 and "invalid_key" in refused.json()["leadlex"]
    bot.poll()
    assert bot.http.get(f"{bot.url}/readyz").status_code == 200
    sandbox.add_task()
    slack.fail_next("chat.postMessage", "invalid_auth")
    bot.poll()
    slack_refused = bot.http.get(f"{bot.url}/readyz")
    assert slack_refused.status_code == 503 and "invalid_auth" in slack_refused.json()["slack"]


def test_healthz_reports_mode(bot: BotHarness) -> None:
    """/healthz is live from the start and says the connection mode."""
    body = bot.http.get(f"{bot.url}/healthz").json()
    assert body["ok"] is True and body["mode"] == "http"
