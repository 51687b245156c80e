"""The task as the bot sees it (bot.lexi.models.Task): what it says about itself, read from its metadata."""

from __future__ import annotations

import pytest

from bot.lexi.models import Task


def test_counts_come_from_the_task_metadata() -> None:
    """The size a rule compares is the search's result count or the contacts/records affected."""
    assert Task(id="1", type="prospect_search", metadata={"per_page": 25}).affected_count == 25
    assert Task(id="2", type="campaign_start", metadata={"contact_count": 1500}).affected_count == 1500
    assert Task(id="3", type="list_operation", metadata={"record_count": "310"}).affected_count == 310
    assert Task(id="4", type="contact_update", metadata={}).affected_count is None


@pytest.mark.parametrize(
    ("task_type", "metadata", "count"),
    [
        ("prospect_search", {"contact_count": 40}, None),  # a search's size is what it asks for, nothing else
        ("contact_update", {"contact_ids": ["a", "b", "c"]}, 3),  # a list counts its items
        ("list_operation", {"count": 7.0, "record_count": "1,200"}, 1200),  # record_count is looked for before count
        ("campaign_start", {"contact_count": True, "total_count": 9}, 9),  # a boolean is no count
        ("campaign_start", {"contact_count": 10**15}, None),  # absurdly large: no count
        ("list_operation", {"record_count": "-3"}, None),
    ],
)
def test_affected_count_reads_counts_tolerantly(task_type: str, metadata: dict[str, object], count: int | None) -> None:
    """Counts are read from numbers, numeric text and lists; anything else is no count at all."""
    assert Task(id="t", type=task_type, metadata=metadata).affected_count == count
