"""The lexi-bot command: clear errors instead of tracebacks, check, migrate, and real process life."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bot.cli import main
from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.ops import checks
from bot.slack import blocks
from tests.support.harness import CHANNEL, SIGNING_SECRET, bot_env
from tests.support.process import BotProcess, clean_env, free_port

ROOT = Path(__file__).resolve().parent.parent


def _bot_env(sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A complete environment for a bot process against the sandbox and the stand-in."""
    return clean_env(**bot_env(sandbox, slack, f"sqlite:///{tmp_path / 'bot.db'}", **{"POLL_INTERVAL": "0.2", **extra}))


@pytest.fixture
def processes() -> Iterator[list[BotProcess]]:
    """Child processes started by a test, all stopped at its end."""
    started: list[BotProcess] = []
    yield started
    for proc in started:
        proc.stop()


def test_missing_settings_stop_with_one_message_and_no_traceback(tmp_path: Path, processes: list[BotProcess]) -> None:
    """`lexi-bot run` with nothing configured exits 2 naming every missing variable, without a traceback."""
    proc = BotProcess(["run"], clean_env(), tmp_path)
    processes.append(proc)
    assert proc.wait() == 2
    output = proc.output
    for name in ("LEXI_API_KEY", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "SLACK_SIGNING_SECRET"):
        assert name in output
    assert "Traceback" not in output


@pytest.mark.parametrize(("key", "words"), [("wbk_revoked", "invalid_key"), ("no_lexi", "Lexi permission")])
def test_refused_key_at_start_stops_with_what_to_fix(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess], key: str, words: str
) -> None:
    """A LeadLex key refused at start (401 / 403) stops the bot with one line saying what to fix."""
    api_key = sandbox.no_lexi_key if key == "no_lexi" else key
    proc = BotProcess(["run"], _bot_env(sandbox, slack, tmp_path, LEXI_API_KEY=api_key, PORT="0"), tmp_path)
    processes.append(proc)
    assert proc.wait() == 2
    assert words in proc.output and "Traceback" not in proc.output
    assert api_key not in proc.output  # the key itself is never printed


