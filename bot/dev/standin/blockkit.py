"""Block Kit limits as Slack enforces them, as pure functions the stand-in and unit tests share.

Each check returns Slack's own complaint format, ``"[ERROR] <problem> [json-pointer:<where>]"``, so a failing
test shows exactly which block broke which limit; ``None`` means Slack would accept the payload.
"""

from __future__ import annotations

from typing import Any

#: Block types Slack accepts in messages, modals and App Home.
BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)

#: Interactive element types that may carry options (each option text 75, value 150 characters).
_OPTION_ELEMENTS = frozenset({"static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"})
#: Slack's limits: fields of a section, options of a menu.
_MAX_FIELDS = 10
_MAX_OPTIONS = 100


class _Invalid(Exception):
    """Raised inside the checks when a payload breaks a Block Kit rule."""

    def __init__(self, pointer: str, problem: str) -> None:
        super().__init__(f"[ERROR] {problem} [json-pointer:{pointer}]")


def validate_blocks(blocks: Any, *, limit: int = 50) -> str | None:
    """Return Slack's complaint about a message's (or view's) blocks, or None when Slack would accept them."""
    try:
        _check_blocks(blocks, "/blocks", limit)
    except _Invalid as problem:
        return str(problem)
    return None


def validate_view(view: Any) -> str | None:
    """Return Slack's complaint about a modal or Home view, or None when Slack would accept it."""
    try:
        _check_view(view)
    except _Invalid as problem:
        return str(problem)
    return None


def _check_view(view: Any) -> None:
    """Check a view object: its type, title and buttons (modals), size fields and up to 100 blocks."""
    if not isinstance(view, dict):
        raise _Invalid("/view", "must be an object")
    kind = view.get("type")
    if kind not in ("modal", "home"):
        raise _Invalid("/view/type", "must be one of: modal, home")
    blocks = view.get("blocks")
    _check_blocks(blocks, "/view/blocks", 100)
    if kind == "modal":
        _check_text(view.get("title"), "/view/title", 24, plain=True)
        for name in ("submit", "close"):
            if view.get(name) is not None:
                _check_text(view[name], f"/view/{name}", 24, plain=True)
        if view.get("submit") is None and any(block.get("type") == "input" for block in blocks or ()):
            raise _Invalid("/view/submit", "must be provided when the view contains input blocks")
    _check_length(view, "private_metadata", "/view", 3000)
    _check_length(view, "callback_id", "/view", 255)
    _check_length(view, "external_id", "/view", 255)


def _check_blocks(blocks: Any, pointer: str, limit: int) -> None:
    """Check a list of blocks: its length, each block's type and limits, and unique block ids."""
    if not isinstance(blocks, list):
        raise _Invalid(pointer, "must be an array")
    if len(blocks) > limit:
        raise _Invalid(pointer, f"no more than {limit} items allowed")
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{pointer}/{index}"
        if not isinstance(block, dict):
            raise _Invalid(where, "must be an object")
        kind = block.get("type")
        if not isinstance(kind, str):
            raise _Invalid(where, "missing required field: type")
        if kind not in BLOCK_TYPES:
            raise _Invalid(f"{where}/type", f"unsupported type: {kind}")
        block_id = block.get("block_id")
        if block_id is not None:
            _check_length(block, "block_id", where, 255)
            if block_id in seen:
                raise _Invalid(f"{where}/block_id", f"duplicate block_id: {block_id}")
            seen.add(block_id)
        _BLOCK_CHECKS.get(kind, _check_nothing)(block, where)


def _check_nothing(block: dict[str, Any], pointer: str) -> None:
    """Accept a block type whose inner limits the stand-in does not model (divider, image, rich_text, ...)."""


def _check_header(block: dict[str, Any], pointer: str) -> None:
    """A header holds one plain_text of at most 150 characters."""
    _check_text(block.get("text"), f"{pointer}/text", 150, plain=True)


def _check_section(block: dict[str, Any], pointer: str) -> None:
    """A section has text (3000) and/or up to 10 fields (2000 each), and at most one accessory element."""
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        raise _Invalid(pointer, "must provide either text or fields")
    if text is not None:
        _check_text(text, f"{pointer}/text", 3000)
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            raise _Invalid(f"{pointer}/fields", "must be a non-empty array")
        if len(fields) > _MAX_FIELDS:
            raise _Invalid(f"{pointer}/fields", "no more than 10 items allowed")
        for index, field in enumerate(fields):
            _check_text(field, f"{pointer}/fields/{index}", 2000)
    if block.get("accessory") is not None:
        _check_element(block["accessory"], f"{pointer}/accessory")


