"""Every Slack message the bot posts for a task, built as plain data: cards, thread replies and their parts.

External text (descriptions, metadata, ids, notes) is escaped and truncated here, so nothing an AI wrote can
ping a channel, mention someone, disguise a link or push a message over Slack's Block Kit limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.lexi.models import DISMISS_REASONS, KNOWN_TYPES, Task, TaskState, as_count, find_count

APPROVE_ACTION = "lexi_approve"
DISMISS_ACTION = "lexi_dismiss"
METADATA_EVENT = "lexi_task"

#: Every state a task's card can show.
CARD_STATES = (
    TaskState.PENDING,
    TaskState.DECIDING,
    TaskState.APPROVED,
    TaskState.DISMISSED,
    TaskState.COMPLETED,
    TaskState.FAILED,
    TaskState.GONE,
    TaskState.EXPIRED,
)

# Slack's limits (see slack-notes.md) and this module's own, smaller ones.
_HEADER_MAX = 150
_TEXT_MAX = 3000
_FIELDS_MAX = 10
_FIELD_MAX = 2000
_VALUE_MAX = 2000
_CONFIRM_TEXT_MAX = 300
_MESSAGE_MAX = 12_000  # Slack rejects messages near 13k characters with msg_blocks_too_long.
_ID_MAX = 100
_LABEL_MAX = 60
_LINE_MAX = 200
_LIST_ITEMS = 10

# Description and field limits tried in turn until the message fits in _MESSAGE_MAX.
_BUDGETS = ((_TEXT_MAX, _FIELD_MAX), (2000, 600), (1000, 250), (500, 120), (250, 60))

_TYPE_NAMES = {
    "prospect_search": ("🔎", "Prospect search"),
    "campaign_start": ("📣", "Campaign start"),
    "contact_update": ("✏️", "Contact update"),
    "list_operation": ("🗂️", "List operation"),
}

_CHANGE_KEYS = ("fields", "changes", "updates", "properties", "set")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

_Pair = tuple[str, str]


@dataclass(frozen=True)
class Card:
    """What a task's channel message should currently say."""

    state: str
    actor: str | None = None
    action: str | None = None
    at: datetime | None = None
    reason: str | None = None
    note: str | None = None
    approvals: tuple[str, ...] = ()  # who approved so far, when a quorum is needed
    needed: int = 1  # distinct approvals the task needs
    confirm_above: int | None = None  # policy: confirm approvals affecting more records than this (None: always)
    resumed: bool = False  # while deciding: taken over from a process that died


#: The policy's confirmation size for a task's type (`confirm_above`), so lists confirm exactly where cards do.
ConfirmAbove = Callable[[Task], int | None]


def confirm_size(confirm_above: ConfirmAbove | None, task: Task) -> int | None:
    """The confirmation size for this task (None: the built-in rule, which confirms what is high-impact)."""
    return confirm_above(task) if confirm_above is not None else None


def escape(text: str) -> str:
    """Replace &, < and > with Slack's entities so external text can never become a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Shorten text to at most limit characters, ending with a visible "…" when anything was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + "…"


def message_metadata(task_id: str) -> dict[str, Any]:
    """Return the message metadata tying a Slack message to its task (ids only: other apps can read it)."""
    return {"event_type": METADATA_EVENT, "event_payload": {"task_id": task_id}}


def format_time(at: datetime | None) -> str:
    """Return a Slack date token that shows in each viewer's time zone, or "unknown time" for None."""
    if not isinstance(at, datetime):
        return "unknown time"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    utc = at.astimezone(UTC)
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} at {{time}}|{utc:%Y-%m-%d %H:%M} UTC>"


def impact(task: Task) -> str | None:
    """Return a sentence saying what approving does to how many, or None when unknown or not high-impact."""
    found = find_count(_metadata(task))
    if found is None:
        return None
    count = found[1]
    if task.type == "campaign_start":
        return f"This will email {_plural(count, 'contact')}."
    if task.type == "contact_update":
        return f"This will update {_plural(count, 'contact')}."
    if task.type == "list_operation":
        return f"This will change {_plural(count, 'record')}."
    return None


