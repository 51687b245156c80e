"""The LeadLex task as the bot sees it: parsed tolerantly, because its text comes from an AI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    """Every state a task has, in LeadLex and in the bot's record of it.

    LeadLex's statuses are PENDING, APPROVED, DISMISSED, COMPLETED and FAILED. The bot adds ANNOUNCING (claimed
    for posting, no message yet), DECIDING (claimed by a decision while LeadLex is asked), GONE (LeadLex no longer
    knows the task) and EXPIRED (nobody decided it in time). A StrEnum: each member equals its string, as stored.
    """

    ANNOUNCING = "announcing"
    PENDING = "pending"
    DECIDING = "deciding"
    APPROVED = "approved"
    DISMISSED = "dismissed"
    COMPLETED = "completed"
    FAILED = "failed"
    GONE = "gone"
    EXPIRED = "expired"


#: Statuses a task can have in LeadLex, in lifecycle order.
STATUSES = (TaskState.PENDING, TaskState.APPROVED, TaskState.DISMISSED, TaskState.COMPLETED, TaskState.FAILED)

#: Task types the bot renders specially; any other type is rendered generically.
KNOWN_TYPES = ("prospect_search", "campaign_start", "contact_update", "list_operation")

#: Dismiss reason codes documented by LeadLex, with the label a person sees.
DISMISS_REASONS: dict[str, str] = {
    "not_relevant": "Not relevant",
    "manual_execution": "Will do it manually",
    "incorrect_params": "Wrong parameters",
    "duplicate": "Duplicate",
    "testing": "Testing",
}

#: Counts this large are no counts (a metadata value gone wrong), and no card should print them.
_COUNT_MAX = 10**15
#: Numeric text longer than this is no count either (and int() of it would be slow).
_COUNT_DIGITS = 20
#: Metadata keys that say how many contacts or records a task touches, in the order they are looked for.
COUNT_KEYS = (
    "contact_count",
    "record_count",
    "count",
    "total_count",
    "contacts",
    "records",
    "contact_ids",
    "record_ids",
)


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp into an aware UTC datetime, or None when it is missing or malformed."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # A valid offset can still push a date past year 1 or 9999 (`0001-01-01T00:00:00+14:00`).
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


#: The longest id a task may have: longer ones fit no button value or modal and are no LeadLex id.
MAX_ID = 255
#: Metadata nested deeper than this is dropped: nothing sensible is that deep, and recursion has a limit.
MAX_METADATA_DEPTH = 64
#: The description a task keeps when its metadata had to be dropped (the plain card's text).
PLAIN_DESCRIPTION = 2000


def _text(value: Any) -> str:
    """Coerce a field that should be text into text; None (or a number too long to print) becomes ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except ValueError:  # an integer beyond Python's printable digit limit
        return ""


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and dicts are nested deeper than `limit` (counted without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _usable_id(obj: dict[str, Any]) -> str | None:
    """The task's id as text, or None when it is missing, blank, too long, or not a string or integer."""
    task_id = obj.get("id")
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool):
        return None
    text = _text(task_id)
    return text if text.strip() and len(text) <= MAX_ID else None


@dataclass(frozen=True)
class Task:
    """One Lexi task, with every field defaulted so that odd or missing fields never stop an announcement."""

    id: str
    type: str = "unknown"
    status: str = TaskState.PENDING
    description: str = ""
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, obj: Any) -> Task | None:
        """Build a task from a LeadLex task object; None when it has no usable id. Never raises."""
        return read_task(obj)[0]

    def to_api(self) -> dict[str, Any]:
        """Return the task as a LeadLex-shaped dictionary (for storing and re-rendering)."""
        return {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "description": self.description,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "metadata": self.metadata,
        }

    @property
    def affected_count(self) -> int | None:
        """How many results, contacts or records the task touches, when its metadata says; None otherwise.

        A search's size is the results it asks for (`per_page`); any other task's is its first usable count of
        contacts or records. The policy's rules and quorums compare this number, and the cards show it.
        """
        meta = self.metadata if isinstance(self.metadata, dict) else {}
        if self.type == "prospect_search":
            return as_count(meta.get("per_page"))
        found = find_count(meta)
        return found[1] if found else None


def read_task(obj: Any) -> tuple[Task | None, str | None]:
    """Build a task from any value, and say what could not be read (None when all was fine). Never raises.

    A task whose metadata is unusable keeps its id, type and status, with its description cut and its
    metadata dropped, so that it can still be shown on a plain card.
    """
    if not isinstance(obj, dict):
        return None, "not an object"
    task_id = _usable_id(obj)
    if task_id is None:
        return None, "no usable id"
    problem = None
    metadata = obj.get("metadata")
    if depth_exceeds(metadata, MAX_METADATA_DEPTH):
        problem, metadata = f"metadata nested deeper than {MAX_METADATA_DEPTH} levels", {}
    description = _text(obj.get("description"))
    if problem is not None:
        description = description[:PLAIN_DESCRIPTION]
    created_at = parse_time(obj.get("created_at"))
    if created_at is None and obj.get("created_at") not in (None, ""):
        problem = problem or "unreadable created_at"
    task = Task(
        id=task_id,
        type=_text(obj.get("type")) or "unknown",
        status=_text(obj.get("status")) or TaskState.PENDING,
        description=description,
        created_at=created_at,
        metadata=metadata if isinstance(metadata, dict) else {},
    )
    return task, problem


def find_count(meta: dict[Any, Any]) -> tuple[str, int] | None:
    """Return the key and value of the first usable count of contacts or records, or None when unknown."""
    for key in COUNT_KEYS:
        count = as_count(meta.get(key))
        if count is not None:
            return key, count
    return None


def as_count(value: Any) -> int | None:
    """Read a count from a number, a numeric string or a list's length; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().replace(",", "").isdecimal() and len(value) < _COUNT_DIGITS:
        value = int(value.strip().replace(",", ""))
    if isinstance(value, (list, tuple)):
        return len(value)
    return value if isinstance(value, int) and 0 <= value < _COUNT_MAX else None
