"""The Slack stand-in installs the app into several workspaces through OAuth v2, as slack_sdk and Bolt call it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.dev.standin import payloads
from bot.dev.standin.oauth import CLIENT_ID, CLIENT_SECRET, CODE_TTL
from bot.dev.standin.slack import SlackStandIn
from bot.slack.gate import parse

REDIRECT = "https://lexi.example/slack/oauth_redirect"


class _Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


@pytest.fixture
def clock() -> _Clock:
    """The stand-in's clock."""
    return _Clock()


@pytest.fixture
def slack(clock: _Clock) -> Iterator[SlackStandIn]:
    """A stand-in on a clock the test moves."""
    with SlackStandIn(clock=clock) as server:
        yield server


def _consent(slack: SlackStandIn, **params: str) -> dict[str, list[str]]:
    """Visit the consent page as the installer's browser and return the redirect's query."""
    query = {"client_id": CLIENT_ID, "scope": "chat:write,commands", "state": "s1", "redirect_uri": REDIRECT}
    answer = httpx.get(slack.authorize_url, params={**query, **params}, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def _code(slack: SlackStandIn, **params: str) -> str:
    """An authorization code from the consent page."""
    return _consent(slack, **params)["code"][0]


def _exchange(slack: SlackStandIn, code: str, secret: str = CLIENT_SECRET) -> dict[str, object]:
    """oauth.v2.access as Bolt's OAuth flow calls it (client id and secret by HTTP Basic)."""
    client = WebClient(base_url=slack.api_url)
    return client.oauth_v2_access(client_id=CLIENT_ID, client_secret=secret, code=code, redirect_uri=REDIRECT).data  # type: ignore[return-value]


def _error(call: object) -> str:
    """The Slack error a call raised."""
    assert callable(call)
    with pytest.raises(SlackApiError) as raised:
        call()
    return str(raised.value.response["error"])


def test_install_gives_each_team_its_own_bot_token(slack: SlackStandIn) -> None:
    """Two teams install; each token is a bot token that auth.test and the Web API answer as its own team."""
    redirect = _consent(slack, team="TAAA")
    assert redirect["state"] == ["s1"]
    first = _exchange(slack, redirect["code"][0])
    second = _exchange(slack, _code(slack, team="TBBB"))
    assert first["token_type"] == "bot" and str(first["access_token"]).startswith("xoxb-")
    assert first["team"] == {"id": "TAAA", "name": "Team TAAA"}
    assert first["enterprise"] is None and first["is_enterprise_install"] is False
    assert first["authed_user"] == {"id": "UALICE"} and first["scope"] == "chat:write,commands"
    assert first["app_id"] == "A0LEXI" and "refresh_token" not in first and "expires_in" not in first
    assert first["access_token"] != second["access_token"]
    for answer, team in ((first, "TAAA"), (second, "TBBB")):
        identity = WebClient(token=str(answer["access_token"]), base_url=slack.api_url).auth_test()
        assert identity["team_id"] == team and identity["user_id"] == answer["bot_user_id"]
        assert identity["is_enterprise_install"] is False
    WebClient(token=str(first["access_token"]), base_url=slack.api_url).chat_postMessage(channel="C0LEXI", text="hi")
    assert slack.calls_to("chat.postMessage")[-1].team == "TAAA"
    assert slack.messages("C0LEXI") == []  # team A's channel, not the default workspace's
    assert slack.team_of(str(second["access_token"])) == "TBBB"


def test_the_default_team_installs_without_a_team_parameter(slack: SlackStandIn) -> None:
    """Without `team`, the stand-in's own workspace installs, and its fixed token keeps working beside the new one."""
    answer = _exchange(slack, _code(slack))
    assert answer["team"] == {"id": "T0001", "name": "Lexi Test"}
    for token in (str(answer["access_token"]), "xoxb-test-token"):
        assert WebClient(token=token, base_url=slack.api_url).auth_test()["team_id"] == "T0001"


def test_codes_are_single_use_and_expire(slack: SlackStandIn, clock: _Clock) -> None:
    """A code works once, only within its lifetime, and only with the app's secret; bad codes are invalid_code."""
    code = _code(slack)
    assert _error(lambda: _exchange(slack, code, secret="wrong")) == "bad_client_secret"
    _exchange(slack, code)
    assert _error(lambda: _exchange(slack, code)) == "invalid_code"
    assert _error(lambda: _exchange(slack, "made-up")) == "invalid_code"
    late = _code(slack)
    clock.now += CODE_TTL + 1
    assert _error(lambda: _exchange(slack, late)) == "invalid_code"


def test_credentials_in_the_form_and_redirect_checked(slack: SlackStandIn) -> None:
    """Client id and secret may come as form fields; the redirect URL must be the one the consent page had."""
    url = f"{slack.api_url}oauth.v2.access"
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": REDIRECT}
    answer = httpx.post(url, data={**form, "code": _code(slack)}, timeout=5).json()
    assert answer["ok"] is True and answer["access_token"].startswith("xoxb-")
    moved = httpx.post(url, data={**form, "code": _code(slack), "redirect_uri": "https://x.example/"}, timeout=5)
    assert moved.json() == {"ok": False, "error": "bad_redirect_uri"}
    stranger = httpx.post(url, data={**form, "client_id": "nope", "code": _code(slack)}, timeout=5)
    assert stranger.json() == {"ok": False, "error": "invalid_client_id"}
    assert all("client_secret" not in call.args and "code" not in call.args for call in slack.calls)


def test_consent_page_refuses_a_stranger_and_can_be_cancelled(slack: SlackStandIn) -> None:
    """An unknown client id is a 400 (nowhere to go back to); a cancelled consent goes back with access_denied."""
    stranger = httpx.get(slack.authorize_url, params={"client_id": "nope", "redirect_uri": REDIRECT}, timeout=5)
    assert stranger.status_code == 400 and stranger.json()["error"] == "invalid_client_id"
    slack.deny_next_install()
    assert _consent(slack) == {"error": ["access_denied"], "state": ["s1"]}
    assert "code" in _consent(slack)  # only the next one was cancelled


def test_unknown_revoked_and_expired_tokens_are_refused(slack: SlackStandIn, clock: _Clock) -> None:
    """A token never issued is invalid_auth; after revocation token_revoked; past its expiry token_expired."""
    assert _error(WebClient(token="xoxb-never", base_url=slack.api_url).auth_test) == "invalid_auth"
    slack.oauth.token_rotation = True
    answer = _exchange(slack, _code(slack, team="TAAA"))
    client = WebClient(token=str(answer["access_token"]), base_url=slack.api_url)
    client.auth_test()
    clock.now += int(str(answer["expires_in"])) + 1
    assert _error(client.auth_test) == "token_expired"
    assert slack.revoke_tokens("TAAA") == 1
    assert _error(client.auth_test) == "token_revoked"
    assert WebClient(token="xoxb-test-token", base_url=slack.api_url).auth_test()["ok"]  # another team's: untouched


def test_token_rotation_refreshes_once_per_refresh_token(slack: SlackStandIn) -> None:
    """With rotation, a refresh token buys a new access token (and refresh token) once; revoking ends refreshes."""
    slack.oauth.token_rotation = True
    answer = _exchange(slack, _code(slack, team="TAAA"))
    assert str(answer["access_token"]).startswith("xoxe.xoxb-") and str(answer["refresh_token"]).startswith("xoxe-1-")
    assert answer["expires_in"] == slack.oauth.token_lifetime
    slack.expire_tokens("TAAA")
    client = WebClient(base_url=slack.api_url)

    def refresh(token: str) -> dict[str, object]:
        """Refresh as slack_sdk's TokenRotator does."""
        return client.oauth_v2_access(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_type="refresh_token", refresh_token=token
        ).data  # type: ignore[return-value]

    fresh = refresh(str(answer["refresh_token"]))
    assert fresh["token_type"] == "bot" and fresh["team"] == {"id": "TAAA", "name": "Team TAAA"}
    assert fresh["refresh_token"] != answer["refresh_token"] and "authed_user" not in fresh
    assert WebClient(token=str(fresh["access_token"]), base_url=slack.api_url).auth_test()["team_id"] == "TAAA"
    assert _error(lambda: refresh(str(answer["refresh_token"]))) == "invalid_refresh_token"
    slack.revoke_tokens("TAAA")
    assert _error(lambda: refresh(str(fresh["refresh_token"]))) == "invalid_refresh_token"


def test_an_organization_installs_org_wide(slack: SlackStandIn) -> None:
    """team=E…: the answer has no team, the enterprise, is_enterprise_install; auth.test names the organization."""
    answer = _exchange(slack, _code(slack, team="E0ORG"))
    assert answer["team"] is None and answer["is_enterprise_install"] is True
    assert answer["enterprise"] == {"id": "E0ORG", "name": "Org E0ORG"}
    identity = WebClient(token=str(answer["access_token"]), base_url=slack.api_url).auth_test()
    assert identity["enterprise_id"] == "E0ORG" and identity["is_enterprise_install"] is True
    assert str(identity["url"]).endswith("/enterprise/E0ORG/")


def test_uninstall_events_are_built_as_slack_sends_them() -> None:
    """app_uninstalled and tokens_revoked envelopes pass the gate's shape check and name their team."""
    uninstalled = payloads.build_app_uninstalled(team_id="TAAA")
    revoked = payloads.build_tokens_revoked(team_id="TAAA", bot_user_ids=["UBOTAAA"], enterprise_id="E0ORG")
    for envelope in (uninstalled, revoked):
        body, content_type = payloads.encode_event(envelope)
        parsed = parse(body.decode(), content_type)
        assert parsed["team_id"] == "TAAA" and parsed["authorizations"][0]["team_id"] == "TAAA"
    assert revoked["event"]["tokens"] == {"oauth": [], "bot": ["UBOTAAA"]}
    assert revoked["enterprise_id"] == "E0ORG" and "enterprise_id" not in uninstalled
