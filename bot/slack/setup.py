"""Setting a workspace up from Slack (multi-workspace mode): "Connect LeadLex" on the Home tab, and uninstalls.

A workspace admin (users.info is_admin, is_owner or is_primary_owner) or whoever installed lexi-bot opens the
setup from the Home tab. Step 1 asks for the LeadLex API key, checked with LeadLex before the modal closes (with
`lexi-bot check`'s words, bot.ops.checks) and stored encrypted (Workspaces.connect_lexi); step 2 asks for the
announcement channel (the bot checks it can post there), the approvers and an optional policy (validated as the
policy file is). Every submission checks again who submits it: a forged one from anyone else is refused.

`app_uninstalled` and `tokens_revoked` (bot tokens) stop the workspace at once: the registry forgets its LeadLex key
(Workspaces.uninstalled) and Bolt's installation rows go (Workspaces.purge_installations); its audit trail stays.
No log line or message here ever holds a key.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.policy import PolicyError, parse_policy
from bot.db.workspaces import UnknownWorkspace, Workspace, Workspaces
from bot.errors import EncryptionKeysError
from bot.ops import checks
from bot.slack import setup_views as ui
from bot.slack.listeners import RUNTIME
from bot.slack.messenger import slack_error_text

log = logging.getLogger(__name__)

#: Seconds the key check waits for LeadLex: Slack closes a modal's submission after 3 seconds.
KEY_CHECK_TIMEOUT = 2.0
#: Seconds an answer of users.info on who is an admin is kept.
ADMIN_TTL = 60.0
#: A user-group id, as the registry takes it.
_GROUP = re.compile(r"S[A-Z0-9]{2,63}")
#: A LeadLex API URL, as the registry takes it.
_URL = re.compile(r"https?://[^\s/]+\S*")
#: The most channels of a pasted policy checked (each is a Slack call within the submission's 3 seconds).
_POLICY_CHANNELS = 5
#: The most users.info answers kept (past it, all are forgotten).
_ADMINS_KEPT = 10_000


def nothing_changed(_workspace_id: str) -> None:
    """The default `on_change`: nobody to tell."""


def workspace_id(context: BoltContext) -> str:
    """The registry id of the request's workspace: its team, or for an org-wide install its enterprise."""
    if context.is_enterprise_install and context.enterprise_id:
        return str(context.enterprise_id)
    return str(context.team_id or context.enterprise_id or "")


