"""Slack's OAuth v2 in the stand-in: the consent page, oauth.v2.access, token rotation, and whose token is whose.

Installing is what Bolt's OAuth flow does against slack.com: the browser is sent to `/oauth/v2/authorize`, where
Slack's consent page would ask the user; here "the user clicks Allow" at once, and the browser is redirected back
with a single-use code that `oauth.v2.access` exchanges (client id and secret by HTTP Basic or form fields) for
a bot token of the workspace that installed. Several workspaces, and Enterprise Grid organizations installing
org-wide, can install; each gets its own bot token, which the Web API then answers as that workspace.

Not thread-safe by itself: `bot.dev.standin.slack.SlackStandIn` serialises every call under one lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from bot.dev.standin.protocol import ApiError, Args
from bot.dev.standin.webapi import Workspace

#: Seconds an authorization code may wait for its exchange (Slack: 10 minutes), and a rotated token lives.
CODE_TTL = 600.0
TOKEN_LIFETIME = 12 * 3600
#: The OAuth client the stand-in's app has (Basic Information → App Credentials), unless told otherwise.
CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "standin-client-secret-0123456789"


@dataclass
class Team:
    """A workspace, or an Enterprise Grid organization installing org-wide, that can install the app."""

    id: str
    name: str
    workspace: Workspace
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    #: Org-wide install: the organization installs, `team` in oauth.v2.access's answer is null.
    is_enterprise_install: bool = False


@dataclass
class _Token:
    """A bot token: whose it is, when it stops working (None: never), whether it was revoked."""

    team: Team
    expires_at: float | None
    revoked: bool = False


@dataclass
class _Code:
    """An authorization code handed to the redirect: for one team, used once, within CODE_TTL."""

    team: Team
    scope: str
    user_scope: str
    redirect_uri: str | None
    installer: str
    issued_at: float
    used: bool = False


@dataclass(frozen=True)
class Redirect:
    """The consent page's answer: a 302 to `location`, or a 400 with `error` when it cannot redirect at all."""

    location: str | None
    error: str | None = None


