"""What Slack puts in a payload when someone uses an element it shows: actions, chosen options, modal state."""

from __future__ import annotations

import time
from copy import deepcopy
from typing import Any


class ActionError(Exception):
    """Raised when the page asks for something Slack would not let a person do (an unknown element, say)."""


def block_action(blocks: list[Any], block: int, element: int, selected: Any) -> dict[str, Any]:
    """The `actions[0]` Slack sends for element `element` of block `block` (-1: the accessory)."""
    try:
        container = blocks[block]
        found = container["accessory"] if element < 0 else container["elements"][element]
    except (IndexError, KeyError, TypeError):
        raise ActionError("no such element") from None
    kind = found.get("type")
    action: dict[str, Any] = {
        "type": kind,
        "action_id": found.get("action_id") or f"a{block}.{element}",
        "block_id": container.get("block_id") or f"b{block}",
        "action_ts": f"{time.time():.6f}",
    }
    if kind == "button":
        action.update(text=found.get("text"), value=found.get("value", ""))
        if found.get("style"):
            action["style"] = found["style"]
        return action
    if kind in ("static_select", "overflow", "radio_buttons"):
        option = find_option(found, selected)
        if option is None:
            raise ActionError("no such option")
        return {**action, "selected_option": option}
    raise ActionError(f"{kind} elements cannot be clicked in the demo")


def find_option(element: dict[str, Any], value: Any) -> dict[str, Any] | None:
    """The option of a select, overflow or radio element whose value is `value`."""
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return next((deepcopy(o) for o in options if isinstance(o, dict) and o.get("value") == value), None)


def with_ids(view: dict[str, Any]) -> dict[str, Any]:
    """The view with a block_id on every block and an action_id on every input, as Slack fills them in."""
    view = deepcopy(view)
    for index, block in enumerate(view.get("blocks") or []):
        if isinstance(block, dict):
            block.setdefault("block_id", f"b{index}")
            if isinstance(block.get("element"), dict):
                block["element"].setdefault("action_id", f"a{index}")
    return view


def state_values(view: dict[str, Any], typed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Slack's `view.state.values` for the modal's inputs, from what the person typed or chose."""
    values: dict[str, Any] = {}
    for block in view.get("blocks") or []:
        element = block.get("element") if isinstance(block, dict) and block.get("type") == "input" else None
        if not isinstance(element, dict):
            continue
        kind, action_id = element.get("type"), str(element.get("action_id", ""))
        raw = (typed.get(block["block_id"]) or {}).get(action_id)
        state: dict[str, Any] = {"type": kind}
        if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
            state["value"] = raw if isinstance(raw, str) and raw != "" else None
        elif kind in ("radio_buttons", "static_select"):
            state["selected_option"] = find_option(element, raw) if raw is not None else None
        elif kind in ("checkboxes", "multi_static_select"):
            chosen = raw if isinstance(raw, list) else []
            state["selected_options"] = [o for o in (find_option(element, v) for v in chosen) if o is not None]
        elif kind == "datepicker":
            state["selected_date"] = raw or None
        elif kind == "users_select":
            state["selected_user"] = raw or None
        values[block["block_id"]] = {action_id: state}
    return values