def approve_confirm(task: Task, confirm_above: int | None = None) -> dict[str, Any] | None:
    """Return the confirm dialog for the Approve button of a high-impact task, or None when none is needed.

    With `confirm_above` (the policy's bulk-safety size, which works for every type), tasks known to affect at
    most that many records approve in one click and every other task asks first; a campaign of unknown size is
    always confirmed.
    """
    count = task.affected_count
    if confirm_above is not None and count is not None and count <= confirm_above:
        return None
    sentence = impact(task)
    if task.type == "campaign_start":
        title = "Start this campaign?"
        text = (sentence or "This will email the campaign's contacts.") + " Sent emails cannot be recalled."
    elif task.type == "contact_update" and sentence:
        title, text = "Update these contacts?", sentence + " Slack cannot undo it."
    elif task.type == "list_operation" and sentence:
        title, text = "Change this list?", sentence + " Slack cannot undo it."
    elif confirm_above is not None:
        title = "Run this search?" if task.type == "prospect_search" else "Approve this task?"
        unit = "result" if task.type == "prospect_search" else "record"
        size = f"asks for {_plural(count, unit)}" if count is not None else "is of unknown size"
        text = f"This task {size}; the policy asks for a confirmation above {confirm_above:,} {unit}s."
    else:
        return None
    return {
        "title": _plain_text(title),
        "text": _plain_text(truncate(text, _CONFIRM_TEXT_MAX)),
        "confirm": _plain_text("Approve"),
        "deny": _plain_text("Cancel"),
        "style": "primary",
    }


def describe_task(task: Task) -> str:
    """Return one escaped plain line naming the task, for lists and ephemeral messages."""
    summary = _one_line(_str(task.description))
    line = f"{_type_words(task.type)} — {summary}" if summary else _type_words(task.type)
    return _mrkdwn(line, _LINE_MAX) + _count_suffix(task)


def render_card(task: Task, card: Card) -> dict[str, Any]:
    """Return the {"text", "blocks"} of a task's channel message in the given state, within Slack's limits."""
    if card.state not in CARD_STATES:
        raise ValueError(f"unknown card state {card.state!r}; expected one of {tuple(map(str, CARD_STATES))}")
    message: dict[str, Any] = {}
    for description_limit, field_limit in _BUDGETS:
        message = _card(task, card, description_limit, field_limit)
        if len(json.dumps(message, ensure_ascii=False)) <= _MESSAGE_MAX:
            break
    return message


def thread_reply(task: Task, state: str, at: datetime | None = None) -> dict[str, Any]:
    """Return the {"text", "blocks"} of the thread reply posted when a task became "completed" or "failed"."""
    replies: dict[str, tuple[str, str]] = {
        TaskState.COMPLETED: ("🏁 Completed in LeadLex", "Completed"),
        TaskState.FAILED: ("❌ Failed in LeadLex", "Failed"),
    }
    if state not in replies:
        raise ValueError(f"thread replies are for completed or failed tasks, not {state!r}")
    (line, prefix), described = replies[state], describe_task(task)
    return {"text": f"{prefix}: {described}", "blocks": [_section(f"{line}{_when(at)}\n{described}")]}


def _card(task: Task, card: Card, description_limit: int, field_limit: int) -> dict[str, Any]:
    """Build a card with the given limits for the description and each summary field."""
    description = _mrkdwn(_str(task.description).strip(), description_limit) or "_No description_"
    blocks = [{"type": "header", "text": _plain_text(_header_text(task.type))}, _section(description)]
    fields = _fields(task, field_limit)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(_context(_created_line(task)))
    blocks.extend(_state_blocks(task, card, min(description_limit, 1000)))
    return {"text": _fallback(task, card), "blocks": blocks}


