"""The LeadLex task as the bot sees it: parsed tolerantly, because its text comes from an AI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Statuses a task can have in LeadLex, in lifecycle order.
STATUSES = ("pending", "approved", "dismissed", "completed", "failed")

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


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp into an aware UTC datetime, or None when it is missing or malformed."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _text(value: Any) -> str:
    """Coerce a field that should be text into text; None becomes the empty string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Task:
    """One Lexi task, with every field defaulted so that odd or missing fields never stop an announcement."""

    id: str
    type: str = "unknown"
    status: str = "pending"
    description: str = ""
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, obj: Any) -> Task | None:
        """Build a task from a LeadLex task object; None when it has no usable id."""
        if not isinstance(obj, dict):
            return None
        task_id = obj.get("id")
        if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or str(task_id).strip() == "":
            return None
        metadata = obj.get("metadata")
        return cls(
            id=str(task_id),
            type=_text(obj.get("type")) or "unknown",
            status=_text(obj.get("status")) or "pending",
            description=_text(obj.get("description")),
            created_at=parse_time(obj.get("created_at")),
            metadata=metadata if isinstance(metadata, dict) else {},
        )

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
