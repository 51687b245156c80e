"""A running bot for integration tests: the real Bolt app behind waitress on loopback, a sandbox, a Slack stand-in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from bot.config import Settings, load_settings
from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime
from bot.service import Service
from bot.slack.app import ListenerPool, create_app

SIGNING_SECRET = "test-signing-secret-0123456789"
#: The LeadLex webhook secret of the `hooked` fixture's bot.
WEBHOOK_SECRET = "whsec_" + "p" * 40
#: Every secret a bot under test was configured with; the session's log scan looks for them (tests/conftest.py).
SECRETS_GIVEN: set[str] = set()
CHANNEL = "C0LEXI"


def bot_env(sandbox: Sandbox, slack: SlackStandIn, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a bot pointed at the sandbox and the stand-in, as a user would configure it."""
    return {
        "LEXI_API_KEY": sandbox.api_key,
        "LEXI_API_URL": sandbox.url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_CHANNEL": CHANNEL,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": database_url,
        "POLL_INTERVAL": "1",
        **extra,
    }


def bot_settings(sandbox: Sandbox, slack: SlackStandIn, database_url: str, **extra: str) -> Settings:
    """Settings from that environment."""
    return load_settings(bot_env(sandbox, slack, database_url, **extra))


@dataclass
class BotHarness:
    """The bot under test, reachable over HTTP, plus helpers to act on it as Slack would."""

    service: Service
    url: str
    slack: SlackStandIn
    sandbox: Sandbox
    listeners: ListenerPool | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def runtime(self) -> Runtime:
        """The bot's runtime."""
        return self.service.runtime

    @property
    def store(self) -> Store:
        """The bot's store."""
        return self.runtime.store

    def poll(self) -> float:
        """Run one poll cycle now, as the poller thread would, and wait until the work it queued is done.

        The poller lock is taken first; the queued work is announcements, card updates and reminders.
        """
        delay = self.cycle()
        self.settle()
        return delay

    def cycle(self) -> float:
        """Run one poll cycle now and return at once: what it queued may still be waiting."""
        assert self.runtime.leadership is None or self.runtime.leadership.hold(), "another bot holds the poller"
        return self.runtime.poller.cycle()

    def post(
        self, body: bytes, content_type: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
    ) -> httpx.Response:
        """POST a request to /slack/events signed as Slack signs it."""
        headers = payloads.signed_request(secret, body, content_type, timestamp)
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def click(self, action_id: str, task_id: str, user: str = "UALICE", **kwargs: Any) -> httpx.Response:
        """Click a card button as `user`."""
        row = self.store.get(task_id)
        payload = payloads.build_block_action(
            action_id=action_id,
            value=task_id,
            user=user,
            channel=CHANNEL,
            message_ts=row.message_ts if row else None,
            trigger_id=self.slack.new_trigger_id(user),
            response_url=self.slack.new_response_url(),
            **kwargs,
        )
        return self.post(*payloads.encode_interactive(payload))

    def command(self, text: str, user: str = "UALICE") -> httpx.Response:
        """Run /lexi <text> as `user`."""
        fields = payloads.build_slash_command(
            text=text,
            user=user,
            response_url=self.slack.new_response_url(),
            trigger_id=self.slack.new_trigger_id(user),
        )
        return self.post(*payloads.encode_command(fields))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until Bolt's listeners and then the bot's own workers have finished everything (bounded).

        Bolt answers an event before its listener runs, so the listeners are waited for first: the work they queue
        is then in the workers' queues.
        """
        if self.listeners is not None:
            assert self.listeners.wait_idle(timeout), "Bolt's listeners did not finish in time"
        assert self.runtime.drain(timeout), "the bot's workers did not settle in time"

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll `predicate` until truthy (bounded)."""
        return self.slack.wait_for(predicate, timeout=timeout)

    def close(self) -> None:
        """Stop the server and the runtime."""
        self.service.close()
        self.http.close()


def start_bot(
    sandbox: Sandbox,
    slack: SlackStandIn,
    database_url: str,
    *,
    post_interval: float = 0.0,
    claim_timeout: timedelta = timedelta(seconds=90),
    lexi_options: dict[str, Any] | None = None,
    **extra: str,
) -> BotHarness:
    """Migrate the database and start the bot's HTTP front on 127.0.0.1 (a free port)."""
    settings = bot_settings(sandbox, slack, database_url, **extra)
    SECRETS_GIVEN.update(settings.secrets())
    store = Store.from_url(settings.database_url)
    migrate.upgrade(store.engine)
    options = {"max_wait": 5.0, "sleep": lambda s: time.sleep(min(s, 0.05))}
    options.update(lexi_options or {})
    runtime = Runtime.build(
        settings,
        store=store,
        post_interval=post_interval,
        claim_timeout=claim_timeout,
        lexi_options=options,
        home_debounce=0.05,
    )
    service = Service(runtime)
    app = create_app(runtime)
    front = service.serve_http(app, "127.0.0.1", 0, stop_timeout=5)
    pool = app.listener_runner.listener_executor
    listeners = pool if isinstance(pool, ListenerPool) else None
    return BotHarness(service, f"http://127.0.0.1:{front.port}", slack, sandbox, listeners)
