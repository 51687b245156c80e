"""What an installer sees after Slack sends them back: where a finished install leads, and why one failed."""

from __future__ import annotations

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.oauth.installation_store import Installation

from bot.slack.authorize import AuthorizeResults
from bot.slack.install import InstallSettings, failure_page, failure_status, home_url


def _installation(**fields: object) -> Installation:
    """An installation as Bolt's OAuth flow builds it."""
    base: dict[str, object] = {"app_id": "A0LEXI", "user_id": "UALICE", "bot_token": "xoxb-1", "team_id": "T1"}
    return Installation(**{**base, **fields})  # type: ignore[arg-type]


def test_a_workspace_install_leads_to_the_home_tab() -> None:
    """A workspace install opens the app's Home tab in that workspace."""
    assert home_url(_installation()) == "slack://app?team=T1&id=A0LEXI&tab=home"


def test_an_org_wide_install_leads_to_adding_workspaces() -> None:
    """An org-wide install leads to the organization's page for picking its workspaces, as Bolt's own page does."""
    org = _installation(
        team_id=None, enterprise_id="E1", is_enterprise_install=True, enterprise_url="https://org.enterprise.slack.com/"
    )
    assert home_url(org) == "https://org.enterprise.slack.com/manage/organization/apps/profile/A0LEXI/workspaces/add"
    assert home_url(_installation(team_id=None, enterprise_id="E1", is_enterprise_install=True)).startswith(
        "slack://app?team=E1&"
    )


def test_failures_are_4xx_except_storage() -> None:
    """Denied consent is 403, a bad or used state or code 400, only the bot's own storage failure a 503."""
    assert failure_status("access_denied") == 403
    for reason in ("invalid_browser", "invalid_state", "missing_code", "invalid_code", "bad_redirect_uri"):
        assert failure_status(reason) == 400
    assert failure_status("storage_error") == 503


def test_failure_page_names_the_reason_escaped() -> None:
    """A known reason is explained in plain words; an unknown one from Slack is quoted, escaped."""
    assert "expired or was already used" in failure_page("invalid_state")
    hostile = failure_page('<img src=x onerror="alert(1)">')
    assert "<img" not in hostile and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in hostile
    assert "href='/slack/install'" in hostile


def test_settings_never_print_the_client_secret() -> None:
    """The install settings' repr (what a log line of them shows) leaves the client secret out."""
    settings = InstallSettings(client_id="111.222", client_secret="very-secret-value")
    assert "very-secret-value" not in repr(settings) and "111.222" in repr(settings)


class _Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def test_authorize_results_stay_bounded_but_keep_what_was_just_looked_at() -> None:
    """Past the limit, results unused for a while go, oldest first; one looked at in the last minute stays."""
    clock = _Clock()
    results = AuthorizeResults(limit=2, clock=clock)
    for token in ("a", "b"):
        results[token] = AuthorizeResult(enterprise_id=None, team_id="T1", bot_token=token)
        clock.now += 100
    assert "a" in results  # looked at now: it may not go within the grace period
    results["c"] = AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="c")
    assert set(results) == {"a", "c"}  # b was the one long unused
    results["d"] = AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="d")
    assert set(results) == {"a", "c", "d"}  # all used within the grace period: over the limit for now
    clock.now += AuthorizeResults.GRACE + 1
    results["e"] = AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="e")
    assert set(results) == {"d", "e"}
