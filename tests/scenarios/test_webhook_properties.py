"""Issue 11, property-based: whatever a correctly signed delivery holds, the webhook endpoint answers below 500.

Each example is POSTed over HTTP to the running bot, signed with its secret as LeadLex signs deliveries.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.webhooks import TASK_EVENTS
from bot.dev.sandbox_webhooks import sign
from bot.lexi.models import KNOWN_TYPES, STATUSES
from tests.support.harness import WEBHOOK_SECRET, BotHarness

EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Any JSON value, including NaN and infinities (which JSON forbids and json.dumps writes anyway).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)
#: Text a LeadLex task may hold: any Unicode except NUL (which no database column stores).
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=200)
#: JSON values LeadLex could really send: finite numbers, storable text.
CLEAN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=15,
)
#: A task object with each field either plausible or any JSON value.
ODD_TASKS = st.fixed_dictionaries(
    {
        "id": st.text(max_size=20) | JSON,
        "type": st.sampled_from(KNOWN_TYPES) | JSON,
        "status": st.sampled_from(STATUSES) | JSON,
        "description": st.text(max_size=50) | JSON,
        "created_at": st.sampled_from(
            ["2026-11-23T09:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "", "yesterday"]
        )
        | JSON,
        "metadata": JSON,
    }
)
#: Envelopes with a fresh signed timestamp added at send time, and every other field odd or not.
ENVELOPES = st.fixed_dictionaries(
    {
        "event": st.sampled_from(TASK_EVENTS) | JSON,
        "data": st.fixed_dictionaries({"task": ODD_TASKS | JSON}) | ODD_TASKS | JSON,
    },
    optional={"workspace_id": JSON},
)


def _send(harness: BotHarness, body: bytes) -> int:
    """POST a body signed with WEBHOOK_SECRET; its status."""
    headers = {
        "Content-Type": "application/json",
        "X-LeadLex-Signature": sign(WEBHOOK_SECRET, body),
        "X-LeadLex-Timestamp": datetime.now(UTC).isoformat(),
        "X-LeadLex-Delivery-ID": "prop",
    }
    response = harness.http.post(f"{harness.url}/lexi/webhooks", content=body, headers=headers)
    if response.status_code != 200:
        assert response.json()["error"], "a refusal says why"
    return response.status_code


def _fresh(envelope: dict[str, Any]) -> bytes:
    """The envelope with a signed timestamp of now, as bytes (NaN and infinities written as json.dumps does)."""
    return json.dumps({**envelope, "timestamp": datetime.now(UTC).isoformat()}).encode()


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Errors the bot logged while handling deliveries."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("bot")]


@EXAMPLES
@given(value=JSON)
def test_any_signed_json_value_is_answered_below_500(hooked: BotHarness, value: Any) -> None:
    """Any JSON value as a signed body is answered, never with a server error."""
    assert _send(hooked, json.dumps(value).encode()) < 500


@EXAMPLES
@given(body=st.binary(max_size=300))
def test_any_signed_bytes_are_answered_below_500(hooked: BotHarness, body: bytes) -> None:
    """Any bytes as a signed body are answered, never with a server error."""
    assert _send(hooked, body) < 500


@EXAMPLES
@given(envelope=ENVELOPES)
def test_odd_fresh_envelopes_never_break_the_bot(
    hooked: BotHarness, caplog: pytest.LogCaptureFixture, envelope: dict[str, Any]
) -> None:
    """A fresh, signed envelope with odd fields is answered below 500 and applying it logs no error."""
    caplog.clear()
    assert _send(hooked, _fresh(envelope)) < 500
    hooked.settle()
    assert _failures(caplog) == []


@EXAMPLES
@given(
    kind=st.sampled_from(KNOWN_TYPES) | TEXT, description=TEXT, metadata=st.dictionaries(TEXT, CLEAN_JSON), suffix=TEXT
)
def test_well_formed_random_tasks_are_announced(
    hooked: BotHarness,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    description: str,
    metadata: dict[str, Any],
    suffix: str,
) -> None:
    """A well-formed task.created with arbitrary text and metadata is accepted and announced."""
    caplog.clear()
    task_id = f"{uuid.uuid4().hex[:8]}{suffix}"[:255]
    task = {
        "id": task_id,
        "type": kind,
        "status": "pending",
        "description": description,
        "created_at": "2026-11-23T09:00:00Z",
        "metadata": metadata,
    }
    assert _send(hooked, _fresh({"event": "task.created", "data": {"task": task}})) == 200
    hooked.settle()
    row = hooked.store.get(task_id)
    assert row is not None and row.message_ts is not None
    assert _failures(caplog) == []
