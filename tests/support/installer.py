"""The multi-workspace bot on loopback for tests: the real Bolt app over HTTP, installed through the Slack stand-in.

`start_installer` serves the app of multi-workspace mode; with `serve_tenants`, installs are recorded in the
workspace registry and connected workspaces are served by their runtimes (bot.tenants), as `lexi-bot run` does.
The browser is httpx: it opens /slack/install, follows the "Add to Slack" link to the stand-in's consent page
(which allows at once) and the redirect back, carrying the state cookie as a browser would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

from bot.config import load_settings
from bot.db import migrate
from bot.db.store import Store
from bot.db.vault import generate_key
from bot.db.workspaces import Workspaces
from bot.dev.standin import payloads
from bot.dev.standin.oauth import CLIENT_ID, CLIENT_SECRET
from bot.dev.standin.slack import SlackStandIn
from bot.ops.metrics import Metrics
from bot.ops.server import HttpFront, WsgiApp, make_wsgi
from bot.slack.app import ListenerPool, create_multi_workspace_app
from bot.slack.install import InstallSettings, authorizer
from bot.tenants import Tenants
from bot.wiring import Timing
from bot.workers import Workers
from tests.support.harness import SECRETS_GIVEN, SIGNING_SECRET

COOKIE = "slack-app-oauth-state"


@dataclass
class Installer:
    """The multi-workspace bot on loopback, its store, and a browser to install it with."""

    url: str
    store: Store
    slack: SlackStandIn
    listeners: ListenerPool
    browser: httpx.Client
    #: With `serve_tenants`: the workspace registry installs are recorded in, and the connected workspaces' runtimes.
    registry: Workspaces | None = None
    tenants: Tenants | None = None

    def install_page(self, **query: str) -> tuple[str, str]:
        """Open /slack/install: the Add-to-Slack link and the state cookie it set."""
        page = self.browser.get(f"{self.url}/slack/install", params=query)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        link = unescape(re.search(r'<a href="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
        cookie = page.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie
        return link, cookie.split(";", 1)[0]

    def consent(self, link: str) -> str:
        """Follow the link to Slack's consent page and return where it sends the browser back to."""
        answer = self.browser.get(link)
        assert answer.status_code == 302, answer.text
        back = answer.headers["location"]
        assert back.startswith(f"{self.url}/slack/oauth_redirect?")
        return str(back)

    def come_back(self, back: str, cookie: str | None) -> httpx.Response:
        """Arrive at the redirect with (or without) the state cookie, as the browser that started would."""
        headers = {"Cookie": cookie} if cookie else {}
        return self.browser.get(back, headers=headers)

    def install(self, **query: str) -> httpx.Response:
        """The whole flow: install page, consent, redirect back."""
        link, cookie = self.install_page(**query)
        return self.come_back(self.consent(link), cookie)

    def installation(self, team_id: str | None, enterprise_id: str | None = None) -> Installation | None:
        """The installation the bot stored for a team (or an org-wide install), read with slack_sdk's store."""
        found = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=self.store.engine).find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=team_id is None
        )
        if found is not None:  # the session's log scan looks for the tokens Slack issued too
            SECRETS_GIVEN.update(t for t in (found.bot_token, found.bot_refresh_token) if t)
        return found

    def post_event(self, envelope: dict[str, Any]) -> httpx.Response:
        """POST an Events API envelope to /slack/events, signed as Slack signs it; wait for its listener."""
        return self._post(payloads.encode_event(envelope))

    def post_interactive(self, payload: dict[str, Any]) -> httpx.Response:
        """POST an interactivity payload (a click, a modal's submission), signed; wait for its listener."""
        return self._post(payloads.encode_interactive(payload))

    def _post(self, encoded: tuple[bytes, str]) -> httpx.Response:
        """POST a body to /slack/events with Slack's signature headers; wait for Bolt's listeners to finish."""
        body, content_type = encoded
        headers = payloads.signed_request(SIGNING_SECRET, body, content_type)
        answer = self.browser.post(f"{self.url}/slack/events", content=body, headers=headers)
        assert self.listeners.wait_idle(10), "Bolt's listeners did not finish in time"
        return answer