@dataclass
class OAuth:
    """The app's OAuth side: its credentials, the teams that can install, codes, and every token issued."""

    clock: Callable[[], float]
    new_workspace: Callable[[str, str, str | None], Workspace]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    #: Token rotation (the app's "token_rotation_enabled"): tokens expire and come with refresh tokens.
    token_rotation: bool = False
    token_lifetime: int = TOKEN_LIFETIME
    #: The redirect URL configured for the app; used when the authorize URL names none.
    redirect_uri: str | None = None
    #: Who clicks Allow.
    installer: str = "UALICE"
    default_team: str = ""
    teams: dict[str, Team] = field(default_factory=dict)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _refresh: dict[str, Team] = field(default_factory=dict)
    _codes: dict[str, _Code] = field(default_factory=dict)
    _denials: int = 0

    # ----- set-up, from the stand-in and tests -----

    def add(self, team: Team, token: str | None = None) -> Team:
        """Let a team install (the first one added is the default); `token` is a bot token it already has."""
        self.teams[team.id] = team
        self.default_team = self.default_team or team.id
        if token is not None:
            self._tokens[token] = _Token(team, None)
        return team

    def deny_next(self, times: int = 1) -> None:
        """The next `times` visitors of the consent page click Cancel: redirected with error=access_denied."""
        self._denials += times

    def revoke(self, team_id: str) -> int:
        """Revoke every token and refresh token of a team (as uninstalling does); how many tokens were live."""
        live = 0
        for token in self._tokens.values():
            if token.team.id == team_id and not token.revoked:
                token.revoked, live = True, live + 1
        for refresh in [key for key, team in self._refresh.items() if team.id == team_id]:
            del self._refresh[refresh]
        return live

    def expire(self, team_id: str) -> None:
        """Let every token of a team expire now (a refresh token still gets a new one)."""
        now = self.clock()
        for token in self._tokens.values():
            if token.team.id == team_id:
                token.expires_at = now

    def team_of(self, token: str) -> str | None:
        """The team a token was issued to (revoked and expired ones too), None for a token never issued."""
        found = self._tokens.get(token)
        return found.team.id if found else None

    # ----- the consent page -----

    def authorize(self, query: dict[str, str]) -> Redirect:
        """GET /oauth/v2/authorize: the installer allows at once (or cancels, when told to): redirect back."""
        if query.get("client_id") != self.client_id:
            return Redirect(None, "invalid_client_id")
        redirect_uri = query.get("redirect_uri") or self.redirect_uri
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            return Redirect(None, "bad_redirect_uri")
        if self.redirect_uri is not None and redirect_uri != self.redirect_uri:
            return Redirect(None, "bad_redirect_uri")
        state = query.get("state", "")
        if self._denials:
            self._denials -= 1
            return Redirect(_with_query(redirect_uri, error="access_denied", state=state))
        team = self._team(query.get("team") or self.default_team)
        code = f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**12)}.{secrets.token_hex(32)}"
        self._codes[code] = _Code(
            team,
            scope=query.get("scope", ""),
            user_scope=query.get("user_scope", ""),
            redirect_uri=query.get("redirect_uri") or None,
            installer=self.installer,
            issued_at=self.clock(),
        )
        return Redirect(_with_query(redirect_uri, code=code, state=state))

    def _team(self, team_id: str) -> Team:
        """The team to install into; a T… or E… never seen before is created (E…: an org-wide install)."""
        if team_id not in self.teams:
            org = team_id.startswith("E")
            name = f"{'Org' if org else 'Team'} {team_id}"
            workspace = self.new_workspace(team_id, name, team_id if org else None)
            self.add(Team(team_id, name, workspace, team_id if org else None, name if org else None, org))
        return self.teams[team_id]

    # ----- oauth.v2.access -----

    def access(self, args: Args, basic: tuple[str, str] | None) -> dict[str, object]:
        """oauth.v2.access: exchange a code (or, with rotation, a refresh token) for a bot token."""
        client_id, client_secret = basic or (args.text("client_id"), args.text("client_secret"))
        if client_id != self.client_id:
            raise ApiError("invalid_client_id")
        if client_secret is None or not secrets.compare_digest(client_secret, self.client_secret):
            raise ApiError("bad_client_secret")
        grant_type = args.text("grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            team = self._refresh.pop(args.text("refresh_token") or "", None)
            if team is None:
                raise ApiError("invalid_refresh_token")
            return self._grant(team, self._scope(team), installer=None)
        if grant_type != "authorization_code":
            raise ApiError("invalid_grant_type")
        code = self._codes.get(args.text("code") or "")
        if code is None or code.used or self.clock() - code.issued_at > CODE_TTL:
            raise ApiError("invalid_code")
        if code.redirect_uri is not None and args.text("redirect_uri") != code.redirect_uri:
            raise ApiError("bad_redirect_uri")
        code.used = True
        return self._grant(code.team, code.scope, installer=code.installer)

    def _scope(self, team: Team) -> str:
        """The bot scopes the team's latest install granted."""
        granted = [code for code in self._codes.values() if code.team is team and code.used]
        return granted[-1].scope if granted else ""

    def _grant(self, team: Team, scope: str, installer: str | None) -> dict[str, object]:
        """Issue a bot token for a team and answer as oauth.v2.access does (a refresh answer has no authed_user)."""
        workspace = team.workspace
        token = f"xoxb-{secrets.randbelow(10**12)}-{secrets.randbelow(10**12)}-{secrets.token_urlsafe(18)}"
        answer: dict[str, object] = {
            "access_token": token,
            "token_type": "bot",
            "scope": scope,
            "bot_user_id": workspace.bot_user_id,
            "app_id": workspace.app_id,
            "team": None if team.is_enterprise_install else {"id": team.id, "name": team.name},
            "enterprise": {"id": team.enterprise_id, "name": team.enterprise_name} if team.enterprise_id else None,
            "is_enterprise_install": team.is_enterprise_install,
        }
        if installer is not None:
            answer["authed_user"] = {"id": installer}
        expires_at = None
        if self.token_rotation:
            token = "xoxe.xoxb-" + token.removeprefix("xoxb-")
            refresh = f"xoxe-1-{secrets.token_urlsafe(32)}"
            self._refresh[refresh] = team
            expires_at = self.clock() + self.token_lifetime
            answer.update(access_token=token, refresh_token=refresh, expires_in=self.token_lifetime)
        self._tokens[token] = _Token(team, expires_at)
        return answer

    # ----- the Web API's side -----

    def resolve(self, token: str) -> Team:
        """The team a Web API call's bot token acts for; invalid_auth, token_revoked or token_expired otherwise."""
        found = self._tokens.get(token)
        if found is None:
            raise ApiError("invalid_auth")
        if found.revoked:
            raise ApiError("token_revoked")
        if found.expires_at is not None and self.clock() >= found.expires_at:
            raise ApiError("token_expired")
        return found.team


def _with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query string."""
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"
