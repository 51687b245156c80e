"""Installing the app into many workspaces: Bolt's OAuth flow on the bot's own database (multi-workspace mode).

`GET /slack/install` shows Bolt's "Add to Slack" page (its link carries a single-use state, also set as a cookie);
Slack sends the installer back to `GET /slack/oauth_redirect`, where Bolt exchanges the code at `oauth.v2.access`
and saves the installation in slack_sdk's `SQLAlchemyInstallationStore` (tables from migration 0008). From then on
Bolt authorizes every request by its team (or, for an org-wide Enterprise Grid install, its enterprise) and gives
listeners a client with that workspace's bot token, refreshing it first when token rotation is on.

The installer then lands on the app's Home tab; a failed install gets a short HTML page saying why, with a 4xx
status (503 when the database could not save it), never a traceback.
"""

from __future__ import annotations

import hashlib
import html
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

#: The bot scopes an install asks for: manifest.yml's `oauth_config.scopes.bot` (tests/test_install.py holds them
#: equal; the manifest is not shipped in the wheel, so they are written out here).
BOT_SCOPES = (
    "chat:write",
    "commands",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
    "usergroups:read",
)
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
#: Slack's consent page; tests point Bolt at the stand-in's instead.
AUTHORIZATION_URL = "https://slack.com/oauth/v2/authorize"

#: What the installer reads for each reason Bolt gives (or Slack sends back) for a failed install.
_REASONS = {
    "access_denied": "The installation was cancelled on Slack's side, so lexi-bot was not added to your workspace.",
    "invalid_browser": (
        "This installation was not started from this browser, or its link was already used. "
        "Please start again from the install page."
    ),
    "invalid_state": (
        "This installation link has expired or was already used. Please start again from the install page."
    ),
    "missing_code": "Slack's answer did not include an authorization code. Please start again from the install page.",
    "invalid_code": (
        "Slack did not accept this installation (the authorization code was invalid, expired or already used). "
        "Please start again from the install page."
    ),
    "storage_error": "lexi-bot could not save the installation. Please try again in a minute.",
}


@dataclass(frozen=True)
class InstallSettings:
    """What the OAuth flow needs besides the database: the app's credentials and where Slack sends people back."""

    client_id: str
    client_secret: str = field(repr=False)  # never in a log line that prints the settings
    #: The full redirect URL (https://HOST/slack/oauth_redirect); None: the one configured for the app at Slack.
    redirect_uri: str | None = None
    authorization_url: str = AUTHORIZATION_URL
    #: With token rotation on: refresh a bot token this many minutes before it expires (Bolt's default).
    token_rotation_expiration_minutes: int = 120
    #: How long an install link (its state) stays usable.
    state_expiration_seconds: int = 600


def oauth_settings(settings: InstallSettings, engine: Engine, client: WebClient) -> OAuthSettings:
    """Bolt's OAuth settings: slack_sdk's stores on `engine`, our pages, and token refreshes through `client`.

    `client` is the app's Web API client (its base URL is where oauth.v2.access is called, for installs and for
    token refreshes alike).
    """
    installations = SQLAlchemyInstallationStore(client_id=settings.client_id, engine=engine, logger=log)
    states = SQLAlchemyOAuthStateStore(expiration_seconds=settings.state_expiration_seconds, engine=engine, logger=log)
    oauth = OAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=list(BOT_SCOPES),
        user_scopes=[],
        redirect_uri=settings.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        callback_options=CallbackOptions(success=_installed, failure=_failed),
        authorization_url=settings.authorization_url,
        installation_store=installations,
        token_rotation_expiration_minutes=settings.token_rotation_expiration_minutes,
        state_store=states,
        state_expiration_seconds=settings.state_expiration_seconds,
        logger=log,
    )
    # OAuthSettings builds its authorizer with a client of its own, on slack.com: token refreshes must go where
    # the app's client goes (the same API base as installs). Without its cache, Bolt asks Slack's auth.test about
    # the token before every request it authorizes: a round trip to Slack ahead of each ack.
    oauth.authorize = SerialRefreshAuthorize(
        engine=engine,
        logger=log,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_rotation_expiration_minutes=settings.token_rotation_expiration_minutes,
        installation_store=installations,
        client=client,
        cache_enabled=True,
    )
    oauth.authorize.authorize_result_cache = AuthorizeResults()
    return oauth


