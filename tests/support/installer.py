"""The multi-workspace bot on loopback, with a browser to install it through the Slack stand-in's OAuth flow."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

from bot.db import migrate
from bot.db.store import Store
from bot.dev.standin import payloads
from bot.dev.standin.oauth import CLIENT_ID, CLIENT_SECRET
from bot.dev.standin.slack import SlackStandIn
from bot.ops.server import HttpFront, WsgiApp, make_wsgi
from bot.slack.app import ListenerPool, create_multi_workspace_app
from bot.slack.install import InstallSettings
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


def start_installer(
    slack: SlackStandIn, database_url: str, *, app_options: dict[str, Any] | None = None, **options: Any
) -> Iterator[Installer]:
    """Migrate, build the multi-workspace app on the store's engine, and serve it on 127.0.0.1 (a free port).

    `options` go to InstallSettings, `app_options` to create_multi_workspace_app.
    """
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
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
        settings, store, signing_secret=SIGNING_SECRET, client=WebClient(base_url=slack.api_url), **(app_options or {})
    )
    holder["wsgi"] = make_wsgi(app, health=dict)
    front.start()
    pool = app.listener_runner.listener_executor
    assert isinstance(pool, ListenerPool)
    browser = httpx.Client(timeout=10)
    try:
        yield Installer(url, store, slack, pool, browser)
    finally:
        browser.close()
        front.stop(5)
        pool.shutdown(wait=True)
        store.close()
