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

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Installation, InstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.db.workspaces import Workspaces
from bot.slack.authorize import AuthorizeResults, SerialRefreshAuthorize

log = logging.getLogger(__name__)

#: The bot scopes an install asks for: manifest.distribution.yml's `oauth_config.scopes.bot` (manifest.yml's and what
#: the setup needs: users:read to tell admins, channels:join to join the announcement channel), written out because
#: the manifest is not shipped in the wheel (tests/scenarios/test_install.py holds the two equal).
BOT_SCOPES = (
    "chat:write",
    "commands",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
    "usergroups:read",
    "assistant:write",
    "im:history",
    "im:write",
    "app_mentions:read",
    "users:read",
    "channels:join",
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


def oauth_settings(
    settings: InstallSettings, engine: Engine, client: WebClient, *, registry: Workspaces | None = None
) -> OAuthSettings:
    """Bolt's OAuth settings: slack_sdk's stores on `engine`, our pages, and token refreshes through `client`.

    `client` is the app's Web API client (its base URL is where oauth.v2.access is called, for installs and for
    token refreshes alike). Each successful install is recorded in `registry`, when given.
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
        callback_options=CallbackOptions(success=recorder(registry) if registry else _installed, failure=_failed),
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
    oauth.authorize = authorizer(settings, engine, client, installations)
    return oauth


def authorizer(
    settings: InstallSettings, engine: Engine, client: WebClient, installations: InstallationStore | None = None
) -> SerialRefreshAuthorize:
    """The authorizer of requests, which also gives polls their bot tokens (refreshed once at a time, on `client`).

    Its auth.test answers are kept per token (AuthorizeResults).
    """
    found = SerialRefreshAuthorize(
        engine=engine,
        logger=log,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_rotation_expiration_minutes=settings.token_rotation_expiration_minutes,
        installation_store=installations
        or SQLAlchemyInstallationStore(client_id=settings.client_id, engine=engine, logger=log),
        client=client,
        cache_enabled=True,
    )
    found.authorize_result_cache = AuthorizeResults()
    return found


def home_url(installation: Installation) -> str:
    """Where an installer goes next: the app's Home tab in their workspace.

    For an org-wide install, the organization's page for adding the app to its workspaces (as Bolt's own success
    page does).
    """
    if installation.is_enterprise_install and installation.enterprise_url:
        return f"{installation.enterprise_url}manage/organization/apps/profile/{installation.app_id}/workspaces/add"
    team = installation.team_id or installation.enterprise_id or ""
    return "slack://app?" + urlencode({"team": team, "id": installation.app_id or "", "tab": "home"})


def workspace_id(installation: Installation) -> str:
    """The registry id of an installation's workspace: its team, or for an org-wide install its organization."""
    if installation.is_enterprise_install:
        return installation.enterprise_id or ""
    return installation.team_id or ""


def recorder(registry: Workspaces) -> Callable[[SuccessArgs], BoltResponse]:
    """The success callback that records the install in the workspace registry before sending the installer on."""

    def installed(args: SuccessArgs) -> BoltResponse:
        """Record the workspace (idempotent: a reinstall keeps its configuration), then answer as `_installed`."""
        installation = args.installation
        try:
            registry.installed(
                workspace_id(installation),
                enterprise_id=installation.enterprise_id,
                is_enterprise_install=bool(installation.is_enterprise_install),
                installer=installation.user_id,
            )
        except SQLAlchemyError as exc:
            log.warning("an install could not be recorded in the workspace registry (%s)", type(exc).__name__)
            return _failed(
                FailureArgs(
                    request=args.request,
                    reason="storage_error",
                    settings=args.settings,
                    default=args.default,
                    error=exc,
                    suggested_status_code=503,
                )
            )
        return _installed(args)

    return installed


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