def _state_blocks(task: Task, card: Card, note_limit: int) -> list[dict[str, Any]]:  # noqa: C901, PLR0911 - one branch per task state
    """Build the state-specific blocks: the buttons while pending, an outcome line otherwise."""
    who = _who(card.actor)
    when = _when(card.at)
    note = _mrkdwn(_one_line(_str(card.note)), note_limit)
    if card.state == TaskState.PENDING:
        warning = [_context(f"⚠️ {note}")] if note else []
        quorum = []
        if card.needed > 1:
            names = ", ".join(_who(a) for a in card.approvals[:10]) or "none yet"
            quorum = [_context(f"👍 {len(card.approvals)} of {card.needed} approvals: {names}")]
        return [*warning, *quorum, task_buttons(task, card.confirm_above)]
    if card.state == TaskState.DECIDING:
        doing = {"approve": "Approving…", "dismiss": "Dismissing…"}.get(_str(card.action), "Working…")
        if card.resumed:
            doing += " (resumed after a restart)"
        return [_section(f"⏳ {doing}" + (f" — {who}" if who else "") + when)]
    approved = f"✅ Approved by {who}" if who else "✅ Approved"
    if card.actor and card.actor.startswith("rule:"):
        approved = f"🤖 Auto-approved by rule *{_mrkdwn(_one_line(card.actor[5:]), _LABEL_MAX)}*"
    others = [_who(a) for a in card.approvals if a != card.actor][:10]
    if others:
        approved += f" (with {', '.join(others)})"
    if card.state == TaskState.APPROVED:
        return [_section((approved if who else "✅ Approved in LeadLex") + when)]
    if card.state == TaskState.DISMISSED:
        line = (f"🚫 Dismissed by {who}" if who else "🚫 Dismissed in LeadLex") + when
        if card.reason:
            line += f" — Reason: {DISMISS_REASONS.get(card.reason) or _mrkdwn(_str(card.reason), _LABEL_MAX)}"
        return [_section(line + (f"\nNote: {note}" if note else ""))]
    if card.state == TaskState.COMPLETED:
        return [_section(f"{approved} · 🏁 Completed in LeadLex{when}")]
    if card.state == TaskState.FAILED:
        failed = (f"{approved} · " if who else "") + f"❌ Failed in LeadLex{when}"
        return [_section(failed + (f"\n{note}" if note else ""))]
    if card.state == TaskState.EXPIRED:
        line = "⌛ Expired — not decided" + when
        return [_section(line + (f"\n{note}" if note else ""))]
    return [_section("❔ This task no longer exists in LeadLex.")]


def task_buttons(task: Task, confirm_above: int | None = None) -> dict[str, Any]:
    """Return the actions block with Approve (confirmed when high-impact) and Dismiss, for any surface."""
    value = truncate(_str(task.id), _VALUE_MAX)
    approve = {
        "type": "button",
        "text": _plain_text("Approve"),
        "style": "primary",
        "action_id": APPROVE_ACTION,
        "value": value,
    }
    confirm = approve_confirm(task, confirm_above)
    if confirm is not None:
        approve["confirm"] = confirm
    dismiss = {
        "type": "button",
        "text": _plain_text("Dismiss"),
        "style": "danger",
        "action_id": DISMISS_ACTION,
        "value": value,
    }
    return {"type": "actions", "elements": [approve, dismiss]}


def _fallback(task: Task, card: Card) -> str:
    """Return the short notification and screen-reader text of a card."""
    who = _who(card.actor)
    by = f" by {who}" if who else " in LeadLex"
    deciding = "Dismissing" if card.action == "dismiss" else "Approving"
    prefixes: dict[str, str] = {
        TaskState.PENDING: "Lexi needs approval",
        TaskState.DECIDING: deciding,
        TaskState.APPROVED: f"Approved{by}",
        TaskState.DISMISSED: f"Dismissed{by}",
        TaskState.COMPLETED: "Completed",
        TaskState.FAILED: "Failed",
        TaskState.GONE: "No longer in LeadLex",
        TaskState.EXPIRED: "Expired — not decided",
    }
    return f"{prefixes[card.state]}: {describe_task(task)}"


def _header_text(task_type: str) -> str:
    """Return the header naming the task type in words, with its emoji."""
    emoji, _ = _TYPE_NAMES.get(_str(task_type), ("🧩", ""))
    return f"{emoji} " + _mrkdwn(_type_words(task_type, _HEADER_MAX), _HEADER_MAX - len(emoji) - 1)


def _created_line(task: Task) -> str:
    """Return the context line with the creation time and the task id."""
    known = isinstance(task.created_at, datetime)
    created = f"Created {format_time(task.created_at)}" if known else "Creation time unknown"
    task_id = _mrkdwn(_one_line(_str(task.id)).replace("`", "'"), _ID_MAX) or "?"
    return f"{created} · Task `{task_id}`"