def _tenants(
    slack: SlackStandIn, store: Store, database_url: str, key: str | None = None
) -> tuple[Workspaces, Tenants]:
    """A registry with `key` (default: a fresh encryption key), and its connected workspaces' runtimes (fast pacing).

    Polls refresh expiring bot tokens through the stand-in, as `lexi-bot run`'s do.
    """
    key = key or generate_key()
    settings = load_settings(
        {
            "SLACK_CLIENT_ID": CLIENT_ID,
            "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "LEXI_ENCRYPTION_KEYS": key,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": database_url,
            "POLL_INTERVAL": "1",
        }
    )
    SECRETS_GIVEN.add(key)
    registry = Workspaces(store.engine, settings.vault())
    metrics = Metrics()
    installations = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=store.engine)
    install = InstallSettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    tenants = Tenants(
        settings,
        store,
        registry,
        installations,
        tokens=authorizer(install, store.engine, WebClient(base_url=slack.api_url), installations),
        workers=Workers(metrics),
        metrics=metrics,
        timing=Timing(post_interval=0.0, home_debounce=0.05),
        lexi_options={"max_wait": 5.0, "sleep": lambda s: time.sleep(min(s, 0.05))},
    )
    return registry, tenants


def start_installer(
    slack: SlackStandIn,
    database_url: str,
    *,
    serve_tenants: bool = False,
    app_options: dict[str, Any] | None = None,
    encryption_key: str | None = None,
    **options: Any,
) -> Iterator[Installer]:
    """Migrate, build the multi-workspace app on the store's engine, and serve it on 127.0.0.1 (a free port).

    `options` are InstallSettings', `app_options` create_multi_workspace_app's; with `serve_tenants` the app records
    installs and serves connected workspaces (a changed workspace's runtime is rebuilt: `on_change`), with
    `encryption_key` as LEXI_ENCRYPTION_KEYS (default: a fresh one; replicas of one database share theirs).
    """
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    registry, tenants = _tenants(slack, store, database_url, encryption_key) if serve_tenants else (None, None)
    holder: dict[str, WsgiApp] = {}

    def serve(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        """Serve with the app built once the port is known (the redirect URL names it)."""
        return holder["wsgi"](environ, start)

    front = HttpFront(serve, "127.0.0.1", 0, threads=4)
    url = f"http://127.0.0.1:{front.port}"
    settings = InstallSettings(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=f"{url}/slack/oauth_redirect",
        authorization_url=slack.authorize_url,
        **options,
    )
    SECRETS_GIVEN.update({CLIENT_SECRET, SIGNING_SECRET})
    app = create_multi_workspace_app(
        settings,
        store,
        signing_secret=SIGNING_SECRET,
        client=WebClient(base_url=slack.api_url),
        **({"workspaces": registry, "tenants": tenants, "on_change": tenants.forget} if tenants is not None else {}),
        **(app_options or {}),
    )
    if tenants is None:
        holder["wsgi"] = make_wsgi(app, health=dict)
    else:
        holder["wsgi"] = make_wsgi(
            app,
            health=tenants.health,
            ready=tenants.readiness,
            metrics=tenants.metrics,
            webhook_for=tenants.webhook_for,
        )
    front.start()
    pool = app.listener_runner.listener_executor
    assert isinstance(pool, ListenerPool)
    browser = httpx.Client(timeout=10)
    try:
        yield Installer(url, store, slack, pool, browser, registry, tenants)
    finally:
        browser.close()
        front.stop(5)
        pool.shutdown(wait=True)
        if tenants is not None:
            tenants.close(5)
        store.close()
