"""The Slack app manifest against the built Bolt app, and building the app on a correct configuration.

Every handled event is subscribed, every called method's scope asked for, nothing more; and building the app warns
about nothing on a correct configuration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt import App, Assistant
from slack_sdk import WebClient

from bot.db import migrate
from bot.db.store import Store
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.slack import assistant
from bot.slack.app import create_app, create_multi_workspace_app
from bot.slack.install import BOT_SCOPES, InstallSettings
from tests.support.harness import BotHarness, start_bot

ROOT = Path(__file__).resolve().parent.parent
#: Bot scopes each Web API method needs (Slack's method reference); a method the bot calls must be listed here.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "apps.connections.open": set(),  # the app-level token's connections:write, not a bot scope (README step 2)
    "chat.getPermalink": set(),
    "chat.postEphemeral": {"chat:write"},
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "assistant.threads.setStatus": {"assistant:write"},
    "assistant.threads.setSuggestedPrompts": {"assistant:write"},
    "assistant.threads.setTitle": {"assistant:write"},
    # Announcement channels may be public or private: both kinds' scopes are needed.
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "conversations.info": {"channels:read", "groups:read"},
    "conversations.join": {"channels:join"},
    "conversations.members": {"channels:read", "groups:read"},
    "conversations.open": {"im:write"},
    "usergroups.users.list": {"usergroups:read"},
    "users.info": {"users:read"},
    "views.open": set(),
    "views.publish": set(),
}
#: Bot scopes each Events API subscription needs (Slack's event reference).
EVENT_SCOPES: dict[str, set[str]] = {
    "app_home_opened": set(),
    "member_joined_channel": {"channels:read", "groups:read"},
    "member_left_channel": {"channels:read", "groups:read"},
    "subteam_members_changed": {"usergroups:read"},
    "app_uninstalled": set(),
    "tokens_revoked": set(),
    "assistant_thread_started": {"assistant:write"},
    "assistant_thread_context_changed": {"assistant:write"},
    "message.im": {"im:history"},
    "app_mention": {"app_mentions:read"},
}
#: The subscriptions Bolt's Assistant middleware serves, by the kind of its listeners (Slack's names for them).
ASSISTANT_EVENTS = {
    "_thread_started_listeners": "assistant_thread_started",
    "_thread_context_changed_listeners": "assistant_thread_context_changed",
    "_user_message_listeners": "message.im",
}
#: Modules only multi-workspace mode runs (manifest.distribution.yml): manifest.yml need not cover their calls.
MULTI_ONLY = {"setup.py"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """manifest.yml as Slack reads it."""
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    """The real bot (sandbox, Slack stand-in, SQLite), whose Bolt app the tests inspect."""
    database = tmp_path_factory.mktemp("manifest") / "lexi-bot.db"
    with Sandbox(seed=False) as sandbox, SlackStandIn() as slack:
        harness = start_bot(sandbox, slack, f"sqlite:///{database}")
        try:
            yield harness
        finally:
            harness.close()


def _registered(app: App) -> dict[str, set[str]]:
    """What the app's listeners match, by kind (event, command, action, view_submission), from their matchers."""
    found: dict[str, set[str]] = {}
    for listener in app._listeners:  # noqa: SLF001 - the honest source: what Bolt will actually dispatch
        for matcher in listener.matchers:
            func = getattr(matcher, "func", None)
            if func is None or not func.__qualname__.endswith(".<locals>.func"):
                continue
            kind = func.__qualname__.split(".", 1)[0]
            cells = dict(zip(func.__code__.co_freevars, (c.cell_contents for c in func.__closure__ or ()), strict=True))
            value = (
                cells.get("event_type") or cells.get("command") or cells.get("callback_id") or cells.get("constraints")
            )
            if isinstance(value, dict):
                value = value.get("type") or value.get("action_id") or value.get("callback_id")
            found.setdefault(kind, set()).add(str(value))
    found.setdefault("event", set()).update(_assistant_events(app))
    if "message" in found.get("event", set()):  # the bot's only message subscription is its DMs (message.im)
        found["event"].remove("message")
        found["event"].add("message.im")
    return found


def _assistant_events(app: App) -> set[str]:
    """The subscriptions an Assistant middleware on the app has listeners for (Bolt keeps them out of _listeners)."""
    events: set[str] = set()
    for middleware in app._middleware_list:  # noqa: SLF001 - as above: what Bolt will actually dispatch
        if isinstance(middleware, Assistant):
            events.update(event for attribute, event in ASSISTANT_EVENTS.items() if getattr(middleware, attribute))
    return events


def _called_methods(exclude: set[str] | None = None) -> dict[str, set[str]]:
    """Every Slack Web API method the bot's code calls (`client.chat_postMessage(` or `.api_call("…")`), by file.

    Files named in `exclude` are skipped.
    """
    methods = {name for name in dir(WebClient) if not name.startswith("_") and "_" in name} - {"api_call"}
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if "standin" in path.parts or path.name in (exclude or set()):
            continue  # the Slack stand-in serves the API; it does not call Slack
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\.([a-z]+_[A-Za-z_]+)\(", text):
            if match.group(1) in methods:
                found.setdefault(match.group(1).replace("_", "."), set()).add(path.name)
        for match in re.finditer(r"api_call\(\s*[\"']([A-Za-z.]+)[\"']", text):
            found.setdefault(match.group(1), set()).add(path.name)
    return found


def test_every_handled_event_is_subscribed_and_nothing_else(built: BotHarness, manifest: dict[str, Any]) -> None:
    """The manifest subscribes to exactly the events the built app has listeners for."""
    handled = _registered(create_app(built.runtime))["event"]
    subscribed = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"subteam_members_changed", "member_joined_channel", "member_left_channel"} <= handled
    assert {"assistant_thread_started", "assistant_thread_context_changed", "message.im"} <= handled
    assert subscribed == handled


