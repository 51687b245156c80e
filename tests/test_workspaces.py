"""The workspace registry (migration 0010, bot.db.workspaces), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from bot.db import migrate
from bot.db.store import Store
from bot.db.vault import Vault, generate_key
from bot.db.workspaces import WORKSPACES, UnknownWorkspace, Workspaces
from bot.errors import EncryptionKeysError, UnreadableSecret
from tests.support.harness import SECRETS_GIVEN

KEY = "wbk_registry_secret_key_0123456789"
HOOK_SECRET = "whsec_registry_0123456789abcdef"
SECRETS_GIVEN.update((KEY, HOOK_SECRET))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty store."""
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    yield store
    store.close()


@pytest.fixture
def key() -> str:
    """A fresh encryption key (watched by the session's secret scan)."""
    fresh = generate_key()
    SECRETS_GIVEN.add(fresh)
    return fresh


@pytest.fixture
def vault(key: str) -> Vault:
    """A vault with the test's one key."""
    return Vault([key])


@pytest.fixture
def registry(store: Store, vault: Vault) -> Workspaces:
    """The registry on the store's engine."""
    return Workspaces(store.engine, vault)


def _install(registry: Workspaces, workspace_id: str = "T0A") -> None:
    """Record a plain (non-enterprise) install by U0INSTALL."""
    registry.installed(workspace_id, enterprise_id=None, is_enterprise_install=False, installer="U0INSTALL")


def test_upgrade_and_downgrade_around_0010(database_url: str) -> None:
    """0009 → 0010 adds exactly the workspaces table with its CHECK, unique path and due index; back removes it."""
    store = Store.from_url(database_url)
    try:
        migrate.upgrade(store.engine, "0009")
        before = set(inspect(store.engine).get_table_names())
        migrate.upgrade(store.engine, "0010")
        assert set(inspect(store.engine).get_table_names()) == before | {"workspaces"}
        assert {i["name"] for i in inspect(store.engine).get_indexes("workspaces")} >= {"ix_workspaces_due"}
        now = datetime.now(UTC)
        row = {
            "id": "T1",
            "is_enterprise_install": False,
            "approvers": [],
            "webhook_path": "p1",
            "created_at": now,
            "updated_at": now,
        }
        with store.engine.begin() as conn:
            conn.execute(WORKSPACES.insert().values(state="installed", **row))
        with pytest.raises(IntegrityError), store.engine.begin() as conn:  # the CHECK holds state
            conn.execute(WORKSPACES.insert().values(state="paused", **{**row, "id": "T2", "webhook_path": "p2"}))
        with pytest.raises(IntegrityError), store.engine.begin() as conn:  # webhook paths are unique
            conn.execute(WORKSPACES.insert().values(state="installed", **{**row, "id": "T3"}))
        migrate.downgrade(store.engine, "0009")
        assert set(inspect(store.engine).get_table_names()) == before
    finally:
        store.close()


def test_install_is_idempotent_and_a_reinstall_keeps_the_configuration(registry: Workspaces) -> None:
    """installed() twice gives one row; after uninstall, a reinstall is `installed` with its channel kept."""
    first = registry.installed("E0ORG", enterprise_id="E0ORG", is_enterprise_install=True, installer="W0ADMIN")
    again = registry.installed("E0ORG", enterprise_id="E0ORG", is_enterprise_install=True, installer="W0OTHER")
    assert [w.id for w in registry.all()] == ["E0ORG"]
    assert first.state == again.state == "installed" and again.installer == "W0OTHER"
    assert again.is_enterprise_install and again.webhook_path == first.webhook_path
    registry.configure("E0ORG", channel="C0LEXI", approvers=["U0A", "S0GROUP"], policy_yaml="defaults: {}\n")
    registry.connect_lexi("E0ORG", KEY, "https://lexi.example/api")
    assert registry.require("E0ORG").state == "connected"
    registry.installed("E0ORG", enterprise_id="E0ORG", is_enterprise_install=True, installer="W0ADMIN")
    assert registry.require("E0ORG").state == "connected"  # a reinstall for new scopes changes nothing else
    gone = registry.uninstalled("E0ORG")
    assert gone.state == "uninstalled" and not gone.has_lexi_key and registry.lexi_key("E0ORG") is None
    assert gone.webhook_path != first.webhook_path  # old deliveries find nothing
    back = registry.installed("E0ORG", enterprise_id="E0ORG", is_enterprise_install=True, installer="W0ADMIN")
    assert back.state == "installed" and not back.has_lexi_key
    assert back.channel == "C0LEXI" and back.approvers == ("U0A", "S0GROUP") and back.policy_yaml == "defaults: {}\n"
    assert back.lexi_api_url == "https://lexi.example/api"


