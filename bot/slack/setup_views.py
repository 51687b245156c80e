"""Block Kit of the "Connect LeadLex" setup (multi-workspace mode): the Home's setup part and the two modals.

Pure functions of a workspace as the registry reads it (bot.db.workspaces.Workspace), which holds no secret: a
LeadLex key is only ever shown as "key set". Every text that came from outside (a policy, a URL) is escaped.
"""

from __future__ import annotations

from typing import Any

from bot.core.policy import PolicyError, describe, parse_policy
from bot.db.workspaces import Workspace
from bot.slack.blocks import escape, truncate

#: Buttons on the Home tab.
CONNECT_ACTION = "lexi_setup_connect"
SETTINGS_ACTION = "lexi_setup_settings"
#: The modals' callback ids: step 1 (the LeadLex key) and step 2 (channel, approvers, policy).
KEY_VIEW = "lexi_setup_key"
CONFIG_VIEW = "lexi_setup_config"
#: Input blocks (each holds one element whose action id is VALUE); field errors are keyed by these.
KEY_BLOCK = "lexi_key"
URL_BLOCK = "lexi_url"
CHANNEL_BLOCK = "channel"
USERS_BLOCK = "approver_users"
GROUPS_BLOCK = "approver_groups"
POLICY_BLOCK = "policy"
VALUE = "value"

#: Longest plain_text_input value Slack accepts (a policy longer than this is set with the CLI).
_INPUT_MAX = 3000
_TEXT_MAX = 2900
_NOT_CONNECTED = "It is not connected to LeadLex yet"


def welcome_view(*, can_connect: bool) -> dict[str, Any]:
    """The Home of a workspace where lexi-bot is installed but not connected: a Connect button for admins."""
    if can_connect:
        text = (
            f"*lexi-bot is installed in this workspace.*\n{_NOT_CONNECTED}: connect it with your LeadLex API key, "
            "then choose the channel where Lexi's tasks waiting for approval appear, and who may approve them."
        )
        button = _button("Connect LeadLex", CONNECT_ACTION, primary=True)
        return _home([_section(text), {"type": "actions", "block_id": "setup", "elements": [button]}])
    text = (
        f"*lexi-bot is installed in this workspace.*\n{_NOT_CONNECTED}: a workspace admin connects it here, "
        "and then Lexi's tasks waiting for approval appear in the channel they choose."
    )
    return _home([_section(text)])


def settings_blocks(workspace: Workspace, *, default_url: str, can_change: bool) -> list[dict[str, Any]]:
    """What a connected workspace is configured with (never its key), and a settings button for admins."""
    lines = [
        "*LeadLex settings*",
        f"Announcement channel: {f'<#{workspace.channel}>' if workspace.channel else 'not chosen'}",
        f"Approvers: {_approvers(workspace.approvers)}",
        f"LeadLex: {escape(workspace.lexi_api_url or default_url)} ({_key_state(workspace)})",
        f"Policy: {policy_summary(workspace)}",
    ]
    blocks: list[dict[str, Any]] = [_section(truncate("\n".join(lines), _TEXT_MAX))]
    if can_change:
        button = _button("LeadLex settings", SETTINGS_ACTION)
        blocks.append({"type": "actions", "block_id": "setup", "elements": [button]})
    else:
        blocks.append(_context("Only a workspace admin (or whoever installed lexi-bot) can change these settings."))
    blocks.append({"type": "divider"})
    return blocks


def summary_view(workspace: Workspace, *, default_url: str, can_change: bool) -> dict[str, Any]:
    """The Home of a connected workspace when its tasks cannot be shown here: its settings alone."""
    return _home(settings_blocks(workspace, default_url=default_url, can_change=can_change))


def policy_summary(workspace: Workspace) -> str:
    """One escaped paragraph on the workspace's policy: the default, or what the pasted policy does."""
    if not workspace.policy_yaml:
        return "the default (every task in the announcement channel, decided by the approvers)"
    try:
        policy = parse_policy(
            workspace.policy_yaml, "policy", channel=workspace.channel or "C0", approvers=workspace.approvers
        )
    except PolicyError as exc:
        return escape(truncate(f"custom, but it does not validate: {exc}", 500))
    return escape(truncate("custom. " + " ".join(describe(policy)[1:]), 1500))


