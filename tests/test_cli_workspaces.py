"""The administrators' commands of multi-workspace mode: keys generate / rotate, workspaces, workspace purge."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import func, select

from bot.cli import main
from bot.db import migrate
from bot.db.models import SLACK_BOTS, SLACK_INSTALLATIONS
from bot.db.store import Store
from bot.db.vault import Vault, generate_key
from bot.db.workspaces import Workspaces
from bot.lexi.models import Task
from tests.support.harness import SECRETS_GIVEN

LEXI_KEY = "wbk_cli_registry_key_0123456789"
HOOK_SECRET = "whsec_cli_registry_0123456789abc"
CLIENT_SECRET = "cli-client-secret-0123456789"
SECRETS_GIVEN.update((LEXI_KEY, HOOK_SECRET, CLIENT_SECRET))


@pytest.fixture(autouse=True)
def _keep_the_session_log_scan() -> Iterator[None]:
    """The commands set up logging (root handlers replaced): the session's secret scan is put back after each test.

    What a command logs meanwhile goes to stderr, which each test checks for secrets itself.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def old_key() -> str:
    """The key the stored secrets were first encrypted with."""
    key = generate_key()
    SECRETS_GIVEN.add(key)
    return key


@pytest.fixture
def store(database_url: str, monkeypatch: pytest.MonkeyPatch, old_key: str) -> Iterator[Store]:
    """A migrated store, and an environment of multi-workspace mode on it (the old key only)."""
    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("LEXI_ENCRYPTION_KEYS", old_key)
    for name in ("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "SLACK_CHANNEL", "LEXI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


def _installation(team_id: str | None, *, enterprise_id: str | None = None) -> Installation:
    """An installation as the OAuth flow saves it (an org-wide one when only enterprise_id is given)."""
    return Installation(
        app_id="A0LEXI",
        enterprise_id=enterprise_id,
        team_id=team_id,
        bot_token=f"xoxb-{team_id or enterprise_id}",
        bot_id="B0BOT",
        bot_user_id="U0BOT",
        user_id="U0INSTALL",
        is_enterprise_install=team_id is None,
    )


def _populate(store: Store, old_key: str) -> Workspaces:
    """Two team workspaces and an org: T0A connected (key, webhook, a task), T0B installed, E0ORG uninstalled."""
    registry = Workspaces(store.engine, Vault([old_key]))
    installations = SQLAlchemyInstallationStore(client_id="111.222", engine=store.engine)
    for team in ("T0A", "T0B"):
        registry.installed(team, enterprise_id=None, is_enterprise_install=False, installer="U0INSTALL")
        installations.save(_installation(team))
    registry.installed("E0ORG", enterprise_id="E0ORG", is_enterprise_install=True, installer="W0ADMIN")
    installations.save(_installation(None, enterprise_id="E0ORG"))
    registry.connect_lexi("T0A", LEXI_KEY)
    registry.configure("T0A", channel="C0LEXI")
    registry.set_webhook("T0A", "wh_1", HOOK_SECRET)
    registry.connect_lexi("E0ORG", LEXI_KEY)
    registry.polled("T0A", next_poll_at=datetime.now(UTC) + timedelta(minutes=1), budget_remaining=77)
    registry.polled("T0B", next_poll_at=None, error="LeadLex said:\n401 invalid_key")
    registry.uninstalled("E0ORG")
    for workspace in ("T0A", "E0ORG"):
        scoped = store.scoped(workspace)
        assert scoped.claim_announcement(Task(id="t1"), "C0LEXI")
        scoped.audit("installed", actor="U0INSTALL")
    return registry


def _count(store: Store, table: object, **where: object) -> int:
    """Rows of a table matching column = value."""
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for column, value in where.items():
        query = query.where(table.c[column] == value)  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_keys_generate_prints_a_usable_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys generate` needs no settings and prints one key the vault accepts, a new one each time."""
    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    assert main(["keys", "generate"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["keys", "generate"]) == 0
    second = capsys.readouterr().out.strip()
    SECRETS_GIVEN.update((first, second))
    assert first != second and len(Vault.parse(f"{first},{second}").fingerprints) == 2


def test_keys_rotate_reencrypts_once_and_never_prints_a_secret(
    store: Store, old_key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a new key first, `keys rotate` re-encrypts the stored secrets (counted), then has nothing to do."""
    registry = _populate(store, old_key)
    new_key = generate_key()
    SECRETS_GIVEN.add(new_key)
    monkeypatch.setenv("LEXI_ENCRYPTION_KEYS", f"{new_key},{old_key}")
    assert main(["keys", "rotate"]) == 0
    out = capsys.readouterr()
    assert "2 stored secret(s) re-encrypted" in out.out  # T0A's key and webhook secret (E0ORG's key is deleted)
    assert Vault([new_key]).fingerprints[0] in out.out
    assert main(["keys", "rotate"]) == 0
    again = capsys.readouterr()
    assert "Nothing to re-encrypt" in again.out
    shown = out.out + out.err + again.out + again.err
    for secret in (old_key, new_key, LEXI_KEY, HOOK_SECRET, CLIENT_SECRET):
        assert secret not in shown
    assert Workspaces(registry.engine, Vault([new_key])).lexi_key("T0A") == LEXI_KEY


def test_keys_rotate_without_keys_or_with_a_missing_one_says_what_to_fix(
    store: Store, old_key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without LEXI_ENCRYPTION_KEYS: exit 2 naming it; without the old key: exit 2 naming the workspace only."""
    _populate(store, old_key)
    for name in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "LEXI_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name)
    assert main(["keys", "rotate"]) == 2  # single-workspace settings: no keys to rotate with
    assert "LEXI_ENCRYPTION_KEYS is not set" in capsys.readouterr().err
    stranger = generate_key()
    SECRETS_GIVEN.add(stranger)
    monkeypatch.setenv("LEXI_ENCRYPTION_KEYS", stranger)
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    assert main(["keys", "rotate"]) == 2
    err = capsys.readouterr().err
    assert "T0A" in err and "cannot be decrypted" in err and "Traceback" not in err
    assert stranger not in err and old_key not in err and LEXI_KEY not in err


def test_workspaces_lists_one_line_each_without_secrets(
    store: Store, old_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`workspaces`: id, state, channel, last poll, budget left, last error (on one line); never a key."""
    assert main(["workspaces"]) == 0
    assert "No workspace" in capsys.readouterr().out
    _populate(store, old_key)
    assert main(["workspaces"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["E0ORG", "T0A", "T0B"]
    org, team_a, team_b = lines
    assert "(org)" in org and "uninstalled" in org
    assert "connected" in team_a and "channel C0LEXI" in team_a and "budget left 77" in team_a
    assert "last poll never" not in team_a and "last error -" in team_a
    assert "installed" in team_b and "last error LeadLex said: 401 invalid_key" in team_b
    assert not any(secret in "\n".join(lines) for secret in (LEXI_KEY, HOOK_SECRET, old_key))


def test_purge_refuses_an_installed_workspace_without_force(
    store: Store, old_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An installed (or unknown) workspace is refused, exit 2, nothing deleted; --force purges it."""
    _populate(store, old_key)
    assert main(["workspace", "purge", "T0A"]) == 2
    assert "connected, not uninstalled" in capsys.readouterr().err
    assert main(["workspace", "purge", "T0NONE"]) == 2
    assert "not in the registry" in capsys.readouterr().err
    assert main(["workspace", "purge", " "]) == 2
    assert _count(store, SLACK_INSTALLATIONS, team_id="T0A") == 1
    assert store.scoped("T0A").get("t1") is not None
    assert main(["workspace", "purge", "T0A", "--force"]) == 0
    assert "Purged workspace T0A" in capsys.readouterr().out
    assert store.scoped("T0A").get("t1") is None
    assert _count(store, SLACK_INSTALLATIONS, team_id="T0A") == 0 and _count(store, SLACK_BOTS, team_id="T0A") == 0
    assert Workspaces(store.engine, None).get("T0A") is None


def test_purge_of_an_uninstalled_org_deletes_its_rows_and_only_its_rows(
    store: Store, old_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Purging the uninstalled org deletes its registry row, installation, bot, tasks and audit; T0A keeps all."""
    _populate(store, old_key)
    before_a = _count(store, SLACK_INSTALLATIONS, team_id="T0A")
    assert main(["workspace", "purge", "E0ORG"]) == 0
    out = capsys.readouterr().out
    assert "Purged workspace E0ORG" in out
    assert "slack_installations: 1" in out and "slack_bots: 1" in out and "workspaces: 1" in out
    assert "tasks: 1" in out and "audit_events: 1" in out
    assert _count(store, SLACK_INSTALLATIONS, enterprise_id="E0ORG") == 0
    assert Workspaces(store.engine, None).get("E0ORG") is None
    assert store.scoped("E0ORG").get("t1") is None
    assert _count(store, SLACK_INSTALLATIONS, team_id="T0A") == before_a == 1
    assert store.scoped("T0A").get("t1") is not None and Workspaces(store.engine, None).get("T0A") is not None
    assert main(["workspace", "purge", "E0ORG"]) == 2  # gone: nothing left to purge without --force


@pytest.mark.parametrize("argv", [["check"], ["webhooks", "list"]])
def test_single_workspace_commands_say_they_do_not_apply(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], old_key: str
) -> None:
    """`check` and `webhooks` in multi-workspace mode exit 2 with why, instead of checking nothing or failing."""
    monkeypatch.setenv("LEXI_ENV_FILE", "/nonexistent/.env")
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("LEXI_ENCRYPTION_KEYS", old_key)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "multi-workspace mode" in err and "Traceback" not in err and CLIENT_SECRET not in err


def test_audit_exports_one_workspace_s_trail_even_after_its_uninstall(
    store: Store, old_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lexi-bot audit --workspace` exports that workspace's events only; the uninstalled org's trail stays exportable.

    Without --workspace, multi-workspace mode says to name one; a malformed id is refused with exit 2.
    """
    _populate(store, old_key)
    store.scoped("T0A").audit("refused", "t1", actor="UMALLORY", detail="approve: not allowed")
    assert main(["audit", "--workspace", "T0A", "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in events] == ["installed", "refused"]
    assert main(["audit", "--workspace", "E0ORG"]) == 0  # uninstalled, not purged: still there
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("at,task_id,event") and "installed" in out and "UMALLORY" not in out
    assert main(["audit"]) == 2
    assert "--workspace TEAM_ID" in capsys.readouterr().err
    assert main(["audit", "--workspace", "t0a; DROP"]) == 2
    err = capsys.readouterr().err
    assert "not a Slack team" in err and "Traceback" not in err