def test_connected_only_with_both_a_key_and_a_channel(registry: Workspaces) -> None:
    """Either order: the key or the channel alone leaves `installed`; both make `connected`; clearing undoes it."""
    _install(registry, "T0A")
    _install(registry, "T0B")
    assert registry.connect_lexi("T0A", KEY).state == "installed"
    assert registry.configure("T0A", channel="C0LEXI").state == "connected"
    assert registry.configure("T0B", channel="C0LEXI").state == "installed"
    assert registry.connect_lexi("T0B", KEY).state == "connected"
    assert registry.configure("T0B", channel=None).state == "installed"
    assert registry.configure("T0A", approvers=["U0X"]).channel == "C0LEXI"  # what is not given is kept


def test_the_key_is_stored_encrypted_and_read_back_only_by_lexi_key(registry: Workspaces) -> None:
    """The column holds a Fernet token; get() and all() hold no secret; lexi_key() decrypts it."""
    _install(registry)
    connected = registry.connect_lexi("T0A", KEY)
    with registry.engine.connect() as conn:
        stored = conn.execute(select(WORKSPACES.c.lexi_key)).scalar_one()
    assert KEY not in stored and registry.vault.decrypt(stored) == KEY
    assert connected.has_lexi_key and KEY not in repr(connected) and KEY not in str(asdict(connected))
    assert KEY not in repr(registry.all()) and KEY not in repr(registry)
    assert registry.lexi_key("T0A") == KEY
    assert registry.lexi_key("T0NONE") is None


def test_webhook_path_finds_the_workspace(registry: Workspaces) -> None:
    """set_webhook returns the install's path; by_webhook_path finds it; the secret comes back decrypted."""
    _install(registry, "T0A")
    _install(registry, "T0B")
    path = registry.set_webhook("T0A", "wh_1", HOOK_SECRET)
    assert path == registry.require("T0A").webhook_path and len(path) >= 40
    found = registry.by_webhook_path(path)
    assert found is not None and found.id == "T0A" and found.webhook_id == "wh_1" and found.has_webhook_secret
    assert registry.webhook_secret("T0A") == HOOK_SECRET
    assert registry.by_webhook_path("nope") is None and registry.by_webhook_path("") is None
    assert registry.by_webhook_path("x" * 1000) is None


def test_bad_input_is_refused_without_echoing_secrets(registry: Workspaces) -> None:
    """Bad channel or approvers are named; unknown and uninstalled workspaces are refused."""
    _install(registry)
    with pytest.raises(ValueError, match="channel id"):
        registry.configure("T0A", channel="#general")
    with pytest.raises(ValueError, match="S…"):
        registry.configure("T0A", approvers=["U0A", "bob"])
    with pytest.raises(UnknownWorkspace):
        registry.connect_lexi("T0NONE", KEY)
    registry.uninstalled("T0A")
    with pytest.raises(ValueError, match="uninstalled") as caught:
        registry.connect_lexi("T0A", KEY)
    assert KEY not in str(caught.value)
    with pytest.raises(ValueError, match="http"):
        registry.connect_lexi("T0A", KEY, "ftp://nope")


def test_without_a_vault_secrets_are_refused(store: Store) -> None:
    """A registry without LEXI_ENCRYPTION_KEYS reads, but neither stores nor reads a secret."""
    registry = Workspaces(store.engine, None)
    _install(registry)
    assert registry.require("T0A").state == "installed"
    with pytest.raises(EncryptionKeysError, match="LEXI_ENCRYPTION_KEYS"):
        registry.connect_lexi("T0A", KEY)


