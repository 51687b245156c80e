"""The lexi-bot command's error paths, as a real process: one clear line (or every check line), never a traceback."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.db import migrate
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from tests.support.harness import SIGNING_SECRET, bot_env
from tests.support.process import BotProcess, clean_env, free_port
from tests.support.socket_mode import SocketModeServer

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL")
#: A password that must never be printed, whatever fails.
PASSWORD = "s3cret-Pa55word"


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60.0) -> tuple[int, str]:
    """Run `lexi-bot ARGS` to its end (bounded); its exit status and everything it printed."""
    proc = BotProcess(args, env, cwd)
    try:
        status = proc.wait(timeout=timeout)
        return status, proc.output
    finally:
        proc.stop()


def _env(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A complete environment against the sandbox and the stand-in, with `extra` on top."""
    return clean_env(**bot_env(sandbox, slack, f"sqlite:///{tmp_path / 'bot.db'}", **{"PORT": "0", **extra}))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (the kernel completes the handshake)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def _unreachable(kind: str, port: int) -> tuple[str, str]:
    """A URL that fails in the way `kind` names, and the words that explain it."""
    if kind == "refused":
        return f"http://127.0.0.1:{free_port()}/api/", "connection refused"
    if kind == "dns":
        return "http://nonexistent.invalid/api/", "host name not found"
    return f"http://127.0.0.1:{port}/api/", "no answer within 1s"


# --- 1. Slack or LeadLex unreachable -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["refused", "dns", "timeout"])
def test_check_names_an_unreachable_slack_and_prints_every_line(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, silent_port: int, kind: str
) -> None:
    """`lexi-bot check` with Slack out of reach says so with its URL, still prints the LeadLex line, and exits 1."""
    url, words = _unreachable(kind, silent_port)
    status, output = _run(["check", "--timeout", "1"], _env(sandbox, slack, tmp_path, SLACK_API_URL=url), tmp_path)
    assert status == 1, output
    assert "✓ LeadLex key accepted" in output
    assert f"✗ could not reach Slack at {url}: {words}" in output
    assert "1 check(s) failed" in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 3, output  # one line per check and the summary, nothing else


@pytest.mark.parametrize("kind", ["refused", "dns", "timeout"])
def test_check_names_an_unreachable_leadlex_and_prints_every_line(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, silent_port: int, kind: str
) -> None:
    """`lexi-bot check` with LeadLex out of reach says so with its URL, still checks Slack, and exits 1."""
    url, words = _unreachable(kind, silent_port)
    status, output = _run(["check", "--timeout", "1"], _env(sandbox, slack, tmp_path, LEXI_API_URL=url), tmp_path)
    assert status == 1, output
    assert f"✗ could not reach LeadLex at {url}: {words}" in output
    assert "✓ Slack token accepted" in output and "✓ the bot is a member of #lexi-approvals" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("kind", ["refused", "dns"])
def test_run_names_an_unreachable_slack_in_one_line(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, silent_port: int, kind: str
) -> None:
    """`lexi-bot run` with Slack out of reach stops with one line naming Slack and its URL."""
    url, words = _unreachable(kind, silent_port)
    status, output = _run(["run"], _env(sandbox, slack, tmp_path, SLACK_API_URL=url), tmp_path)
    assert status == 2, output
    assert f"could not reach Slack at {url}: {words}" in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.slow
