"""Multi-workspace mode's install flow end to end: a browser, the real Bolt app over HTTP, the Slack stand-in.

The browser is httpx: it opens /slack/install, follows the "Add to Slack" link to the stand-in's consent page
(which allows at once) and the redirect back, carrying the state cookie as a browser would.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from sqlalchemy import text

from bot.db.store import Store
from bot.dev.standin import payloads
from bot.dev.standin.oauth import CLIENT_ID, CLIENT_SECRET
from bot.dev.standin.slack import SlackStandIn
from bot.errors import ConfigError
from bot.slack.app import create_app
from bot.slack.authorize import advisory_key, refresh_lock
from bot.slack.install import BOT_SCOPES
from tests.support.harness import SIGNING_SECRET, BotHarness
from tests.support.installer import Installer, start_installer

ROOT = Path(__file__).resolve().parents[2]
COOKIE = "slack-app-oauth-state"


def _start(slack: SlackStandIn, database_url: str, **options: Any) -> Iterator[Installer]:
    """The multi-workspace bot on loopback (tests/support/installer.py), installs only."""
    yield from start_installer(slack, database_url, **options)


@pytest.fixture
def installer(slack: SlackStandIn, database_url: str) -> Iterator[Installer]:
    """The multi-workspace bot, token rotation off at Slack."""
    yield from _start(slack, database_url)


def _publishes(slack: SlackStandIn) -> list[str]:
    """The teams whose tokens views.publish calls were made with, in order (successful calls only)."""
    return [call.team for call in slack.calls_to("views.publish") if call.ok]


def _home_opened(team_id: str, *, enterprise_id: str | None = None, org_wide: bool = False) -> dict[str, Any]:
    """app_home_opened as Slack sends it for a workspace (or, org-wide, for a workspace of an organization)."""
    return payloads.build_app_home_opened(team_id=team_id, enterprise_id=enterprise_id, is_enterprise_install=org_wide)


def test_install_stores_the_workspace_and_opens_its_home(installer: Installer) -> None:
    """Install page → consent → redirect: the installation is stored and the installer sent to the Home tab."""
    link, cookie = installer.install_page()
    authorize = urlsplit(link)
    query = parse_qs(authorize.query)
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == installer.slack.authorize_url
    assert query["client_id"] == [CLIENT_ID] and query["scope"] == [",".join(BOT_SCOPES)]
    assert query["state"] == [cookie.split("=", 1)[1]]
    back = installer.consent(link)
    done = installer.come_back(back, cookie)
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "slack://app?team=T0001&id=A0LEXI&tab=home"
    assert f"{COOKIE}=deleted" in done.headers["set-cookie"]
    installation = installer.installation("T0001")
    assert installation is not None
    assert installation.bot_token and installer.slack.team_of(installation.bot_token) == "T0001"
    assert installation.bot_user_id == "UBOT" and installation.bot_id == "B0LEXI"
    assert installation.user_id == "UALICE" and installation.bot_scopes == list(BOT_SCOPES)
    assert installation.bot_refresh_token is None and installation.bot_token_expires_at is None


def test_two_workspaces_each_get_their_own_token(installer: Installer) -> None:
    """Teams A and B install; an event signed for A is answered with A's token, one for B with B's."""
    assert installer.install(team="TAAA").status_code == 302
    assert installer.install(team="TBBB").status_code == 302
    first, second = installer.installation("TAAA"), installer.installation("TBBB")
    assert first is not None and second is not None and first.bot_token != second.bot_token
    assert installer.post_event(_home_opened("TAAA")).status_code == 200
    assert _publishes(installer.slack) == ["TAAA"]
    assert installer.post_event(_home_opened("TBBB")).status_code == 200
    assert _publishes(installer.slack) == ["TAAA", "TBBB"]
    home = installer.slack.calls_to("views.publish")[0].args
    assert home["user_id"] == "UALICE" and "not connected to LeadLex" in str(home["view"])


def test_a_workspace_that_did_not_install_gets_nothing(installer: Installer) -> None:
    """An event for a team with no installation publishes nothing and never reaches Slack with any token."""
    installer.install(team="TAAA")
    answer = installer.post_event(_home_opened("TZZZ"))
    assert answer.status_code < 500
    assert _publishes(installer.slack) == []


def test_an_org_wide_install_serves_the_organization(installer: Installer) -> None:
    """An Enterprise Grid org-wide install is stored by enterprise; events from its workspaces use its token."""
    done = installer.install(team="E0ORG")
    assert done.status_code == 302, done.text
    assert done.headers["location"].endswith("/enterprise/E0ORG/manage/organization/apps/profile/A0LEXI/workspaces/add")
    installation = installer.installation(None, "E0ORG")
    assert installation is not None and installation.is_enterprise_install and installation.team_id is None
    assert installation.enterprise_id == "E0ORG" and installation.enterprise_name == "Org E0ORG"
    assert installation.bot_token and installer.slack.team_of(installation.bot_token) == "E0ORG"
    assert installer.post_event(_home_opened("T0NE", enterprise_id="E0ORG", org_wide=True)).status_code == 200
    assert _publishes(installer.slack) == ["E0ORG"]


def _refused(answer: httpx.Response, status: int, words: str) -> None:
    """A failed install: a friendly HTML page with the reason, the given status, no traceback."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert words in answer.text and "Traceback" not in answer.text
    assert 'href="/slack/install"' in answer.text or "href='/slack/install'" in answer.text