def _check_context(block: dict[str, Any], pointer: str) -> None:
    """A context block holds 1 to 10 elements; text elements are at most 3000 characters."""
    elements = _elements(block, pointer, 10)
    for index, element in enumerate(elements):
        where = f"{pointer}/elements/{index}"
        if not isinstance(element, dict):
            raise _Invalid(where, "must be an object")
        if element.get("type") in ("plain_text", "mrkdwn"):
            _check_text(element, where, 3000)
        elif element.get("type") != "image":
            raise _Invalid(f"{where}/type", "must be one of: plain_text, mrkdwn, image")


def _check_actions(block: dict[str, Any], pointer: str) -> None:
    """An actions block holds 1 to 25 interactive elements."""
    for index, element in enumerate(_elements(block, pointer, 25)):
        _check_element(element, f"{pointer}/elements/{index}")


def _check_input(block: dict[str, Any], pointer: str) -> None:
    """An input block has a plain_text label (2000) and exactly one element."""
    _check_text(block.get("label"), f"{pointer}/label", 2000, plain=True)
    if block.get("element") is None:
        raise _Invalid(pointer, "missing required field: element")
    _check_element(block["element"], f"{pointer}/element")


_BLOCK_CHECKS = {
    "header": _check_header,
    "section": _check_section,
    "context": _check_context,
    "actions": _check_actions,
    "input": _check_input,
}


def _elements(block: dict[str, Any], pointer: str, limit: int) -> list[Any]:
    """Return a block's non-empty `elements` list after checking its length against `limit`."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        raise _Invalid(f"{pointer}/elements", "must be a non-empty array")
    if len(elements) > limit:
        raise _Invalid(f"{pointer}/elements", f"no more than {limit} items allowed")
    return elements


def _check_element(element: Any, pointer: str) -> None:
    """Check an interactive element: action_id, button text/value/url, options and confirm dialog."""
    if not isinstance(element, dict):
        raise _Invalid(pointer, "must be an object")
    kind = element.get("type")
    if not isinstance(kind, str):
        raise _Invalid(pointer, "missing required field: type")
    _check_length(element, "action_id", pointer, 255)
    if kind == "button":
        _check_text(element.get("text"), f"{pointer}/text", 75, plain=True)
        _check_length(element, "value", pointer, 2000)
        _check_length(element, "url", pointer, 3000)
        if element.get("style") not in (None, "primary", "danger"):
            raise _Invalid(f"{pointer}/style", "must be one of: primary, danger")
    if kind in _OPTION_ELEMENTS and element.get("options") is not None:
        options = element["options"]
        if not isinstance(options, list) or len(options) > _MAX_OPTIONS:
            raise _Invalid(f"{pointer}/options", "must be an array of no more than 100 items")
        for index, option in enumerate(options):
            where = f"{pointer}/options/{index}"
            if not isinstance(option, dict):
                raise _Invalid(where, "must be an object")
            _check_text(option.get("text"), f"{where}/text", 75)
            _check_length(option, "value", where, 150)
    if element.get("confirm") is not None:
        _check_confirm(element["confirm"], f"{pointer}/confirm")


def _check_confirm(confirm: Any, pointer: str) -> None:
    """A confirm dialog has title (100), text (300), confirm (30) and deny (30), and a primary or danger style."""
    if not isinstance(confirm, dict):
        raise _Invalid(pointer, "must be an object")
    _check_text(confirm.get("title"), f"{pointer}/title", 100, plain=True)
    _check_text(confirm.get("text"), f"{pointer}/text", 300)
    _check_text(confirm.get("confirm"), f"{pointer}/confirm", 30, plain=True)
    _check_text(confirm.get("deny"), f"{pointer}/deny", 30, plain=True)
    if confirm.get("style") not in (None, "primary", "danger"):
        raise _Invalid(f"{pointer}/style", "must be one of: primary, danger")


def _check_text(obj: Any, pointer: str, limit: int, *, plain: bool = False) -> None:
    """Check a text object: its type (plain_text only when `plain`) and 1 to `limit` characters of text."""
    if not isinstance(obj, dict):
        raise _Invalid(pointer, "must be a text object")
    allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        raise _Invalid(f"{pointer}/type", f"must be one of: {', '.join(allowed)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise _Invalid(f"{pointer}/text", "must be more than 0 characters")
    if len(text) > limit:
        raise _Invalid(f"{pointer}/text", f"must be less than {limit + 1} characters")


def _check_length(obj: dict[str, Any], key: str, pointer: str, limit: int) -> None:
    """Check that an optional string field is a string of at most `limit` characters."""
    value = obj.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        raise _Invalid(f"{pointer}/{key}", "must be a string")
    if len(value) > limit:
        raise _Invalid(f"{pointer}/{key}", f"must be less than {limit + 1} characters")
