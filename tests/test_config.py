"""Settings: every problem reported at once, secrets never printed, URLs normalised."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import (
    HttpSettings,
    SocketSettings,
    load_settings,
    normalize_database_url,
    read_environment,
    run_settings,
)
from bot.errors import ConfigError

GOOD = {
    "LEXI_API_KEY": "wbk_live_abcdef123456",
    "SLACK_BOT_TOKEN": "xoxb-1-2-secretpart",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "SLACK_CHANNEL": "C0123ABCD",
}


def test_complete_environment_loads_with_defaults() -> None:
    """A complete environment gives HTTP mode, port 3000, a 60 s poll and the SQLite default."""
    settings = load_settings(GOOD)
    assert settings.mode == "http"
    assert settings.port == 3000
    assert settings.poll_interval == 60
    assert settings.database_url == "sqlite:///lexi-bot.db"
    assert settings.database_kind == "sqlite"
    assert settings.lexi_api_url.startswith("https://data.leadlex.com/")


def test_empty_environment_names_every_missing_variable() -> None:
    """With nothing set, one error names each missing variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings({})
    message = str(caught.value)
    for name in ("LEXI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        assert name in message


def test_malformed_values_are_reported_together_with_missing_ones() -> None:
    """A bad number, a #name channel and a missing key all appear in the same message."""
    env = {**GOOD, "POLL_INTERVAL": "soon", "SLACK_CHANNEL": "#approvals", "PORT": "99999"}
    del env["LEXI_API_KEY"]
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "LEXI_API_KEY is not set" in message
    assert "POLL_INTERVAL" in message
    assert "SLACK_CHANNEL" in message and "channel ID" in message
    assert "PORT" in message


def test_errors_never_echo_secret_values() -> None:
    """A malformed token is named but its value never appears in the message."""
    env = {**GOOD, "SLACK_BOT_TOKEN": "xoxp-user-token-should-not-print", "LEXI_API_KEY": "sk_wrong_secret_value"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "SLACK_BOT_TOKEN" in message and "LEXI_API_KEY" in message
    assert "xoxp-user-token-should-not-print" not in message
    assert "sk_wrong_secret_value" not in message


def test_secrets_do_not_appear_in_repr() -> None:
    """Printing the settings object shows no secret."""
    settings = load_settings(GOOD)
    text = repr(settings) + str(settings)
    for secret in GOOD.values():
        if secret != "C0123ABCD":
            assert secret not in text


def test_app_token_selects_socket_mode_without_signing_secret() -> None:
    """An xapp- token alone is enough for Socket Mode."""
    env = {k: v for k, v in GOOD.items() if k != "SLACK_SIGNING_SECRET"}
    settings = load_settings({**env, "SLACK_APP_TOKEN": "xapp-1-A1-abc"})
    assert settings.mode == "socket"


def test_sandbox_runs_need_no_leadlex_key() -> None:
    """Commands that bring their own LeadLex (the sandbox) do not require LEXI_API_KEY."""
    env = {k: v for k, v in GOOD.items() if k != "LEXI_API_KEY"}
    settings = load_settings(env, require=("slack",), lexi_api_key="wbk_sandbox", lexi_api_url="http://127.0.0.1:1")
    assert settings.lexi_api_url == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_are_normalised_for_psycopg(given: str, expected: str) -> None:
    """Heroku's postgres:// and plain postgresql:// URLs use the psycopg 3 driver."""
    assert normalize_database_url(given) == expected


def test_unsupported_database_is_refused() -> None:
    """A MySQL URL is a clear configuration error."""
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings({**GOOD, "DATABASE_URL": "mysql://root@localhost/db"})


def test_log_level_is_case_insensitive_and_checked() -> None:
    """`debug` is accepted; an unknown level is named with the valid choices."""
    assert load_settings({**GOOD, "LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(ConfigError, match="LOG_LEVEL: input should be 'DEBUG'"):
        load_settings({**GOOD, "LOG_LEVEL": "loud"})


def test_approvers_are_slack_user_ids() -> None:
    """LEXI_APPROVERS takes user IDs separated by commas or spaces; anything else is named as a problem."""
    assert load_settings({**GOOD, "LEXI_APPROVERS": "U01AB, W02CD U03EF"}).lexi_approvers == ("U01AB", "W02CD", "U03EF")
    assert load_settings(GOOD).lexi_approvers == ()
    with pytest.raises(ConfigError, match="LEXI_APPROVERS"):
        load_settings({**GOOD, "LEXI_APPROVERS": "@alice"})


@pytest.mark.parametrize(
    ("given", "percent"),
    [
        ("20", 20.0),
        ("20%", 20.0),
        (" 35 % ", 35.0),
        ("0.2", 20.0),
        ("0.05", 5.0),
        ("0.5%", 0.5),
        ("0", 0.0),
        ("1", 1.0),
        ("12.5", 12.5),
        ("90%", 90.0),
    ],
)
def test_budget_reserve_reads_percentages_and_fractions(given: str, percent: float) -> None:
    """LEXI_BUDGET_RESERVE is a percentage (`20`, `20%`) or a fraction below one (`0.2` is 20 %, not 0.2 %)."""
    assert load_settings({**GOOD, "LEXI_BUDGET_RESERVE": given}).budget_reserve == percent


@pytest.mark.parametrize("given", ["lots", "-5", "95", "1.5%%", "0.95"])
def test_budget_reserve_out_of_range_or_malformed_is_refused_with_a_hint(given: str) -> None:
    """A reserve that is not a percentage up to 90 % is named, with the forms that are accepted."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, "LEXI_BUDGET_RESERVE": given})
    message = str(caught.value)
    assert "LEXI_BUDGET_RESERVE" in message and "such as 20% or 0.2" in message, message


def test_run_settings_narrow_to_the_connection_mode_with_the_same_values() -> None:
    """Settings complete for running become HTTP- or Socket Mode settings holding the same validated values."""
    http = run_settings(load_settings(GOOD))
    assert isinstance(http, HttpSettings)
    assert http.slack_signing_secret.get_secret_value() == "signing-secret-value"
    assert http.slack_channel == "C0123ABCD" and http.policy().default.channel == "C0123ABCD"
    socket = run_settings(load_settings({**GOOD, "SLACK_APP_TOKEN": "xapp-1-abc"}))
    assert isinstance(socket, SocketSettings)
    assert socket.slack_app_token.get_secret_value() == "xapp-1-abc" and socket.mode == "socket"
    assert socket.lexi_api_key.get_secret_value() == GOOD["LEXI_API_KEY"]


def test_run_settings_name_every_missing_variable() -> None:
    """Settings loaded for another command (nothing required) are refused for running, naming what is missing."""
    with pytest.raises(ConfigError) as caught:
        run_settings(load_settings({"SLACK_CHANNEL": "C0123ABCD"}, require=()))
    message = str(caught.value)
    for name in ("LEXI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN"):
        assert name in message
    assert "SLACK_CHANNEL" not in message


def test_read_environment_puts_the_env_file_beneath_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file LEXI_ENV_FILE names fills in what the environment lacks; a variable already set wins."""
    env_file = tmp_path / "bot.env"
    env_file.write_text("LEXI_TEST_ONLY_IN_FILE=from-file\nLEXI_TEST_IN_BOTH=from-file\n")
    monkeypatch.setenv("LEXI_ENV_FILE", str(env_file))
    monkeypatch.setenv("LEXI_TEST_IN_BOTH", "from-environment")
    monkeypatch.delenv("LEXI_TEST_ONLY_IN_FILE", raising=False)
    try:
        environ = read_environment()
    finally:
        monkeypatch.delenv("LEXI_TEST_ONLY_IN_FILE", raising=False)  # load_dotenv wrote it into os.environ
    assert environ["LEXI_TEST_ONLY_IN_FILE"] == "from-file"
    assert environ["LEXI_TEST_IN_BOTH"] == "from-environment"


# --- multi-workspace mode -------------------------------------------------------------------------

ENCRYPTION_KEY = "Dn3oM8Yb0XU3wzq3eHf2bqKxKp5p2pM4s4rJr5v0Yk4="  # a valid Fernet key (test only)
MULTI = {
    "SLACK_CLIENT_ID": "111.222",
    "SLACK_CLIENT_SECRET": "client-secret-value-abc",
    "LEXI_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    "SLACK_SIGNING_SECRET": "signing-secret-value",
}


def test_all_three_variables_turn_on_multi_workspace_mode_without_single_workspace_settings() -> None:
    """Client id, client secret and encryption keys: multi mode; no bot token, channel or LeadLex key needed."""
    settings = load_settings(MULTI)
    assert settings.workspace_mode == "multi" and settings.multi_workspace and settings.mode == "http"
    assert settings.vault().fingerprints and len(settings.vault().fingerprints) == 1
    assert {"client-secret-value-abc", ENCRYPTION_KEY} <= set(settings.secrets())  # redacted from logs
    text = repr(settings) + str(settings)
    assert "client-secret-value-abc" not in text and ENCRYPTION_KEY not in text
    assert load_settings(GOOD).workspace_mode == "single" and not load_settings(GOOD).multi_workspace


def test_multi_workspace_mode_still_needs_the_signing_secret() -> None:
    """HTTP mode checks Slack's signatures: SLACK_SIGNING_SECRET is required, and only it."""
    env = {k: v for k, v in MULTI.items() if k != "SLACK_SIGNING_SECRET"}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert "SLACK_SIGNING_SECRET is not set" in message
    assert "SLACK_BOT_TOKEN" not in message and "LEXI_API_KEY" not in message and "SLACK_CHANNEL" not in message
    assert load_settings(env, require=()).multi_workspace


def test_single_workspace_settings_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A bot token, channel and LeadLex key set beside the three are dropped, each named in a warning."""
    settings = load_settings({**GOOD, **MULTI})
    assert settings.lexi_api_key is None and settings.slack_bot_token is None and settings.slack_channel is None
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for name in ("LEXI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_CHANNEL"):
        assert any(line.startswith(f"{name} is ignored in multi-workspace mode") for line in warned)
    assert not any(secret in line for line in warned for secret in GOOD.values() if secret != "C0123ABCD")


def test_socket_mode_is_refused_in_multi_workspace_mode() -> None:
    """SLACK_APP_TOKEN with the three: a clear error (installs and events arrive over HTTP)."""
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN: multi-workspace mode runs in HTTP mode only"):
        load_settings({**MULTI, "SLACK_APP_TOKEN": "xapp-1-A1-abc"})


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (("SLACK_CLIENT_ID",), "SLACK_CLIENT_SECRET and LEXI_ENCRYPTION_KEYS are not set"),
        (("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"), "LEXI_ENCRYPTION_KEYS is not set"),
        (("LEXI_ENCRYPTION_KEYS",), "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are not set"),
    ],
)
def test_some_but_not_all_three_name_the_missing_ones(given: tuple[str, ...], missing: str) -> None:
    """Part of the multi-workspace settings is an error naming what is missing, even for single-workspace use."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**GOOD, **{name: MULTI[name] for name in given}})
    assert missing in str(caught.value)
    assert "client-secret-value-abc" not in str(caught.value) and ENCRYPTION_KEY not in str(caught.value)


def test_malformed_encryption_keys_are_named_by_position_with_the_vaults_words() -> None:
    """Bad keys are reported like the vault reports them (key N of M), never quoted, beside other problems."""
    bad = "not-a-key-at-all-but-long-enough"
    with pytest.raises(ConfigError) as caught:
        load_settings({**MULTI, "LEXI_ENCRYPTION_KEYS": f"{ENCRYPTION_KEY},{bad},", "PORT": "99999"})
    message = str(caught.value)
    assert "LEXI_ENCRYPTION_KEYS: key 2 of 3 is not a Fernet key" in message
    assert "LEXI_ENCRYPTION_KEYS: key 3 of 3 is empty" in message
    assert "PORT" in message and bad not in message and ENCRYPTION_KEY not in message


def test_single_workspace_narrowing_refuses_multi_workspace_settings() -> None:
    """The single-workspace narrowing refuses multi-workspace settings (each workspace brings its own), saying so."""
    with pytest.raises(ConfigError, match="each workspace's runtime is built from the registry"):
        run_settings(load_settings({**GOOD, **MULTI}))


def test_the_public_url_is_an_http_address_kept_without_a_trailing_slash() -> None:
    """LEXI_PUBLIC_URL (where LeadLex delivers each workspace's webhook) must be an http(s) address."""
    assert load_settings({**GOOD, **MULTI, "LEXI_PUBLIC_URL": "https://lexi.example.com/"}).public_url == (
        "https://lexi.example.com"
    )
    for bad in ("lexi.example.com", "ftp://lexi.example.com", "https://lexi.example.com/?x=1", "https:// x"):
        with pytest.raises(ConfigError, match="LEXI_PUBLIC_URL"):
            load_settings({**GOOD, **MULTI, "LEXI_PUBLIC_URL": bad})