class SerialRefreshAuthorize(InstallationStoreAuthorize):
    """Bolt's authorizer, refreshing a workspace's bot token once at a time, across threads and replicas.

    Slack's refresh tokens are single-use: two requests of one workspace refreshing at once (two threads, or two
    replicas) would spend the same refresh token twice, and the loser's request would be dropped. Here a refresh
    runs under a lock per workspace (on PostgreSQL also a transaction-scoped advisory lock, so across replicas);
    whoever waited re-reads the installation and uses the token the other one got.
    """

    #: Seconds a request waits for another's refresh of the same workspace before trying on its own.
    LOCK_TIMEOUT = 10.0

    def __init__(self, *, engine: Engine, **options: Any) -> None:
        super().__init__(**options)
        self._engine = engine

    def _rotate_and_save_tokens_if_necessary(self, installation: Installation | None) -> Installation | None:
        """Refresh an expiring bot token under the workspace's lock, unless another refresh just did."""
        if installation is None or not self._expiring(installation):
            return super()._rotate_and_save_tokens_if_necessary(installation)
        key = f"{installation.enterprise_id}:{installation.team_id}:{installation.is_enterprise_install}"
        with refresh_lock(self._engine, key, self.LOCK_TIMEOUT):
            current = self.installation_store.find_installation(
                enterprise_id=installation.enterprise_id,
                team_id=installation.team_id,
                is_enterprise_install=installation.is_enterprise_install,
            )
            if current is not None and current.bot_token != installation.bot_token and not self._expiring(current):
                return current  # refreshed meanwhile, by another thread or replica
            return super()._rotate_and_save_tokens_if_necessary(current or installation)

    def _expiring(self, installation: Installation) -> bool:
        """Whether the bot token is due for a refresh (Bolt's own rule: within the rotation window)."""
        expires_at = installation.bot_token_expires_at
        window = self.token_rotation_expiration_minutes * 60
        return (
            installation.bot_refresh_token is not None and expires_at is not None and expires_at <= time.time() + window
        )


#: In-process locks per (database, workspace) for token refreshes, shared by every app of this process.
_REFRESH_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_REFRESH_LOCKS_GUARD = threading.Lock()


def advisory_key(key: str) -> int:
    """The PostgreSQL advisory lock number of a workspace's token refreshes."""
    return int.from_bytes(hashlib.sha256(f"lexi-refresh:{key}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def refresh_lock(engine: Engine, key: str, timeout: float) -> Iterator[None]:
    """Hold a workspace's refresh lock: in this process, and on PostgreSQL across replicas (bounded waits)."""
    with _REFRESH_LOCKS_GUARD:
        lock = _REFRESH_LOCKS.setdefault((str(engine.url), key), threading.Lock())
    held = lock.acquire(timeout=timeout)
    if not held:
        log.warning("a token refresh waited %.0f s for another one of the same workspace; trying anyway", timeout)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        number = advisory_key(key)
        # A transaction-scoped advisory lock, held on a connection of its own until it is closed (rolled back).
        with engine.connect() as conn:
            try:
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout * 1000)}ms'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})
            except DBAPIError as exc:
                log.warning(
                    "a token refresh could not take its workspace's lock (%s); trying anyway", type(exc).__name__
                )
                conn.rollback()
            yield
    finally:
        if held:
            lock.release()