def _fields(task: Task, limit: int) -> list[dict[str, Any]]:
    """Return the section fields summarising the metadata: known ones first, then the rest generically."""
    pairs, rest = _summary(task)
    shown = [(label, value) for label, value in pairs if value]
    rest = [(key, value) for key, value in rest if value not in (None, "", [], {})]
    slots = _FIELDS_MAX - len(shown)
    take = slots if len(rest) <= slots else slots - 1
    for key, value in rest[:take]:
        text = _plain(value)
        if text:
            shown.append((_words(_str(key)) or "?", text))
    if len(rest) > take:
        shown.append(("More", f"{len(rest) - take:,} more details not shown"))
    return [_field(label, value, limit) for label, value in shown[:_FIELDS_MAX]]


def _field(label: str, value: str, limit: int) -> dict[str, Any]:
    """Build one mrkdwn field, a bold label over its value, within limit characters."""
    head = f"*{_mrkdwn(_one_line(label), min(_LABEL_MAX, limit // 3))}*\n"
    return _text_object(head + _mrkdwn(value, limit - len(head)))


def _summary(task: Task) -> tuple[list[_Pair], list[tuple[Any, Any]]]:
    """Split the metadata into the type's known fields and the (key, value) items left to show generically."""
    meta = _metadata(task)
    if task.type == "prospect_search":
        return _prospect_summary(meta)
    found = find_count(meta)
    count = f"{found[1]:,}" if found else ""
    used: set[str | None] = {found[0]} if found else set()  # a key _first_key did not find is None
    if task.type == "campaign_start":
        pairs = [("Campaign", _named(meta, "campaign_name", "campaign_id")), ("Contacts", count)]
        used |= {"campaign_name", "campaign_id"}
    elif task.type == "contact_update":
        key = _first_key(meta, _CHANGE_KEYS)
        pairs = [("Contacts", count), ("Changes", _changes(meta.get(key)))]
        used.add(key)
    elif task.type == "list_operation":
        key = _first_key(meta, ("operation", "action", "op"))
        pairs = [
            ("Operation", _plain(meta.get(key))),
            ("List", _named(meta, "list_name", "list_id")),
            ("Records", count),
        ]
        used |= {key, "list_name", "list_id"}
    else:
        return [], list(meta.items())
    return pairs, _rest(meta, used)


def _prospect_summary(meta: dict[Any, Any]) -> tuple[list[_Pair], list[tuple[Any, Any]]]:
    """Summarise a prospect search: titles, industries, locations and the number of results."""
    query = meta.get("query")
    query = query if isinstance(query, dict) else {}
    known = {"person_titles": "Titles", "organization_industries": "Industries", "person_locations": "Locations"}
    pairs = [(label, _plain(query.get(key, meta.get(key)))) for key, label in known.items()]
    results = as_count(meta.get("per_page"))
    pairs.append(("Results", f"{results:,}" if results is not None else _plain(meta.get("per_page"))))
    return pairs, _rest(query, set(known)) + _rest(meta, {*known, "query", "per_page"})


def _rest(meta: dict[Any, Any], used: set[Any]) -> list[tuple[Any, Any]]:
    """Return the metadata items not already shown."""
    return [(key, value) for key, value in meta.items() if key not in used]


def _first_key(meta: dict[Any, Any], keys: tuple[str, ...]) -> str | None:
    """Return the first of keys with a non-empty value in the metadata, or None."""
    return next((key for key in keys if meta.get(key) not in (None, "", [], {})), None)


def _named(meta: dict[Any, Any], name_key: str, id_key: str) -> str:
    """Return "name (id)", or whichever of the two exists."""
    name, ident = _plain(meta.get(name_key)), _plain(meta.get(id_key))
    return f"{name} ({ident})" if name and ident else name or ident


def _changes(value: Any) -> str:
    """Render the fields a contact update changes, one "field → value" per line."""
    if not isinstance(value, dict):
        return _plain(value)
    lines = [f"{_str(key)} → {_item(new)}" for key, new in list(value.items())[:_LIST_ITEMS]]
    if len(value) > _LIST_ITEMS:
        lines.append(f"and {len(value) - _LIST_ITEMS:,} more")
    return "\n".join(lines)


