"""Prometheus metrics of one running bot, in a registry of its own (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Endpoint prefixes whose next path part is an id, folded to "{id}" so a label stays one per endpoint.
_ID_AFTER = (("v1", "lexi", "tasks"), ("v1", "webhooks"))


class Metrics:
    """The bot's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.announced = Counter("lexi_tasks_announced", "Tasks announced in Slack", registry=r)
        self.unparseable = Counter(
            "lexi_tasks_unparseable",
            "Listed tasks that could not be read in full (each counted once), by problem",
            ["problem"],
            registry=r,
        )
        self.poll_failures = Counter(
            "lexi_poll_cycle_failures",
            "Poll cycles stopped by an unexpected error (the poller carries on)",
            registry=r,
        )
        self.decided = Counter(
            "lexi_tasks_decided", "Decisions recorded, by outcome and surface", ["outcome", "surface"], registry=r
        )
        self.leadlex_calls = Counter(
            "lexi_leadlex_calls", "LeadLex API calls by endpoint and HTTP status", ["endpoint", "status"], registry=r
        )
        self.budget_remaining = Gauge(
            "lexi_leadlex_budget_remaining", "LeadLex calls left today (from the rate-limit headers)", registry=r
        )
        self.slack_errors = Counter("lexi_slack_api_errors", "Slack API errors by error code", ["error"], registry=r)
        self.poll_duration = Histogram("lexi_poll_duration_seconds", "Duration of one poll cycle", registry=r)
        self.webhooks = Counter("lexi_webhook_deliveries", "LeadLex webhook deliveries", ["result"], registry=r)
        self.decision_latency = Histogram(
            "lexi_decision_latency_seconds",
            "From a decision's claim to LeadLex's answer",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.workspace_polls = Counter(
            "lexi_workspace_polls",
            "Workspace polls the scheduler ran (multi-workspace mode), by result: ok, failed",
            ["result"],
            registry=r,
        )
        self.poll_lag = Histogram(
            "lexi_workspace_poll_lag_seconds",
            "How late a workspace's poll started after its planned next_poll_at (multi-workspace mode)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )

        self.queue_backlog = Gauge(
            "lexi_queue_backlog",
            "Work waiting in each of the bot's queues (announce: tasks waiting to be posted)",
            ["queue"],
            registry=r,
        )
        self.queue_running = Gauge(
            "lexi_queue_running", "Work running in each of the bot's queues", ["queue"], registry=r
        )

    def leadlex_call(self, method: str, path: str, status: int) -> None:
        """Count a LeadLex call, with task ids folded out of the endpoint label."""
        parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
        for prefix in _ID_AFTER:
            if len(parts) > len(prefix) and tuple(parts[: len(prefix)]) == prefix:
                parts[len(prefix)] = "{id}"
        self.leadlex_calls.labels(f"{method} /{'/'.join(parts)}", str(status)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
