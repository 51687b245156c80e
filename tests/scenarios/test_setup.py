"""Issue 15's "Connect LeadLex" setup and uninstalls, end to end: the real multi-workspace app over signed HTTP.

A workspace installs through the Slack stand-in's OAuth flow; its admin connects it from the Home tab to a LeadLex
sandbox workspace. Nothing here calls the bot's code directly but the registry it stores into.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.db.store import Store
from bot.db.vault import Vault, generate_key
from bot.db.workspaces import Workspaces
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_workspace import SandboxWorkspace
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import setup_views as ui
from tests.support.harness import SECRETS_GIVEN, BotHarness
from tests.support.installer import Installer, start_installer

TEAM = "T0001"
INSTALLER = "UALICE"  # the stand-in's installer
ADMIN = "UBOB"
MEMBER = "UCAROL"  # neither admin nor installer


@dataclass
class Setting:
    """The multi-workspace bot installed in one workspace, its registry, a LeadLex workspace, what it was told."""

    bot: Installer
    registry: Workspaces
    lexi: SandboxWorkspace
    changed: list[str] = field(default_factory=list)

    def home(self, user: str) -> str:
        """Open `user`'s Home tab and return what was published for them (as JSON text)."""
        assert self.bot.post_event(payloads.build_app_home_opened(user=user, team_id=TEAM)).status_code == 200
        return json.dumps(self.bot.slack.home_views.get(user))

    def click(self, user: str, action: str = ui.CONNECT_ACTION) -> httpx.Response:
        """`user` clicks a setup button on their Home tab."""
        payload = payloads.build_block_action(
            action_id=action,
            value="setup",
            user=user,
            team_id=TEAM,
            trigger_id=self.bot.slack.new_trigger_id(user),
            container={"type": "view", "view_id": "V0HOME"},
        )
        return self.bot.post_interactive(payload)

    def submit_key(self, key: str, *, user: str = INSTALLER, url: str | None = None) -> dict[str, Any]:
        """`user` submits step 1 with this key; the JSON Slack got back (empty when the modal just closed)."""
        values = {ui.KEY_BLOCK: {ui.VALUE: key}, ui.URL_BLOCK: {ui.VALUE: url}}
        return self._submit(ui.KEY_VIEW, values, user)

    def submit_config(
        self,
        channel: str | None,
        *,
        user: str = INSTALLER,
        people: tuple[str, ...] = (),
        groups: str = "",
        policy: str | None = None,
    ) -> dict[str, Any]:
        """`user` submits step 2; the JSON Slack got back (empty when the modal closed)."""
        values = {
            ui.CHANNEL_BLOCK: {ui.VALUE: {"type": "conversations_select", "selected_conversation": channel}},
            ui.USERS_BLOCK: {ui.VALUE: {"type": "multi_users_select", "selected_users": list(people)}},
            ui.GROUPS_BLOCK: {ui.VALUE: groups},
            ui.POLICY_BLOCK: {ui.VALUE: policy},
        }
        return self._submit(ui.CONFIG_VIEW, values, user)

    def _submit(self, callback_id: str, values: dict[str, Any], user: str) -> dict[str, Any]:
        """Post a view_submission signed for the workspace; the answer's JSON body ({} when empty)."""
        payload = payloads.build_view_submission(callback_id=callback_id, values=values, user=user, team_id=TEAM)
        answer = self.bot.post_interactive(payload)
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.content else {}

    def connect(self) -> None:
        """The installer connects the workspace with a good key and the default channel."""
        assert self.submit_key(self.lexi.api_key)["response_action"] == "update"
        assert self.submit_config("C0LEXI") == {}


@pytest.fixture
def setting(slack: SlackStandIn, sandbox: Sandbox, database_url: str) -> Iterator[Setting]:
    """Installed in T0001 through OAuth, recorded in the registry with its installer; Bob is an admin."""
    registry_store = Store.from_url(database_url)
    vault = Vault([generate_key()])
    lexi = sandbox.add_workspace()
    SECRETS_GIVEN.update({lexi.api_key, lexi.no_lexi_key or ""})
    registry = Workspaces(registry_store.engine, vault)
    changed: list[str] = []
    options = {"workspaces": registry, "lexi_url": sandbox.url, "on_change": changed.append}
    slack.set_admin(ADMIN)
    try:
        for bot in start_installer(slack, database_url, app_options=options):
            assert bot.install(team=TEAM).status_code == 302
            # What the install's success records (bot.slack.install, multi-workspace runtime).
            registry.installed(TEAM, enterprise_id=None, is_enterprise_install=False, installer=INSTALLER)
            yield Setting(bot, registry, lexi, changed)
    finally:
        registry_store.close()