def test_commands_actions_and_views_reach_the_app(built: BotHarness, manifest: dict[str, Any]) -> None:
    """Each registered slash command is declared (with the commands scope); buttons and forms need interactivity."""
    registered = _registered(create_app(built.runtime))
    declared = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert registered["command"] == declared == {"/lexi"}
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
    assert registered["action"] and registered["view_submission"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True  # app_home_opened publishes the Home tab


def test_the_assistant_view_is_declared_with_the_prompts_the_bot_suggests(manifest: dict[str, Any]) -> None:
    """The manifest turns on the assistant pane (its threads live in the app's DMs) with the bot's prompts."""
    view = manifest["features"]["assistant_view"]
    assert view["assistant_description"]
    assert [p["message"] for p in view["suggested_prompts"]] == list(assistant.SUGGESTED_PROMPTS)
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs(built: BotHarness, manifest: dict[str, Any]) -> None:
    """Every called method's and subscribed event's scope is asked for, and no scope nothing needs (least privilege)."""
    called = _called_methods(exclude=MULTI_ONLY)
    assert {"chat.postMessage", "chat.update", "conversations.members", "usergroups.users.list"} <= set(called)
    unknown = {m: files for m, files in called.items() if m not in METHOD_SCOPES}
    assert not unknown, f"add these methods and their scopes to METHOD_SCOPES: {unknown}"
    handled = _registered(create_app(built.runtime))["event"]
    needed = {"commands"}.union(*(METHOD_SCOPES[m] for m in called), *(EVENT_SCOPES[e] for e in handled))
    asked = set(manifest["oauth_config"]["scopes"]["bot"])
    assert needed - asked == set(), f"missing scopes: {needed - asked}"
    assert asked - needed == set(), f"scopes nothing uses: {asked - needed}"


def test_building_the_app_logs_no_warning(
    built: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With SLACK_BOT_TOKEN set as a user sets it, building the Bolt app warns of nothing (no token/client notice)."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "test-signing-secret-0123456789")
    with caplog.at_level(logging.DEBUG):
        create_app(built.runtime)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


def test_only_the_messenger_calls_slacks_chat_api() -> None:
    """Messages are posted, updated and linked in one place (bot.slack.messenger), never beside it."""
    chat = {method: files for method, files in _called_methods().items() if method.startswith("chat.")}
    assert {"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.getPermalink"} <= set(chat)
    assert {file for files in chat.values() for file in files} == {"messenger.py"}


@pytest.fixture(scope="module")
def distribution() -> dict[str, Any]:
    """manifest.distribution.yml (multi-workspace mode) as Slack reads it."""
    return yaml.safe_load((ROOT / "manifest.distribution.yml").read_text(encoding="utf-8"))


def _multi_app(database: Path) -> App:
    """The multi-workspace Bolt app, built on a SQLite database (its listeners are what is looked at)."""
    store = Store.from_url(f"sqlite:///{database}")
    migrate.upgrade(store.engine)
    settings = InstallSettings(client_id="1.2", client_secret="not-a-secret")
    return create_multi_workspace_app(settings, store, signing_secret="not-a-secret", client=WebClient())


def test_the_distribution_manifest_is_the_single_one_plus_what_installs_need(
    manifest: dict[str, Any], distribution: dict[str, Any]
) -> None:
    """manifest.distribution.yml = manifest.yml + an OAuth redirect, the setup's scopes and the uninstall events."""
    assert distribution["oauth_config"]["redirect_urls"] == ["https://YOUR-HOST/slack/oauth_redirect"]
    assert distribution["settings"]["socket_mode_enabled"] is False  # multi-workspace mode runs over HTTP only
    for key in ("display_information", "features"):
        assert distribution[key] == manifest[key]
    events = set(distribution["settings"]["event_subscriptions"]["bot_events"])
    assert events == set(manifest["settings"]["event_subscriptions"]["bot_events"]) | {
        "app_uninstalled",
        "tokens_revoked",
    }
    assert tuple(distribution["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES


def test_the_distribution_manifest_subscribes_what_the_multi_app_handles(
    distribution: dict[str, Any], tmp_path: Path
) -> None:
    """Every event the multi-workspace app listens to is subscribed, the uninstall events among them."""
    handled = _registered(_multi_app(tmp_path / "lexi-bot.db"))["event"]
    assert {"app_home_opened", "app_uninstalled", "tokens_revoked"} <= handled
    assert handled <= set(distribution["settings"]["event_subscriptions"]["bot_events"])


def test_the_distribution_manifest_asks_for_exactly_the_scopes_the_code_needs(distribution: dict[str, Any]) -> None:
    """Every method any module calls, and every subscribed event, has its scope asked for; nothing more."""
    called = _called_methods()
    assert {"users.info", "conversations.join"} <= set(called)
    events = distribution["settings"]["event_subscriptions"]["bot_events"]
    needed = {"commands"}.union(*(METHOD_SCOPES[m] for m in called), *(EVENT_SCOPES[e] for e in events))
    assert set(distribution["oauth_config"]["scopes"]["bot"]) == needed