def test_reused_state_is_refused(installer: Installer) -> None:
    """The redirect, replayed with its cookie after the install finished, is a 400 page; nothing new is stored."""
    link, cookie = installer.install_page(team="TAAA")
    back = installer.consent(link)
    assert installer.come_back(back, cookie).status_code == 302
    _refused(installer.come_back(back, cookie), 400, "expired or was already used")
    with installer.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM slack_installations")).scalar() == 1


def test_missing_or_foreign_state_is_refused(installer: Installer) -> None:
    """Without the cookie, with another browser's cookie, or with no state at all: a 400 page, nothing stored."""
    link, cookie = installer.install_page(team="TAAA")
    back = installer.consent(link)
    _refused(installer.come_back(back, None), 400, "not started from this browser")
    _refused(installer.come_back(back, f"{COOKIE}=someone-else"), 400, "not started from this browser")
    no_state = re.sub(r"&?state=[^&]*", "", back)
    _refused(installer.come_back(no_state, cookie), 400, "not started from this browser")
    assert installer.installation("TAAA") is None


def test_expired_state_is_refused(slack: SlackStandIn, database_url: str) -> None:
    """A state past its lifetime is refused with a 400 page, even from the right browser."""
    for running in _start(slack, database_url, state_expiration_seconds=-1):
        link, cookie = running.install_page(team="TAAA")
        _refused(running.come_back(running.consent(link), cookie), 400, "expired or was already used")
        assert running.installation("TAAA") is None


def test_denied_consent_is_refused(installer: Installer) -> None:
    """The installer cancels on Slack's page: a 403 page saying so; nothing stored."""
    installer.slack.deny_next_install()
    _refused(installer.install(team="TAAA"), 403, "cancelled")
    assert installer.installation("TAAA") is None


def test_unknown_slack_errors_are_shown_escaped(installer: Installer) -> None:
    """An error Slack sends back is named on the page, escaped, with a 400."""
    answer = installer.browser.get(f"{installer.url}/slack/oauth_redirect", params={"error": "<script>x</script>"})
    _refused(answer, 400, "&lt;script&gt;x&lt;/script&gt;")
    assert "<script>" not in answer.text


def test_install_routes_take_gets_only_and_a_clean_team(installer: Installer) -> None:
    """Install routes take GETs only and a Slack id as team; other paths are as before (events need a signature)."""
    assert installer.browser.post(f"{installer.url}/slack/install").status_code == 405
    assert installer.browser.post(f"{installer.url}/slack/oauth_redirect").status_code == 405
    smuggled = installer.browser.get(f"{installer.url}/slack/install", params={"team": "T1&redirect_uri=https://x"})
    assert smuggled.status_code == 400
    body, content_type = payloads.encode_event(_home_opened("T0001"))
    unsigned = installer.browser.post(
        f"{installer.url}/slack/events", content=body, headers={"Content-Type": content_type}
    )
    assert unsigned.status_code == 401
    assert installer.browser.get(f"{installer.url}/slack/elsewhere").status_code == 404