def test_run_with_leadlex_out_of_reach_names_it_and_keeps_trying(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """LeadLex out of reach at start is a warning naming its URL and why; the bot runs and its poller keeps trying."""
    url, words = _unreachable("refused", 0)
    port = free_port()
    proc = BotProcess(
        ["run", "--host", "127.0.0.1"], _env(sandbox, slack, tmp_path, LEXI_API_URL=url, PORT=str(port)), tmp_path
    )
    try:
        proc.wait_healthy(port)
        assert f"could not reach LeadLex at {url}: {words}" in proc.output
        assert "the poller will keep trying" in proc.output
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0 and "Traceback" not in proc.output
    finally:
        proc.stop()


def test_run_on_a_port_in_use_says_so_in_one_line(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, silent_port: int
) -> None:
    """`lexi-bot run` whose PORT is taken stops with one line naming the address, not a traceback."""
    env = _env(sandbox, slack, tmp_path, PORT=str(silent_port))
    status, output = _run(["run", "--host", "127.0.0.1"], env, tmp_path)
    assert status == 2, output
    assert f"cannot listen on 127.0.0.1:{silent_port}" in output and "PORT" in output
    assert "Traceback" not in output


class _NotSlack(BaseHTTPRequestHandler):
    """A web server that is not Slack: every request gets an HTML error page."""

    def do_POST(self) -> None:
        """Answer any API call with HTML."""
        body = b"<!DOCTYPE html><html><body>Not here</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.mark.parametrize("command", [["check"], ["run"]])
def test_a_slack_api_url_that_is_not_slack_is_named(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, command: list[str]
) -> None:
    """SLACK_API_URL pointing at a web server that is not Slack says so, instead of quoting its HTML."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotSlack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        status, output = _run(command, _env(sandbox, slack, tmp_path, SLACK_API_URL=url), tmp_path)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert status == (1 if command == ["check"] else 2), output
    assert f"the server at {url} did not answer as Slack's Web API does (HTTP 404" in output
    assert "<html" not in output and "Traceback" not in output


def test_webhooks_with_leadlex_out_of_reach_name_its_url(tmp_path: Path) -> None:
    """`lexi-bot webhooks list` with LeadLex out of reach names its URL and why, in one line."""
    url, words = _unreachable("refused", 0)
    status, output = _run(["webhooks", "list"], clean_env(LEXI_API_KEY="wbk_test", LEXI_API_URL=url), tmp_path)
    assert status == 1, output
    assert f"could not reach LeadLex at {url}: {words}" in output and "Traceback" not in output


# --- 2. PostgreSQL unreachable or refusing ----------------------------------------------------------------------


def _pg(database: str | None = None, user: str | None = None, port: int | None = None) -> str:
    """A PostgreSQL URL on the test server (or 127.0.0.1) with a password and the parts given changed."""
    base = make_url(PG_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    return base.set(
        database=database or base.database, username=user or base.username, port=port or base.port, password=PASSWORD
    ).render_as_string(hide_password=False)


def _pg_env(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, url: str) -> dict[str, str]:
    """A complete environment whose DATABASE_URL is `url`."""
    return _env(sandbox, slack, tmp_path, DATABASE_URL=url)


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["audit"]])
def test_unreachable_postgres_is_one_line_naming_host_port_database_and_user(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, command: list[str]
) -> None:
    """A PostgreSQL server that refuses connections is named (host, port, database, user), never its password."""
    port = free_port()
    status, output = _run(command, _pg_env(sandbox, slack, tmp_path, _pg(port=port)), tmp_path)
    assert status == 2, output
    assert f"could not connect to PostgreSQL at 127.0.0.1:{port}" in output
    assert "connection refused" in output and "is the server running" in output
    assert PASSWORD not in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["run"], ["migrate"], ["audit"]])
def test_missing_postgres_database_is_one_line_saying_to_create_it(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, command: list[str]
) -> None:
    """A database name the server does not have is named, with how to create it."""
    status, output = _run(command, _pg_env(sandbox, slack, tmp_path, _pg(database="no_such_db_13")), tmp_path)
    assert status == 2, output
    assert "database 'no_such_db_13' does not exist" in output and "createdb" in output
    assert PASSWORD not in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["run"], ["migrate"], ["audit"]])
def test_unknown_postgres_user_is_one_line_naming_the_user(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, command: list[str]
) -> None:
    """A user the server does not know is named, with what to fix."""
    status, output = _run(command, _pg_env(sandbox, slack, tmp_path, _pg(user="no_such_role_13")), tmp_path)
    assert status == 2, output
    assert "refused user 'no_such_role_13'" in output and "DATABASE_URL" in output
    assert PASSWORD not in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


# --- 3. SQLite in a folder that does not exist ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["audit"]])
def test_sqlite_in_a_missing_folder_names_the_folder(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, command: list[str]
) -> None:
    """An SQLite file in a folder that does not exist says which folder, and creates nothing."""
    folder = tmp_path / "no" / "such"
    env = _env(sandbox, slack, tmp_path, DATABASE_URL=f"sqlite:///{folder / 'bot.db'}")
    status, output = _run(command, env, tmp_path)
    assert status == 2, output
    assert f"the folder {folder} does not exist" in output and "Traceback" not in output
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["audit"]])
def test_a_malformed_database_url_is_one_line_without_the_password(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, command: list[str]
) -> None:
    """A DATABASE_URL that is not a URL (a port that is no number) says so with an example, never echoing it."""
    env = _env(sandbox, slack, tmp_path, DATABASE_URL=f"postgresql://bot:{PASSWORD}@db.example:54x2/bot")
    status, output = _run(command, env, tmp_path)
    assert status == 2, output
    assert "DATABASE_URL is not a database URL" in output and "postgresql://user:password@host:5432" in output
    assert PASSWORD not in output and "Traceback" not in output


def test_sqlite_pointed_at_a_folder_says_to_name_a_file(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """DATABASE_URL naming a folder instead of a file says so and suggests a file in it."""
    env = _env(sandbox, slack, tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}")
    for command in (["migrate"], ["audit"], ["run"]):
        status, output = _run(command, env, tmp_path)
        assert status == 2, output
        assert f"points SQLite at the folder {tmp_path}" in output and "Traceback" not in output


# --- 4. A wrong Socket Mode token ---------------------------------------------------------------------------


def test_check_tests_the_app_token(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """`lexi-bot check` asks Slack about SLACK_APP_TOKEN: a wrong one fails the check, the right one passes."""
    slack.socket_mode_url = "ws://127.0.0.1:9/link/"  # handed out, never used by a check
    env = _env(sandbox, slack, tmp_path, SLACK_APP_TOKEN="xapp-wrong")
    status, output = _run(["check"], env, tmp_path)
    assert status == 1, output
    assert "✗ Slack refused SLACK_APP_TOKEN (invalid_auth)" in output and "All checks passed" not in output
    status, output = _run(["check"], {**env, "SLACK_APP_TOKEN": slack.app_token}, tmp_path)
    assert status == 0, output
    assert "✓ Socket Mode app token accepted" in output and "All checks passed" in output


def test_run_with_a_wrong_app_token_stops_in_one_line(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """`lexi-bot run` in Socket Mode with a token Slack refuses stops with one line saying what to fix."""
    env = _env(sandbox, slack, tmp_path, SLACK_APP_TOKEN="xapp-wrong")
    status, output = _run(["run"], env, tmp_path)
    assert status == 2, output
    assert "Slack refused SLACK_APP_TOKEN (invalid_auth)" in output and "connections:write" in output
    assert "Traceback" not in output and "xapp-wrong" not in output


def test_run_with_the_right_app_token_connects_over_socket_mode(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """The app-token check at start accepts the right token: the bot connects over Socket Mode and exits 0."""
    server = SocketModeServer().start()
    slack.socket_mode_url = server.url
    proc = BotProcess(["run"], _env(sandbox, slack, tmp_path, SLACK_APP_TOKEN=slack.app_token), tmp_path)
    try:
        server.wait_connected(timeout=20)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.output
        assert "Traceback" not in proc.output
    finally:
        proc.stop()
        server.stop()


# --- 5. Where each checked channel comes from ---------------------------------------------------------------


def test_check_names_the_source_of_each_channel(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """A channel from the policy file is reported with its place in the file, and SLACK_CHANNEL is not blamed."""
    (tmp_path / "lexi-bot.yml").write_text("types:\n  campaign_start:\n    channel: C0CAMPAIGNS\n")
    status, output = _run(["check"], _env(sandbox, slack, tmp_path, LEXI_POLICY_FILE="lexi-bot.yml"), tmp_path)
    assert status == 1, output
    assert "C0CAMPAIGNS (policy file lexi-bot.yml, types.campaign_start.channel)" in output
    assert "#lexi-approvals (C0LEXI, SLACK_CHANNEL)" in output
    assert "SLACK_CHANNEL does not name" not in output


def test_run_names_the_source_of_an_unknown_channel(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path) -> None:
    """`lexi-bot run` stopped by a policy channel Slack does not know names the file and key, not SLACK_CHANNEL."""
    (tmp_path / "lexi-bot.yml").write_text("types:\n  campaign_start:\n    channel: C0CAMPAIGNS\n")
    status, output = _run(["run"], _env(sandbox, slack, tmp_path, LEXI_POLICY_FILE="lexi-bot.yml"), tmp_path)
    assert status == 2, output
    assert "C0CAMPAIGNS (policy file lexi-bot.yml, types.campaign_start.channel)" in output
    assert "SLACK_CHANNEL does not name" not in output and "Traceback" not in output


# --- 6. policy check needs no Slack settings ----------------------------------------------------------------


def _readme_policy() -> str:
    """The example policy file of the README."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```yaml\n(auto_approve_daily_cap.*?)```", readme, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_policy_check_of_the_readme_example_needs_no_slack_channel(tmp_path: Path) -> None:
    """`lexi-bot policy check` validates the README's example without SLACK_CHANNEL and says what it will default to."""
    (tmp_path / "lexi-bot.yml").write_text(_readme_policy())
    status, output = _run(["policy", "check", "lexi-bot.yml"], clean_env(), tmp_path)
    assert status == 0, output
    assert "campaign_start: announced in C0CAMPAIGNS" in output
    assert "SLACK_CHANNEL is not set" in output and "use SLACK_CHANNEL" in output
    status, output = _run(["policy", "check", "lexi-bot.yml"], clean_env(SLACK_CHANNEL="C0LEXI"), tmp_path)
    assert status == 0, output
    assert "prospect_search: announced in C0LEXI" in output and "default channel C0LEXI (SLACK_CHANNEL)" in output


# --- 7. Rough edges ------------------------------------------------------------------------------------------


def test_audit_in_a_fresh_folder_creates_no_database(tmp_path: Path) -> None:
    """`lexi-bot audit` where there is no database yet says so and leaves no empty file behind."""
    status, output = _run(["audit"], clean_env(), tmp_path)
    assert status == 2, output
    assert "there is no database at" in output and "lexi-bot migrate" in output
    assert not (tmp_path / "lexi-bot.db").exists() and "Traceback" not in output


def test_audit_of_an_empty_database_says_to_migrate(tmp_path: Path) -> None:
    """`lexi-bot audit` on a database with no tables says it is empty and to run `lexi-bot migrate`."""
    (tmp_path / "lexi-bot.db").touch()
    status, output = _run(["audit"], clean_env(), tmp_path)
    assert status == 2, output
    assert "the database is empty" in output and "lexi-bot migrate" in output and "Traceback" not in output


def test_migrate_of_an_empty_database_says_so(tmp_path: Path) -> None:
    """`lexi-bot migrate` on an empty database says "from an empty database", never "(was None)"."""
    status, output = _run(["migrate"], clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}"), tmp_path)
    assert status == 0, output
    assert f"database at revision {migrate.head()} (from an empty database)" in output and "None" not in output


def test_run_sandbox_reports_configuration_errors_before_starting_the_sandbox(tmp_path: Path) -> None:
    """`lexi-bot run --sandbox` with settings missing lists them without starting a sandbox first."""
    env = clean_env(SLACK_SIGNING_SECRET=SIGNING_SECRET, DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}")
    for command in (["run", "--sandbox"], ["check", "--sandbox"]):
        status, output = _run(command, env, tmp_path)
        assert status == 2, output
        assert "SLACK_BOT_TOKEN is not set" in output and "local LeadLex sandbox" not in output
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_CHANNEL="C0LEXI",
        DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'bot.db'}",
    )
    status, output = _run(["run", "--sandbox"], env, tmp_path)
    assert status == 2, output
    assert "does not exist" in output and "local LeadLex sandbox" not in output


def test_env_example_has_every_variable_the_readme_says_to_fill_in() -> None:
    """Each variable README step 5 says to fill in is an uncommented line of .env.example."""
    readme = (ROOT / "README.md").read_text()
    step = next(line for line in readme.splitlines() if line.startswith("5. `cp .env.example .env`"))
    names = re.findall(r"`([A-Z_]+)`", step)
    assert names
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name in names:
        assert f"{name}=" in lines, name