def not_allowed_view() -> dict[str, Any]:
    """The modal a non-admin gets from a settings button: who can change them."""
    text = "Only a workspace admin or owner, or whoever installed lexi-bot, can connect LeadLex or change its settings."
    return _modal(KEY_VIEW + "_refused", "LeadLex settings", [_section(text)], submit=None)


def key_modal(workspace: Workspace | None) -> dict[str, Any]:
    """Step 1: the LeadLex API key (optional when one is set: empty keeps it) and, optionally, the API URL."""
    has_key = workspace is not None and workspace.has_lexi_key
    key = _text_input(placeholder="Paste the key; leave empty to keep the current one" if has_key else "Paste the key")
    url = _text_input(initial=workspace.lexi_api_url if workspace else None, placeholder="https://…")
    blocks = [
        _section(
            "lexi-bot checks the key with LeadLex at once (it needs the Lexi permission) and stores it encrypted. "
            "It is never shown again, here or anywhere else."
        ),
        _input(KEY_BLOCK, "LeadLex API key", key, optional=has_key),
        _input(URL_BLOCK, "LeadLex API URL", url, optional=True, hint="Leave empty for LeadLex's usual address."),
    ]
    return _modal(KEY_VIEW, "Connect LeadLex", blocks, submit="Check key")


def config_modal(workspace: Workspace) -> dict[str, Any]:
    """Step 2: the announcement channel, the approvers (people and user groups) and an optional policy."""
    channel: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": VALUE,
        "default_to_current_conversation": False,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if workspace.channel:
        channel["initial_conversation"] = workspace.channel
    users: dict[str, Any] = {"type": "multi_users_select", "action_id": VALUE}
    people = [a for a in workspace.approvers if not a.startswith("S")]
    if people:
        users["initial_users"] = people
    groups = _text_input(initial=" ".join(a for a in workspace.approvers if a.startswith("S")) or None)
    policy = _text_input(initial=workspace.policy_yaml, multiline=True)
    blocks = [
        _input(CHANNEL_BLOCK, "Announcement channel", channel, hint="Invite lexi-bot first to a private channel."),
        _input(USERS_BLOCK, "Approvers", users, optional=True, hint="Nobody chosen: anyone in the channel approves."),
        _input(GROUPS_BLOCK, "Approver user groups", groups, optional=True, hint="User-group ids (S…), spaced."),
        _input(
            POLICY_BLOCK,
            "Policy (YAML)",
            policy,
            optional=True,
            hint="The policy file's full power: per task type channels, approvers, quorum, reminders.",
        ),
    ]
    return _modal(CONFIG_VIEW, "LeadLex settings", blocks, submit="Save")


# --- small builders -----------------------------------------------------------------------------------


def _home(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A Home view of these blocks."""
    return {"type": "home", "blocks": blocks}


def _modal(callback_id: str, title: str, blocks: list[dict[str, Any]], *, submit: str | None) -> dict[str, Any]:
    """A modal with a title, blocks, a Close button and, unless None, a submit button."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": title},
        "close": {"type": "plain_text", "text": "Cancel" if submit else "Close"},
        "blocks": blocks,
    }
    if submit:
        view["submit"] = {"type": "plain_text", "text": submit}
    return view


def _section(text: str) -> dict[str, Any]:
    """A section of mrkdwn text (already escaped)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    """A context line of mrkdwn text (already escaped)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(text: str, action_id: str, *, primary: bool = False) -> dict[str, Any]:
    """A button; its value holds nothing (the workspace comes from the request)."""
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": "setup",
    }
    if primary:
        button["style"] = "primary"
    return button


def _text_input(
    *, initial: str | None = None, placeholder: str | None = None, multiline: bool = False
) -> dict[str, Any]:
    """A plain_text_input, with its initial value and placeholder when given."""
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": VALUE, "max_length": _INPUT_MAX}
    if multiline:
        element["multiline"] = True
    if initial:
        element["initial_value"] = initial[:_INPUT_MAX]
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    return element


def _input(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str | None = None
) -> dict[str, Any]:
    """An input block around one element."""
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def _key_state(workspace: Workspace) -> str:
    """Whether a LeadLex key is set: the only thing ever said about it."""
    return "key set" if workspace.has_lexi_key else "no key"


def _approvers(approvers: tuple[str, ...]) -> str:
    """Approvers as Slack mentions (people and user groups); none: anyone in the channel."""
    if not approvers:
        return "anyone in the announcement channel"
    return ", ".join(f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in approvers)