def test_installer_and_admins_see_connect_leadlex_and_others_do_not(setting: Setting) -> None:
    """The installer and an admin get the Connect button on the Home tab; a member is told an admin connects it."""
    assert ui.CONNECT_ACTION in setting.home(INSTALLER)
    assert ui.CONNECT_ACTION in setting.home(ADMIN)
    member = setting.home(MEMBER)
    assert ui.CONNECT_ACTION not in member and "a workspace admin connects it here" in member


def test_connect_opens_the_key_modal_for_admins_only(setting: Setting) -> None:
    """A click on Connect opens the key modal for an admin; a member's (forged) click opens only a refusal."""
    setting.click(ADMIN)
    setting.click(MEMBER)
    opened = {view.user: json.dumps(view.view) for view in setting.bot.slack.views}
    assert ui.KEY_BLOCK in opened[ADMIN]
    assert ui.KEY_BLOCK not in opened[MEMBER] and "Only a workspace admin" in opened[MEMBER]


def test_a_non_admin_s_forged_submissions_are_refused(setting: Setting) -> None:
    """A member submitting either step (forged: they never got the modal) changes nothing."""
    answer = setting.submit_key(setting.lexi.api_key, user=MEMBER)
    assert answer["response_action"] == "errors" and "Only a workspace admin" in answer["errors"][ui.KEY_BLOCK]
    answer = setting.submit_config("C0LEXI", user=MEMBER)
    assert answer["response_action"] == "errors" and "nothing was changed" in answer["errors"][ui.CHANNEL_BLOCK]
    workspace = setting.registry.require(TEAM)
    assert not workspace.has_lexi_key and workspace.channel is None and setting.changed == []


def test_a_bad_key_is_refused_on_its_field_with_the_check_s_words(setting: Setting) -> None:
    """An unknown key: LeadLex's invalid_key, as `lexi-bot check` says it; nothing stored."""
    answer = setting.submit_key("lx_not-a-real-key-0123456789")
    assert answer["response_action"] == "errors"
    assert answer["errors"][ui.KEY_BLOCK].startswith("LeadLex refused this key (invalid_key): create a new key")
    assert not setting.registry.require(TEAM).has_lexi_key


def test_a_key_without_the_lexi_permission_is_refused(setting: Setting) -> None:
    """A key LeadLex knows but without the Lexi permission is refused on its field."""
    assert setting.lexi.no_lexi_key is not None
    answer = setting.submit_key(setting.lexi.no_lexi_key)
    assert answer["errors"][ui.KEY_BLOCK] == "This key lacks the Lexi permission: enable it for the key in LeadLex."
    assert not setting.registry.require(TEAM).has_lexi_key


def test_an_unreachable_leadlex_is_said_on_the_field(setting: Setting) -> None:
    """A LeadLex URL where nothing answers: said at once, on the field, within Slack's 3 seconds."""
    answer = setting.submit_key(setting.lexi.api_key, url="http://127.0.0.1:9/api")
    assert answer["errors"][ui.KEY_BLOCK].startswith("Could not reach LeadLex at http://127.0.0.1:9/api")