def test_rotate_reencrypts_every_secret_once(registry: Workspaces, key: str) -> None:
    """With a new first key, rotate() re-encrypts each stored secret (counted), then changes nothing."""
    for workspace_id in ("T0A", "T0B", "T0C"):
        _install(registry, workspace_id)
    registry.connect_lexi("T0A", KEY)
    registry.connect_lexi("T0B", KEY + "b")
    registry.set_webhook("T0B", "wh", HOOK_SECRET)
    new_key = generate_key()
    SECRETS_GIVEN.add(new_key)
    rotated = Vault([new_key, key])
    assert registry.rotate(rotated) == 3
    assert registry.rotate(rotated) == 0
    with registry.engine.connect() as conn:
        tokens = [t for row in conn.execute(select(WORKSPACES.c.lexi_key, WORKSPACES.c.webhook_secret)) for t in row]
    assert all(rotated.is_current(t) for t in tokens if t is not None)
    only_new = Workspaces(registry.engine, Vault([new_key]))  # the old key can now be dropped
    assert only_new.lexi_key("T0A") == KEY and only_new.webhook_secret("T0B") == HOOK_SECRET


def test_rotate_with_a_missing_key_changes_nothing_and_names_no_secret(
    registry: Workspaces, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A secret no key reads stops the rotation (nothing changed) with a message naming the workspace only."""
    _install(registry, "T0A")
    _install(registry, "T0B")
    registry.connect_lexi("T0A", KEY)
    registry.connect_lexi("T0B", KEY)
    with registry.engine.begin() as conn:  # T0B's token made with a key nobody has any more
        conn.execute(
            WORKSPACES.update().where(WORKSPACES.c.id == "T0B").values(lexi_key=Vault([generate_key()]).encrypt(KEY))
        )
    before = _tokens(registry)
    stranger = generate_key()
    SECRETS_GIVEN.add(stranger)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UnreadableSecret) as caught:
        registry.rotate(Vault([stranger, key]))
    assert "T0B" in str(caught.value)
    shown = str(caught.value) + "".join(traceback.format_exception(caught.value)) + caplog.text
    assert KEY not in shown and stranger not in shown
    assert _tokens(registry) == before


def test_due_lists_connected_workspaces_whose_poll_is_due(registry: Workspaces) -> None:
    """Only connected workspaces, due now or never polled; polled() records the poll and the next one."""
    now = datetime.now(UTC)
    for workspace_id in ("T0A", "T0B", "T0C"):
        _install(registry, workspace_id)
        registry.connect_lexi(workspace_id, KEY)
    registry.configure("T0A", channel="C0LEXI")
    registry.configure("T0B", channel="C0LEXI")
    assert {w.id for w in registry.due(now)} == {"T0A", "T0B"}
    registry.polled("T0A", next_poll_at=now + timedelta(minutes=5), budget_remaining=42, error="x" * 900)
    assert [w.id for w in registry.due(now)] == ["T0B"]
    polled = registry.require("T0A")
    assert polled.budget_remaining == 42 and polled.last_poll_at is not None
    assert polled.last_error is not None and len(polled.last_error) == 500
    assert {w.id for w in registry.due(now + timedelta(minutes=6))} == {"T0A", "T0B"}


def test_purge_deletes_the_row(registry: Workspaces) -> None:
    """purge() deletes the row and says whether there was one."""
    _install(registry)
    assert registry.purge("T0A") is True
    assert registry.get("T0A") is None and registry.purge("T0A") is False


def _tokens(registry: Workspaces) -> list[tuple[str | None, str | None]]:
    """Every stored secret token, by workspace."""
    with registry.engine.connect() as conn:
        rows = conn.execute(select(WORKSPACES.c.lexi_key, WORKSPACES.c.webhook_secret).order_by(WORKSPACES.c.id)).all()
    return [(row[0], row[1]) for row in rows]


def test_a_refused_downgrade_leaves_the_registry_in_place(store: Store, registry: Workspaces) -> None:
    """0009's downgrade refusing (another workspace's rows) undoes 0010's dropping of the registry too (SQLite too)."""
    _install(registry)
    registry.connect_lexi("T0A", KEY)
    store.scoped("T0A").audit("installed", actor="U0INSTALL")
    with pytest.raises(RuntimeError, match="purge"):
        migrate.downgrade(store.engine, "0008")
    assert migrate.current(store.engine) == migrate.head()
    assert registry.lexi_key("T0A") == KEY


def test_concurrent_installs_of_one_workspace_make_one_row(registry: Workspaces) -> None:
    """Eight installs of one team at once (Slack retrying, two admins): one row, in `installed`, no error."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def install() -> None:
        try:
            barrier.wait(timeout=10)
            _install(registry, "T0RACE")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert [(w.id, w.state) for w in registry.all()] == [("T0RACE", "installed")]