def test_invalid_slack_token_at_start_is_explained(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """A Slack token Slack refuses stops the bot with invalid_auth and what to do."""
    env = _bot_env(sandbox, slack, tmp_path, SLACK_BOT_TOKEN="xoxb-wrong-token", PORT="0")
    proc = BotProcess(["run"], env, tmp_path)
    processes.append(proc)
    assert proc.wait() == 2
    assert "invalid_auth" in proc.output and "Traceback" not in proc.output
    assert "xoxb-wrong-token" not in proc.output


def test_run_announces_then_drains_and_exits_0_on_sigterm(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """A real `lexi-bot run` migrates SQLite itself, serves /healthz, announces, and exits 0 on SIGTERM."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    port = free_port()
    proc = BotProcess(["run", "--host", "127.0.0.1"], _bot_env(sandbox, slack, tmp_path, PORT=str(port)), tmp_path)
    processes.append(proc)
    proc.wait_healthy(port)
    slack.wait_for(lambda: slack.messages(CHANNEL), timeout=15)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.output
    (message,) = slack.messages(CHANNEL)
    assert message.metadata["event_payload"]["task_id"] == task_id
    assert "Traceback" not in proc.output
    assert f"memory allocator: {checks.MALLOC_HINT}" in proc.output  # no LD_PRELOAD here: the admin is told


def test_second_process_on_one_sqlite_file_is_refused(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """A second `lexi-bot run` on the same SQLite file refuses to start, saying why."""
    port = free_port()
    first = BotProcess(["run", "--host", "127.0.0.1"], _bot_env(sandbox, slack, tmp_path, PORT=str(port)), tmp_path)
    processes.append(first)
    first.wait_healthy(port)
    second = BotProcess(["run"], _bot_env(sandbox, slack, tmp_path, PORT="0"), tmp_path)
    processes.append(second)
    assert second.wait() == 2
    assert "another lexi-bot process" in second.output and "PostgreSQL" in second.output


@pytest.mark.slow
def test_kill_between_post_and_record_never_duplicates(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """SIGKILL after Slack stored the post but before the bot recorded it: the restarted bot posts nothing new."""
    task_id = sandbox.add_task("campaign_start", "Start campaign 'Q1'", {"contact_count": 150})["id"]
    other_id = sandbox.add_task("prospect_search", "Find CTOs")["id"]
    release = slack.hold_next("chat.postMessage")
    port = free_port()
    env = _bot_env(sandbox, slack, tmp_path, PORT=str(port))
    crashed = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
    processes.append(crashed)
    slack.wait_held(timeout=20)  # Slack has stored the first post; its answer is held back
    crashed.kill()
    release.set()
    store = Store.from_url(env["DATABASE_URL"])
    try:
        assert store.get(task_id).message_ts is None  # the crash left a claim without a message
        restarted = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
        processes.append(restarted)
        restarted.wait_healthy(port)
        slack.wait_for(
            lambda: store.get(task_id).message_ts and store.get(other_id) and store.get(other_id).message_ts, timeout=15
        )
        restarted.proc.send_signal(signal.SIGTERM)
        assert restarted.wait() == 0
        posted = [m.metadata["event_payload"]["task_id"] for m in slack.messages(CHANNEL) if m.metadata]
        assert sorted(posted) == sorted([task_id, other_id])
        assert store.get(task_id).message_ts == slack.messages(CHANNEL)[0].ts
    finally:
        store.close()


def test_check_reports_each_credential(
    sandbox: Sandbox,
    slack: SlackStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`lexi-bot check` passes with good credentials and names what to fix when the bot is not in the channel."""
    for key, value in _bot_env(sandbox, slack, tmp_path).items():
        monkeypatch.setenv(key, value)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.count("✓") == 3 and "All checks passed" in out
    slack.remove_bot_from(CHANNEL)
    monkeypatch.setenv("LEXI_API_KEY", sandbox.no_lexi_key)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "Lexi permission" in out and "/invite" in out and out.count("✗") == 2


def test_migrate_brings_the_database_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lexi-bot migrate` upgrades an empty database and is a no-op the second time."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    assert main(["migrate"]) == 0
    assert f"revision {migrate.head()}" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_manifest_declares_what_the_bot_uses() -> None:
    """manifest.yml gives the bot the scopes, /lexi command, interactivity, Home and Socket Mode it relies on."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands", "channels:history", "groups:history", "channels:read"} <= scopes
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/lexi" and command["usage_hint"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


def test_procfile_runs_migrations_in_release_and_the_bot_on_web() -> None:
    """The Procfile migrates in the release phase and runs the bot as the web process."""
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert lines["release"].strip() == "lexi-bot migrate"
    assert lines["web"].strip() == "lexi-bot run"


@pytest.mark.slow
def test_run_with_sandbox_announces_sample_tasks_that_can_be_approved(
    slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """`lexi-bot run --sandbox` needs no LeadLex key, announces sample tasks, and a click approves one."""
    port = free_port()
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_CHANNEL=CHANNEL,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        PORT=str(port),
    )
    proc = BotProcess(["run", "--sandbox", "--host", "127.0.0.1"], env, tmp_path)
    processes.append(proc)
    proc.wait_healthy(port)
    slack.wait_for(lambda: len(slack.messages(CHANNEL)) >= 4, timeout=20)
    card = slack.messages(CHANNEL)[0]
    task_id = card.metadata["event_payload"]["task_id"]
    click = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION, value=task_id, message_ts=card.ts, response_url=slack.new_response_url()
    )
    body, content_type = payloads.encode_interactive(click)
    response = httpx.post(
        f"http://127.0.0.1:{port}/slack/events",
        content=body,
        headers=payloads.signed_request(SIGNING_SECRET, body, content_type),
    )
    assert response.status_code == 200
    slack.wait_for(lambda: "Approved by <@UALICE>" in str(slack.message(CHANNEL, card.ts).blocks), timeout=15)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 0


@pytest.mark.slow
def test_sigterm_finishes_decisions_in_flight_then_exits_0(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """SIGTERM while LeadLex is still answering an approval: the approval completes, the card says so, exit 0."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    port = free_port()
    proc = BotProcess(
        ["run", "--host", "127.0.0.1"], _bot_env(sandbox, slack, tmp_path, PORT=str(port), POLL_INTERVAL="30"), tmp_path
    )
    processes.append(proc)
    proc.wait_healthy(port)
    card = slack.wait_for(lambda: slack.messages(CHANNEL) and slack.messages(CHANNEL)[0], timeout=15)
    sandbox.latency = 2.0
    click = payloads.build_block_action(
        action_id=blocks.APPROVE_ACTION, value=task_id, message_ts=card.ts, response_url=slack.new_response_url()
    )
    body, content_type = payloads.encode_interactive(click)
    response = httpx.post(
        f"http://127.0.0.1:{port}/slack/events",
        content=body,
        headers=payloads.signed_request(SIGNING_SECRET, body, content_type),
    )
    assert response.status_code == 200
    slack.wait_for(lambda: "Approving" in str(slack.message(CHANNEL, card.ts).blocks), timeout=10)
    assert sandbox.task(task_id)["status"] == "pending"  # LeadLex is still working on it
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.output
    assert sandbox.task(task_id)["status"] == "approved"
    assert "Approved by <@UALICE>" in str(slack.message(CHANNEL, card.ts).blocks)
    assert "finishing decisions in flight" in proc.output


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        (
            "types:\n  campaign_start:\n    channel: C0NOPE\n",
            (
                "announcement channel C0NOPE (policy file lexi-bot.yml, types.campaign_start.channel): "
                "Slack said channel_not_found"
            ),
        ),
        ("types:\n  campaign_start:\n    quorom: 2\n", "lexi-bot.yml line 3: unknown key 'quorom'"),
    ],
)
def test_a_policy_the_bot_does_not_understand_stops_it(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path, processes: list[BotProcess], policy: str, words: str
) -> None:
    """An unknown channel or key in the policy file stops `lexi-bot run` with one line saying what and where."""
    path = tmp_path / "lexi-bot.yml"
    path.write_text(policy)
    env = _bot_env(sandbox, slack, tmp_path, PORT="0", LEXI_POLICY_FILE=str(path))
    proc = BotProcess(["run"], env, tmp_path)
    processes.append(proc)
    assert proc.wait() == 2
    assert words in proc.output and "Traceback" not in proc.output


def test_check_covers_every_policy_channel(
    sandbox: Sandbox,
    slack: SlackStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`lexi-bot check` checks each channel the policy announces in, and names the one Slack does not know."""
    policy = tmp_path / "lexi-bot.yml"
    policy.write_text("types:\n  campaign_start:\n    channel: C0NOPE\n")
    for key, value in _bot_env(sandbox, slack, tmp_path, LEXI_POLICY_FILE=str(policy)).items():
        monkeypatch.setenv(key, value)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "member of #lexi-approvals (C0LEXI, SLACK_CHANNEL)" in out
    assert (
        "channel C0NOPE (policy file lexi-bot.yml, types.campaign_start.channel): Slack said channel_not_found" in out
    )