def test_a_slow_leadlex_is_said_on_the_field_within_slack_s_deadline(setting: Setting) -> None:
    """LeadLex accepts the connection but never answers: the field says so before Slack's 3 seconds are up."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # never accepts: the request waits for an answer
        started = time.monotonic()
        answer = setting.submit_key(setting.lexi.api_key, url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        took = time.monotonic() - started
    assert "no answer within 2s" in answer["errors"][ui.KEY_BLOCK]
    assert took < 3.0
    assert not setting.registry.require(TEAM).has_lexi_key


def test_a_good_key_is_stored_encrypted_and_never_shown(setting: Setting, caplog: pytest.LogCaptureFixture) -> None:
    """A good key moves on to step 2; the key is in no DB row, log line or Slack call, and the Home says 'key set'."""
    key = setting.lexi.api_key
    with caplog.at_level(logging.DEBUG):
        answer = setting.submit_key(key)
        assert answer["response_action"] == "update" and answer["view"]["callback_id"] == ui.CONFIG_VIEW
        setting.submit_config("C0LEXI")
        home = setting.home(INSTALLER)
    assert setting.registry.require(TEAM).has_lexi_key and setting.registry.lexi_key(TEAM) == key
    with setting.bot.store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM workspaces WHERE id = :id"), {"id": TEAM}).one()
    assert all(key not in str(value) for value in row)
    assert all(key not in record.getMessage() for record in caplog.records)
    assert all(key not in json.dumps(call.args, default=str) for call in setting.bot.slack.calls)
    assert "key set" in home and key not in home and json.dumps(answer).find(key) == -1


def test_a_channel_the_bot_cannot_post_in_is_refused(setting: Setting) -> None:
    """A private channel without the bot is refused on its field; a public one without it is joined."""
    setting.bot.slack.add_channel("G0SECRET", "secret", member=False, private=True)
    setting.bot.slack.add_channel("C0OPEN", "open", member=False)
    assert setting.submit_key(setting.lexi.api_key)["response_action"] == "update"
    answer = setting.submit_config("G0SECRET")
    assert "/invite @lexi-bot" in answer["errors"][ui.CHANNEL_BLOCK]
    assert setting.registry.require(TEAM).state == "installed"
    assert setting.submit_config("C0OPEN") == {}
    assert [call.args.get("channel") for call in setting.bot.slack.calls_to("conversations.join")] == ["C0OPEN"]
    assert setting.registry.require(TEAM).channel == "C0OPEN"


def test_a_bad_policy_is_refused_with_its_line(setting: Setting) -> None:
    """A pasted policy that does not validate: the parser's line-numbered problems on the field; nothing stored."""
    assert setting.submit_key(setting.lexi.api_key)["response_action"] == "update"
    answer = setting.submit_config("C0LEXI", policy="defaults:\n  quorm: 2\n")
    problem = answer["errors"][ui.POLICY_BLOCK]
    assert problem.startswith("policy line 2:") and "quorm" in problem
    assert setting.registry.require(TEAM).channel is None
    answer = setting.submit_config("C0LEXI", policy="defaults: [unclosed\n")
    assert "not valid YAML" in answer["errors"][ui.POLICY_BLOCK]


def test_a_channel_the_policy_names_is_checked_too(setting: Setting) -> None:
    """A policy announcing some task type in a private channel without the bot is refused, naming that channel."""
    setting.bot.slack.add_channel("G0SECRET", "secret", member=False, private=True)
    assert setting.submit_key(setting.lexi.api_key)["response_action"] == "update"
    answer = setting.submit_config("C0LEXI", policy="types:\n  campaign_start:\n    channel: G0SECRET\n")
    assert answer["errors"][ui.POLICY_BLOCK].startswith("Channel G0SECRET (named in the policy): lexi-bot is not in")


def test_a_url_that_is_not_http_is_refused_on_its_field(setting: Setting) -> None:
    """An API URL that is not http(s) is refused on the URL field before LeadLex is asked anything."""
    answer = setting.submit_key(setting.lexi.api_key, url="ftp://leadlex.example")
    assert "https://" in answer["errors"][ui.URL_BLOCK]


def test_bad_user_group_ids_are_refused(setting: Setting) -> None:
    """Approver user groups must be ids (S…): a #name is refused on its field."""
    assert setting.submit_key(setting.lexi.api_key)["response_action"] == "update"
    answer = setting.submit_config("C0LEXI", groups="S0OPS, @ops-team")
    assert "@ops-team" in answer["errors"][ui.GROUPS_BLOCK]