def test_a_database_failure_mid_install_is_a_503_page(installer: Installer) -> None:
    """When the state cannot be issued (its table is gone), the install page is a 503 without a traceback."""
    with installer.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE slack_oauth_states"))
    answer = installer.browser.get(f"{installer.url}/slack/install")
    assert answer.status_code == 503 and "Traceback" not in answer.text


def test_token_rotation_refreshes_an_expired_token(slack: SlackStandIn, database_url: str) -> None:
    """With rotation on, the next authorize refreshes an expired bot token, saves it and uses it for the request."""
    slack.oauth.token_rotation = True
    for running in _start(slack, database_url):
        running.install(team="TAAA")
        first = running.installation("TAAA")
        assert first is not None and first.bot_refresh_token and first.bot_token
        assert str(first.bot_token).startswith("xoxe.xoxb-")
        slack.expire_tokens("TAAA")
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
        with running.store.engine.begin() as conn:  # the store learns of the expiry as the clock would tell it
            for table in ("slack_installations", "slack_bots"):
                conn.execute(text(f"UPDATE {table} SET bot_token_expires_at = :at"), {"at": past})  # noqa: S608
        assert running.post_event(_home_opened("TAAA")).status_code == 200
        refreshes = [c for c in slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
        assert len(refreshes) == 1 and refreshes[0].ok
        assert _publishes(slack) == ["TAAA"]
        assert [c.error for c in slack.calls_to("views.publish")] == [None]  # never tried with the expired one
        second = running.installation("TAAA")
        assert second is not None and second.bot_token != first.bot_token
        assert second.bot_refresh_token != first.bot_refresh_token
        assert slack.team_of(str(second.bot_token)) == "TAAA"


def test_scopes_are_the_manifests() -> None:
    """The install asks for exactly the bot scopes manifest.yml declares."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES


def test_installs_from_two_browsers_at_once(installer: Installer) -> None:
    """Two installs interleaved (both pages opened before either comes back) each finish with their own state."""
    pages = [installer.install_page(team=team) for team in ("TAAA", "TBBB")]
    backs = [installer.consent(link) for link, _ in pages]
    results: list[int] = []
    lock = threading.Lock()

    def finish(back: str, cookie: str) -> Callable[[], None]:
        """Come back from one browser."""

        def run() -> None:
            with httpx.Client(timeout=10) as browser:
                status = browser.get(back, headers={"Cookie": cookie}).status_code
            with lock:
                results.append(status)

        return run

    threads = [threading.Thread(target=finish(back, cookie)) for back, (_, cookie) in zip(backs, pages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [302, 302]
    assert installer.installation("TAAA") is not None and installer.installation("TBBB") is not None


def test_a_single_workspace_bot_has_no_install_routes(bot: BotHarness) -> None:
    """With SLACK_BOT_TOKEN (no OAuth flow), /slack/install and /slack/oauth_redirect are not found, as before."""
    for path in ("/slack/install", "/slack/oauth_redirect"):
        assert bot.http.get(f"{bot.url}{path}").status_code == 404


def test_a_single_workspace_bot_refuses_bolts_own_oauth(bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bolt's own OAuth flow (on with SLACK_CLIENT_ID/SECRET in the environment) is refused in one-workspace mode."""
    monkeypatch.setenv("SLACK_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    with pytest.raises(ConfigError, match="SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set"):
        create_app(bot.runtime)


@pytest.mark.parametrize(
    ("query", "cookie"),
    [
        ("", None),
        ("code=abc", None),
        ("state=&code=", f"{COOKIE}="),
        ("state=a&state=b&code=c", f"{COOKIE}=a"),
        ("state=%ff%fe%00&code=%00", f"{COOKIE}=%ff"),
        ("error=", None),
        ("state=" + "s" * 4000 + "&code=c", f"{COOKIE}=" + "s" * 4000),
        ("state=x&code=y", "garbage;;;=;" + "=" * 50),
    ],
)
def test_hostile_redirects_are_4xx(installer: Installer, query: str, cookie: str | None) -> None:
    """Whatever a browser (or anyone) sends to the redirect, the answer is a 4xx page, never a 5xx."""
    answer = installer.come_back(f"{installer.url}/slack/oauth_redirect?{query}", cookie)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:200])
    assert installer.slack.calls_to("oauth.v2.access") == []