class AuthorizeResults(dict[str, AuthorizeResult]):
    """Bolt's authorize results by bot token (what auth.test said of it), bounded and safe across threads.

    Bolt asks `token in cache` and then reads `cache[token]`; an entry looked at in the last GRACE seconds is
    never dropped, so that read cannot miss. Past `limit` entries, the ones unused for longer are dropped, oldest
    first (rotated tokens leave one behind every 12 hours per workspace). A result is only looked up for a token
    the installation store still holds, so an uninstalled workspace's entry is never used.
    """

    GRACE = 60.0

    def __init__(self, limit: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._limit = limit
        self._clock = clock
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def __contains__(self, token: object) -> bool:
        """Whether a result is kept for `token` (which then counts as used now)."""
        with self._lock:
            found = super().__contains__(token)
            if found and isinstance(token, str):
                self._used[token] = self._clock()
            return found

    def __setitem__(self, token: str, result: AuthorizeResult) -> None:
        """Keep a result, dropping long-unused ones while there are more than the limit."""
        with self._lock:
            now = self._clock()
            super().__setitem__(token, result)
            self._used[token] = now
            if len(self) > self._limit:
                for old, used in sorted(self._used.items(), key=lambda item: item[1]):
                    if len(self) <= self._limit or used > now - self.GRACE:
                        break
                    super().__delitem__(old)
                    del self._used[old]


def home_url(installation: Installation) -> str:
    """Where an installer goes next: the app's Home tab in their workspace.

    For an org-wide install, the organization's page for adding the app to its workspaces (as Bolt's own success
    page does).
    """
    if installation.is_enterprise_install and installation.enterprise_url:
        return f"{installation.enterprise_url}manage/organization/apps/profile/{installation.app_id}/workspaces/add"
    team = installation.team_id or installation.enterprise_id or ""
    return "slack://app?" + urlencode({"team": team, "id": installation.app_id or "", "tab": "home"})


def _installed(args: SuccessArgs) -> BoltResponse:
    """The install succeeded: send the installer to the app's Home, and forget the state cookie."""
    installation = args.installation
    log.info(
        "installed in team %s (enterprise %s, org-wide %s) by %s",
        installation.team_id,
        installation.enterprise_id,
        installation.is_enterprise_install,
        installation.user_id,
    )
    target = home_url(installation)
    body = _page(
        "lexi-bot is installed",
        "lexi-bot was added to your workspace. Slack should open its Home tab now;",
        link=(target, "open it in Slack"),
    )
    headers: dict[str, str | Sequence[str]] = {
        "Content-Type": "text/html; charset=utf-8",
        "Location": target,
        "Set-Cookie": args.settings.state_utils.build_set_cookie_for_deletion(),
    }
    return BoltResponse(status=302, body=body, headers=headers)


def failure_status(reason: str) -> int:
    """The HTTP status of a failed install: 403 when consent was denied, 503 when saving failed, 400 otherwise."""
    if reason == "access_denied":
        return 403
    if reason == "storage_error":
        return 503
    return 400


def failure_page(reason: str, install_path: str = INSTALL_PATH) -> str:
    """The page an installer sees when the install failed: the reason in plain words (escaped) and a way back."""
    text = _REASONS.get(reason) or f"Slack ended the installation with the error “{reason}”."
    return _page("lexi-bot was not installed", text, link=(install_path, "Start again"))


def _failed(args: FailureArgs) -> BoltResponse:
    """The install failed: a friendly page with the reason, a 4xx (503 for storage), and the state cookie gone."""
    reason = args.reason
    status = failure_status(reason)
    log.log(
        logging.WARNING if status >= 500 else logging.INFO,  # noqa: PLR2004 - the server errors are the bot's own
        "an install failed: %s%s",
        reason,
        f" ({type(args.error).__name__})" if args.error else "",
    )
    headers: dict[str, str | Sequence[str]] = {
        "Content-Type": "text/html; charset=utf-8",
        "Set-Cookie": args.settings.state_utils.build_set_cookie_for_deletion(),
    }
    return BoltResponse(status=status, body=failure_page(reason, args.settings.install_path), headers=headers)


def _page(title: str, text: str, *, link: tuple[str, str]) -> str:
    """A small self-contained HTML page: a title, one paragraph and one link, every part escaped."""
    href, label = link
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)} <a href='{html.escape(href, quote=True)}'>{html.escape(label)}</a></p>"
        "</body></html>\n"
    )


def register(app: App) -> None:
    """Register what a freshly installed workspace sees: its Home tab."""
    app.event("app_home_opened")(handle_app_home_opened)


def handle_app_home_opened(event: dict[str, Any], client: WebClient) -> None:
    """Publish the opener's Home with the client Bolt authorized for their workspace (its own bot token)."""
    if event.get("tab", "home") != "home":
        return
    client.views_publish(user_id=str(event["user"]), view=welcome_view())


def welcome_view() -> dict[str, Any]:
    """The Home of a workspace where lexi-bot is installed but not yet connected to LeadLex."""
    text = (
        "*lexi-bot is installed in this workspace.*\n"
        "It is not connected to LeadLex yet: a workspace admin connects it here, and then Lexi's tasks "
        "waiting for approval appear in the channel they choose."
    )
    return {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