def test_full_setup_connects_the_workspace(setting: Setting) -> None:
    """Key, channel, approvers and a policy: the registry says connected, and the runtime is told twice."""
    assert setting.submit_key(setting.lexi.api_key)["response_action"] == "update"
    policy = "defaults:\n  quorum: 2\n"
    assert setting.submit_config("C0LEXI", people=("UDAVE",), groups="S0OPS", policy=policy) == {}
    workspace = setting.registry.require(TEAM)
    assert workspace.state == "connected" and workspace.channel == "C0LEXI"
    assert workspace.approvers == ("UDAVE", "S0OPS") and workspace.policy_yaml == policy.strip()
    assert setting.changed == [TEAM, TEAM]
    member = setting.home(MEMBER)
    assert "C0LEXI" in member and "UDAVE" in member and ui.SETTINGS_ACTION not in member
    assert ui.SETTINGS_ACTION in setting.home(ADMIN)


def test_settings_keep_the_stored_key_when_left_empty(setting: Setting) -> None:
    """Changing the settings later: an empty key field keeps the key; the modal shows the current settings."""
    setting.connect()
    answer = setting.submit_key("")
    assert answer["response_action"] == "update" and "C0LEXI" in json.dumps(answer["view"])
    assert setting.registry.lexi_key(TEAM) == setting.lexi.api_key


def _installation_rows(store: Store) -> int:
    """How many installation and bot rows slack_sdk's store holds for the team."""
    with store.engine.connect() as conn:
        return sum(
            conn.execute(text(f"SELECT count(*) FROM {table} WHERE team_id = :t"), {"t": TEAM}).scalar_one()  # noqa: S608 - fixed table names
            for table in ("slack_installations", "slack_bots")
        )


@pytest.mark.parametrize(
    "envelope",
    [payloads.build_app_uninstalled(team_id=TEAM), payloads.build_tokens_revoked(team_id=TEAM)],
    ids=["app_uninstalled", "tokens_revoked"],
)
def test_an_uninstall_stops_the_workspace_and_keeps_its_audit(setting: Setting, envelope: dict[str, Any]) -> None:
    """app_uninstalled / tokens_revoked: installation rows and key gone, audit kept, runtime told; twice is fine."""
    setting.connect()
    audit = setting.bot.store.scoped(TEAM)
    audit.audit("test_event", actor=INSTALLER, detail="kept for export")
    assert _installation_rows(setting.bot.store) > 0
    setting.changed.clear()
    for _ in range(2):
        envelope = {**envelope, "event_id": envelope["event_id"] + "X"}  # a new delivery, not a retry
        assert setting.bot.post_event(envelope).status_code == 200
    workspace = setting.registry.require(TEAM)
    assert workspace.state == "uninstalled" and not workspace.has_lexi_key
    assert setting.registry.lexi_key(TEAM) is None and _installation_rows(setting.bot.store) == 0
    assert [e["event"] for e in audit.audit_events()] == ["test_event"]
    assert setting.changed == [TEAM, TEAM]


def test_revoked_user_tokens_change_nothing(setting: Setting) -> None:
    """tokens_revoked for user tokens only (the bot holds none): the workspace keeps running."""
    setting.connect()
    setting.changed.clear()
    envelope = payloads.build_tokens_revoked(team_id=TEAM, user_ids=["UALICE"])
    envelope["event"]["tokens"]["bot"] = []
    assert setting.bot.post_event(envelope).status_code == 200
    assert setting.registry.require(TEAM).state == "connected" and setting.changed == []


def test_a_runtime_s_home_shows_the_settings_above_the_tasks(bot: BotHarness) -> None:
    """HomePublisher.opened with extra blocks puts them first, in later publishes too; without them they go."""
    assert bot.runtime.home is not None
    extra = {"type": "section", "block_id": "lexi_settings", "text": {"type": "mrkdwn", "text": "*LeadLex settings*"}}
    bot.runtime.home.opened("UALICE", [extra])
    assert bot.slack.home_views["UALICE"]["blocks"][0]["block_id"] == "lexi_settings"
    bot.runtime.home.publish("UALICE")
    assert bot.slack.home_views["UALICE"]["blocks"][0]["block_id"] == "lexi_settings"
    bot.runtime.home.opened("UALICE")
    assert all(block.get("block_id") != "lexi_settings" for block in bot.slack.home_views["UALICE"]["blocks"])