class Admins:
    """Who may set a workspace up: its installer, and its admins and owners (users.info, kept ADMIN_TTL seconds)."""

    def __init__(self, ttl: float = ADMIN_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def may_configure(self, client: WebClient, workspace_id: str, workspace: Workspace | None, user: str) -> bool:
        """Whether `user` may connect LeadLex or change the settings of this workspace."""
        if workspace is not None and workspace.installer == user:
            return True
        return self.is_admin(client, workspace_id, user)

    def is_admin(self, client: WebClient, workspace_id: str, user: str) -> bool:
        """Whether Slack says `user` is an admin or owner (a failed lookup: no, and not kept)."""
        key = (workspace_id, user)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen[1] > now:
                return seen[0]
        try:
            found = client.users_info(user=user).get("user") or {}
        except SlackApiError as exc:
            log.warning("could not tell whether %s is an admin of %s: %s", user, workspace_id, slack_error_text(exc))
            return False
        admin = any(bool(found.get(flag)) for flag in ("is_admin", "is_owner", "is_primary_owner"))
        with self._lock:
            if len(self._seen) > _ADMINS_KEPT:
                self._seen.clear()
            self._seen[key] = (admin, now + self._ttl)
        return admin


class Setup:
    """The listeners of the setup, on one registry; `on_change(workspace id)` after each change of a workspace."""

    def __init__(self, workspaces: Workspaces, *, lexi_url: str, on_change: Callable[[str], None]) -> None:
        self.workspaces = workspaces
        self.lexi_url = lexi_url
        self.on_change = on_change
        self.admins = Admins()

    # --- the Home tab -----------------------------------------------------------------------------

    def handle_app_home_opened(self, event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        """Publish the opener's Home: the setup for an unconnected workspace, else its Home and its settings."""
        if event.get("tab", "home") == "home":
            self.publish_home(context, client, str(event["user"]))

    def publish_home(self, context: BoltContext, client: WebClient, user: str) -> None:
        """Publish `user`'s Home as it stands now (a Slack refusal is logged, never raised)."""
        team = workspace_id(context)
        workspace = self.workspaces.get(team)
        allowed = self.admins.may_configure(client, team, workspace, user)
        if workspace is None or workspace.state != "connected":
            self._publish(client, user, ui.welcome_view(can_connect=allowed))
            return
        extra = ui.settings_blocks(workspace, default_url=self.lexi_url, can_change=allowed)
        runtime = context.get(RUNTIME)
        if runtime is not None and runtime.home is not None:
            runtime.submit_home(runtime.home.opened, user, extra)
            return
        self._publish(client, user, ui.summary_view(workspace, default_url=self.lexi_url, can_change=allowed))

    @staticmethod
    def _publish(client: WebClient, user: str, view: dict[str, Any]) -> None:
        """views.publish, logging a refusal."""
        try:
            client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the Home tab of %s: %s", user, slack_error_text(exc))

    # --- the buttons ------------------------------------------------------------------------------

    def handle_open(self, ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        """Connect LeadLex / LeadLex settings: the key modal for those allowed, a short refusal for others."""
        ack()
        team, user = workspace_id(context), str(body["user"]["id"])
        workspace = self.workspaces.get(team)
        allowed = self.admins.may_configure(client, team, workspace, user)
        view = ui.key_modal(workspace) if allowed else ui.not_allowed_view()
        try:
            client.views_open(trigger_id=str(body["trigger_id"]), view=view)
        except SlackApiError as exc:
            log.warning("could not open the LeadLex settings for %s: %s", user, slack_error_text(exc))

    # --- step 1: the key ----------------------------------------------------------------------------

    def handle_key(self, ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        """Check the key with LeadLex and store it, then show step 2; or say on the field what is wrong."""
        team, user = workspace_id(context), str(body["user"]["id"])
        workspace = self.workspaces.get(team)
        if not self.admins.may_configure(client, team, workspace, user):
            log.warning("refused a LeadLex key submitted by %s in %s: not an admin or the installer", user, team)
            ack(response_action="errors", errors={ui.KEY_BLOCK: _NOT_ALLOWED})
            return
        values = _values(body)
        key = (_text(values, ui.KEY_BLOCK) or "").strip()
        url = (_text(values, ui.URL_BLOCK) or "").strip() or None
        problem = _form_problem(workspace, key, url) or self._connect(team, workspace, key, url)
        if problem is not None:
            ack(response_action="errors", errors={problem[0]: problem[1]})
            return
        ack(response_action="update", view=ui.config_modal(self.workspaces.require(team)))
        log.info("workspace %s: LeadLex key checked and stored by %s", team, user)
        self.on_change(team)

    def _connect(self, team: str, workspace: Workspace | None, key: str, url: str | None) -> tuple[str, str] | None:
        """Check and store the key (empty: keep the stored one); the field and words of a problem, or None."""
        if not key and workspace is not None and url == workspace.lexi_api_url:
            return None  # nothing changed: on to step 2
        try:
            self._check_and_store(team, workspace, key or self.workspaces.lexi_key(team) or "", url)
        except EncryptionKeysError:
            return ui.KEY_BLOCK, _NO_VAULT
        except _Refused as refused:
            return ui.KEY_BLOCK, str(refused)
        except (UnknownWorkspace, ValueError) as exc:
            return (ui.URL_BLOCK if "URL" in str(exc) else ui.KEY_BLOCK), _sentence(str(exc))
        return None

    def _check_and_store(self, team: str, workspace: Workspace | None, key: str, url: str | None) -> None:
        """Check the key with LeadLex (_Refused saying why not), then store it (Workspaces.connect_lexi).

        A workspace the registry missed (installed before it kept workspaces) is recorded first.
        """
        accepted, line = checks.check_lexi_key(
            url or self.lexi_url,
            key,
            KEY_CHECK_TIMEOUT,
            name="this key",
            fix="paste it here",
            attempts=1,
            max_wait=0,
        )
        if not accepted:
            raise _Refused(_sentence(line))
        if workspace is None:
            org_wide = team.startswith("E")
            self.workspaces.installed(team, enterprise_id=None, is_enterprise_install=org_wide, installer=None)
        self.workspaces.connect_lexi(team, key, url)

    # --- step 2: channel, approvers, policy ---------------------------------------------------------

    def handle_config(self, ack: Ack, body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        """Check the channel, approvers and policy, and store them; or say on each field what is wrong."""
        team, user = workspace_id(context), str(body["user"]["id"])
        workspace = self.workspaces.get(team)
        if workspace is None or not self.admins.may_configure(client, team, workspace, user):
            log.warning("refused LeadLex settings submitted by %s in %s: not an admin or the installer", user, team)
            ack(response_action="errors", errors={ui.CHANNEL_BLOCK: _NOT_ALLOWED})
            return
        values = _values(body)
        channel = str((values.get(ui.CHANNEL_BLOCK) or {}).get("selected_conversation") or "")
        people = [str(u) for u in (values.get(ui.USERS_BLOCK) or {}).get("selected_users") or []]
        groups = (_text(values, ui.GROUPS_BLOCK) or "").replace(",", " ").split()
        policy = (_text(values, ui.POLICY_BLOCK) or "").strip() or None
        errors = _config_errors(client, channel, people, groups, policy)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        try:
            self.workspaces.configure(team, channel=channel, approvers=[*people, *groups], policy_yaml=policy)
        except (UnknownWorkspace, ValueError) as exc:
            ack(response_action="errors", errors={ui.CHANNEL_BLOCK: _sentence(str(exc))})
            return
        ack()
        log.info("workspace %s: LeadLex settings changed by %s", team, user)
        self.on_change(team)
        self.publish_home(context, client, user)

    # --- uninstalls -----------------------------------------------------------------------------------

    def handle_app_uninstalled(self, context: BoltContext) -> None:
        """The app was removed from the workspace: stop it, and delete its installation and LeadLex key."""
        self.stop(workspace_id(context), "app_uninstalled")

    def handle_tokens_revoked(self, event: dict[str, Any], context: BoltContext) -> None:
        """The workspace's bot token was revoked: as an uninstall (revoked user tokens: the bot holds none)."""
        if (event.get("tokens") or {}).get("bot"):
            self.stop(workspace_id(context), "tokens_revoked")

    def stop(self, team: str, why: str) -> None:
        """Forget the workspace's LeadLex key and installation (idempotent); its audit trail stays."""
        if not team:
            return
        # Not in the registry (installed before it kept workspaces, or purged): its installation still goes.
        with contextlib.suppress(UnknownWorkspace):
            self.workspaces.uninstalled(team)
        deleted = self.workspaces.purge_installations(team)
        log.info(
            "workspace %s stopped (%s): LeadLex key and webhook deleted, installation rows deleted: %s",
            team,
            why,
            ", ".join(f"{table} {count}" for table, count in deleted.items()),
        )
        self.on_change(team)


class _Refused(Exception):
    """Raised when LeadLex did not accept a key; the message is the field error."""


_NOT_ALLOWED = (
    "Only a workspace admin or owner, or whoever installed lexi-bot, can change these settings: nothing was changed."
)
_NO_VAULT = (
    "lexi-bot cannot store keys: LEXI_ENCRYPTION_KEYS is not set where it runs. Ask whoever runs lexi-bot to set it."
)


def _form_problem(workspace: Workspace | None, key: str, url: str | None) -> tuple[str, str] | None:
    """What is wrong with step 1's fields before LeadLex is asked: the field and words, or None."""
    if url is not None and not _URL.fullmatch(url):
        return ui.URL_BLOCK, "The LeadLex API URL starts with https:// (or leave it empty for LeadLex's usual one)."
    if not key and (workspace is None or not workspace.has_lexi_key):
        return ui.KEY_BLOCK, "Paste the LeadLex API key here."
    return None


def _config_errors(
    client: WebClient, channel: str, people: list[str], groups: list[str], policy: str | None
) -> dict[str, str]:
    """The field errors of step 2 (empty: all is well)."""
    errors: dict[str, str] = {}
    if not channel:
        errors[ui.CHANNEL_BLOCK] = "Choose the channel where Lexi's tasks are announced."
    else:
        trouble = channel_problem(client, channel)
        if trouble:
            errors[ui.CHANNEL_BLOCK] = trouble
    bad = [g for g in groups if not _GROUP.fullmatch(g)]
    if bad:
        errors[ui.GROUPS_BLOCK] = f"Not a user-group id: {', '.join(bad[:3])[:200]}. User-group ids start with S."
    if policy is not None:
        trouble = _policy_problem(client, policy, channel, tuple(people + groups))
        if trouble:
            errors[ui.POLICY_BLOCK] = trouble
    return errors


def _policy_problem(client: WebClient, text: str, channel: str, approvers: tuple[str, ...]) -> str | None:
    """What is wrong with a pasted policy: its line-numbered problems, or a channel it names that the bot cannot use."""
    try:
        policy = parse_policy(text, "policy", channel=channel or "C0", approvers=approvers)
    except PolicyError as exc:
        return "\n".join(exc.problems)[:1900]
    if not channel:
        return None
    for other in sorted(policy.channels() - {channel})[:_POLICY_CHANNELS]:
        trouble = channel_problem(client, other)
        if trouble:
            return f"Channel {other} (named in the policy): {trouble}"[:1900]
    return None


def channel_problem(client: WebClient, channel: str) -> str | None:
    """Why the bot cannot post in `channel` (it joins a public one it is not in), or None when it can."""
    try:
        info: dict[str, Any] = client.conversations_info(channel=channel).get("channel") or {}
    except SlackApiError as exc:
        if exc.response is not None and exc.response.get("error") == "channel_not_found":
            return "lexi-bot cannot see this channel: if it is private, type /invite @lexi-bot there first."
        return f"Slack would not describe this channel: {slack_error_text(exc)}"[:1900]
    if info.get("is_member"):
        return None
    name = str(info.get("name") or channel)
    if info.get("is_private") or info.get("is_im") or info.get("is_mpim"):
        return f"lexi-bot is not in #{name}, a private channel: type /invite @lexi-bot there, then save again."
    try:
        client.conversations_join(channel=channel)
    except SlackApiError as exc:
        return f"lexi-bot could not join #{name} ({slack_error_text(exc)}): type /invite @lexi-bot there."[:1900]
    return None


def _values(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The submitted view's values by block: each block's one element (action id VALUE)."""
    state = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    return {block: (actions.get(ui.VALUE) or {}) for block, actions in state.items() if isinstance(actions, dict)}


def _text(values: dict[str, dict[str, Any]], block: str) -> str | None:
    """A text input's value."""
    value = (values.get(block) or {}).get("value")
    return str(value) if value is not None else None


def _sentence(line: str) -> str:
    """A check's line as a field error: capitalized, ending with a full stop."""
    line = line[:1].upper() + line[1:]
    return line if line.endswith((".", "?", "!")) else line + "."


def register(
    app: App, workspaces: Workspaces, *, lexi_url: str, on_change: Callable[[str], None] = nothing_changed
) -> Setup:
    """Register the Home tab, the setup buttons and modals, and the uninstall events (before other listeners)."""
    setup = Setup(workspaces, lexi_url=lexi_url, on_change=on_change)
    app.event("app_home_opened")(setup.handle_app_home_opened)
    app.action(ui.CONNECT_ACTION)(setup.handle_open)
    app.action(ui.SETTINGS_ACTION)(setup.handle_open)
    app.view(ui.KEY_VIEW)(setup.handle_key)
    app.view(ui.CONFIG_VIEW)(setup.handle_config)
    app.event("app_uninstalled")(setup.handle_app_uninstalled)
    app.event("tokens_revoked")(setup.handle_tokens_revoked)
    return setup