def _count_suffix(task: Task) -> str:
    """Return " (25 results)" and the like for describe_task, or "" when the count is unknown."""
    meta = _metadata(task)
    if task.type == "prospect_search":
        count, noun = as_count(meta.get("per_page")), "result"
    elif task.type in KNOWN_TYPES:
        found = find_count(meta)
        count, noun = found[1] if found else None, "record" if task.type == "list_operation" else "contact"
    else:
        return ""
    return f" ({_plural(count, noun)})" if count is not None else ""


def _plural(count: int, noun: str) -> str:
    """Return "1 contact" or "1,500 contacts"."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _plain(value: Any) -> str:
    """Render a metadata value as compact text: scalars as text, lists joined, the rest as compact JSON."""
    if isinstance(value, (list, tuple)):
        items = [text for text in (_item(item) for item in value[:_LIST_ITEMS]) if text]
        more = f" and {len(value) - _LIST_ITEMS:,} more" if len(value) > _LIST_ITEMS else ""
        return ", ".join(items) + more
    return _item(value)


def _item(value: Any) -> str:
    """Render one value without recursing: scalars as text, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    try:
        if isinstance(value, (int, float)):
            return str(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        # Huge integers, circular or absurdly deep structures: say so rather than fail the whole card.
        return "(not shown)"


def _metadata(task: Task) -> dict[Any, Any]:
    """Return the task's metadata as a dict; anything else that exists is kept under one "details" key."""
    meta = getattr(task, "metadata", None)
    return meta if isinstance(meta, dict) else {"details": meta} if meta else {}


def _str(value: Any) -> str:
    """Coerce a value that should be text into text; None becomes the empty string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else _item(value)


def _one_line(text: str) -> str:
    """Collapse all whitespace, newlines included, into single spaces."""
    return " ".join(text.split())


def _words(key: str, limit: int = _LABEL_MAX) -> str:
    """Turn an identifier such as "contact_count" into words: "Contact count"."""
    words = _one_line(key[: limit * 4].replace("_", " ").replace("-", " "))
    return truncate(words[:1].upper() + words[1:], limit)


def _type_words(task_type: Any, limit: int = _LABEL_MAX) -> str:
    """Name a task type in words, e.g. "Prospect search"; an unknown type is spelled from its string."""
    known = _TYPE_NAMES.get(_str(task_type))
    # Control characters go first: a type of only "\x1b" must still name something, not render empty.
    return known[1] if known else _words(_CONTROL.sub("", _str(task_type)), limit) or "Task"


def _mrkdwn(text: str, limit: int) -> str:
    """Escape external text, drop control characters and cut it to limit characters, never mid-entity."""
    text = escape(_CONTROL.sub("", text)[: limit + 1])  # Escaping only grows text: limit + 1 is enough.
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _who(actor: str | None) -> str:
    """Return a mention for a valid Slack user id, escaped text for anything else, "" for None."""
    if not actor:
        return ""
    if isinstance(actor, str) and _USER_ID.fullmatch(actor):
        return f"<@{actor}>"
    return _mrkdwn(_one_line(_str(actor)), _LABEL_MAX)


def _when(at: datetime | None) -> str:
    """Return " · <time>" for a known time, "" otherwise."""
    return f" · {format_time(at)}" if isinstance(at, datetime) else ""


def _plain_text(text: str) -> dict[str, Any]:
    """Build a plain_text object."""
    return {"type": "plain_text", "text": text, "emoji": True}


def _text_object(text: str) -> dict[str, Any]:
    """Build a verbatim mrkdwn object, so Slack links nothing on its own in external text."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    """Build a section block with one mrkdwn text, cut to Slack's 3000 characters as a last resort."""
    return {"type": "section", "text": _text_object(truncate(text, _TEXT_MAX))}


def _context(text: str) -> dict[str, Any]:
    """Build a context block with one mrkdwn element."""
    return {"type": "context", "elements": [_text_object(truncate(text, _TEXT_MAX))]}