def test_a_workspace_s_token_is_checked_with_slack_once(installer: Installer) -> None:
    """Bolt's auth.test on a token is asked once, not before every request (a round trip ahead of each ack)."""
    installer.install(team="TAAA")
    before = len(installer.slack.calls_to("auth.test"))
    for _ in range(3):
        assert installer.post_event(_home_opened("TAAA")).status_code == 200
    assert len(installer.slack.calls_to("auth.test")) == before + 1
    assert _publishes(installer.slack) == ["TAAA"] * 3


def test_concurrent_requests_refresh_a_token_once_across_replicas(slack: SlackStandIn, database_url: str) -> None:
    """Requests of one workspace at two replicas as its token expires spend its single-use refresh token once."""
    slack.oauth.token_rotation = True
    with contextmanager(_start)(slack, database_url) as one, contextmanager(_start)(slack, database_url) as two:
        one.install(team="TAAA")
        first = one.installation("TAAA")
        assert first is not None
        slack.expire_tokens("TAAA")
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
        with one.store.engine.begin() as conn:
            for table in ("slack_installations", "slack_bots"):
                conn.execute(text(f"UPDATE {table} SET bot_token_expires_at = :at"), {"at": past})  # noqa: S608
        release = slack.hold_next("oauth.v2.access")  # the first refresh waits in Slack while the others arrive
        statuses: list[int] = []

        def post(replica: Installer) -> None:
            """Deliver one app_home_opened to a replica."""
            body, content_type = payloads.encode_event(_home_opened("TAAA"))
            headers = payloads.signed_request(SIGNING_SECRET, body, content_type)
            with httpx.Client(timeout=20) as client:
                statuses.append(client.post(f"{replica.url}/slack/events", content=body, headers=headers).status_code)

        threads = [threading.Thread(target=post, args=(replica,)) for replica in (one, two, one, two)]
        for thread in threads:
            thread.start()
        assert slack.wait_held().args.get("grant_type") == "refresh_token"
        time.sleep(0.3)  # the other three are now waiting for the refresh
        release.set()
        for thread in threads:
            thread.join(20)
        assert statuses == [200] * 4
        assert one.listeners.wait_idle(10) and two.listeners.wait_idle(10)
        refreshes = [c for c in slack.calls_to("oauth.v2.access") if c.args.get("grant_type") == "refresh_token"]
        assert [c.ok for c in refreshes] == [True]
        assert _publishes(slack) == ["TAAA"] * 4
        assert [c.error for c in slack.calls_to("views.publish")] == [None] * 4


@pytest.mark.postgres
def test_a_refresh_waits_for_another_replica_s_lock(database_url: str) -> None:
    """On PostgreSQL the refresh lock is an advisory lock: held by another session, it is waited for, boundedly."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the cross-replica lock is PostgreSQL's")
    store = Store.from_url(database_url)
    try:
        with store.engine.connect() as other:
            other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": advisory_key("None:TAAA:False")})
            entered: list[float] = []

            def refresh() -> None:
                """Take the lock as a refresh would, noting when it got it."""
                with refresh_lock(store.engine, "None:TAAA:False", timeout=5):
                    entered.append(time.monotonic())

            thread = threading.Thread(target=refresh)
            started = time.monotonic()
            thread.start()
            time.sleep(0.5)
            assert entered == []  # still waiting for the other replica
            other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key("None:TAAA:False")})
            thread.join(5)
            assert entered and entered[0] - started >= 0.4
            other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": advisory_key("None:TAAA:False")})
            started = time.monotonic()
            with refresh_lock(store.engine, "None:TAAA:False", timeout=0.3):
                waited = time.monotonic() - started  # gave up waiting, and went on
            assert 0.2 <= waited < 3
            other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key("None:TAAA:False")})
    finally:
        store.close()
