"""What the sandbox's Lexi proposes: sample tasks, generated tasks and plans made from chat messages."""

from __future__ import annotations

import copy
import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from bot.lexi.models import KNOWN_TYPES

#: Credits one chat message costs, and what a message that prepares a prospect search costs.
CHAT_COST = 1
SEARCH_COST = 3

_TITLES = (
    "VP of Sales",
    "Head of Revenue Operations",
    "Chief Financial Officer",
    "Head of Growth",
    "Director of Marketing",
    "CTO",
    "Head of Procurement",
    "VP of Engineering",
    "Sales Operations Manager",
)
_INDUSTRIES = (
    "Computer Software",
    "SaaS",
    "Financial Services",
    "Fintech",
    "Logistics",
    "Healthcare",
    "E-commerce",
    "Manufacturing",
    "Marketing & Advertising",
)
_LOCATIONS = (
    "United States",
    "Canada",
    "United Kingdom",
    "Germany",
    "France",
    "Netherlands",
    "Nordics",
    "Australia",
)

#: The share of random campaigns that are large (500 to 2,000 contacts).
_LARGE_CAMPAIGNS = 0.4

_CAMPAIGNS = (
    "Q1 Outbound — Fintech CFOs",
    "Webinar follow-up",
    "RevOps summit invites",
    "Churned customers win-back",
    "Product launch — EMEA",
    "Trial nurture week 2",
)
_LISTS = ("Webinar attendees", "Trade show leads", "Q4 MQLs", "Partner referrals", "Newsletter subscribers")
_FIELD_CHANGES: tuple[dict[str, str], ...] = (
    {"lifecycle_stage": "customer"},
    {"lead_status": "unqualified"},
    {"owner": "alex@example.com"},
    {"lifecycle_stage": "opportunity", "lead_source": "webinar"},
)
#: List operations and how their task reads.
_LIST_OPERATIONS = {
    "merge": "Merge duplicate lists into '{name}' ({count} records)",
    "dedupe": "Deduplicate list '{name}' ({count} records)",
    "create": "Create list '{name}' with {count} records",
    "add_contacts": "Add {count} contacts to list '{name}'",
    "remove_contacts": "Remove {count} contacts from list '{name}'",
}

#: A quoted name: quotes preceded by a space or the start, so that "Let's" does not open a quote.
_QUOTED = re.compile(r"(?:^|(?<=[\s(]))['\"“‘](.+?)['\"”’](?=$|[\s.,;:!?)])")
#: A trailing "companies" after an industry, as in "at SaaS companies".
_COMPANIES = re.compile(r"\s+compan(?:y|ies)$", re.IGNORECASE)
#: "set <field> to <value>" in a request to update contacts.
_SET_FIELD = re.compile(r"\bset\s+([a-z_ ]+?)\s+to\s+([\w@.\-]+)")

#: Seeded tasks as (minutes ago, type, description, metadata), oldest first.
_SEED: tuple[tuple[int, str, str, dict[str, Any]], ...] = (
    (
        310,
        "prospect_search",
        "Find VPs of Sales and Heads of Revenue Operations at software companies in North America",
        {
            "query": {
                "person_titles": ["VP of Sales", "Head of Revenue Operations"],
                "organization_industries": ["Computer Software", "SaaS"],
                "person_locations": ["United States", "Canada"],
            },
            "per_page": 25,
        },
    ),
    (
        245,
        "campaign_start",
        "Start campaign 'Q1 Outbound — Fintech CFOs'",
        {"campaign_id": "cmp_q1_fintech_cfos", "contact_count": 150},
    ),
    (
        180,
        "contact_update",
        "Mark 42 contacts from the closed-won deals as customers",
        {"contact_count": 42, "fields": {"lifecycle_stage": "customer"}},
    ),
    (
        120,
        "list_operation",
        "Merge 'Webinar attendees (March)' into 'Webinar attendees'",
        {"operation": "merge", "list_name": "Webinar attendees", "record_count": 310},
    ),
    (
        55,
        "prospect_search",
        "Find CFOs at fintech companies in the United Kingdom and Germany",
        {
            "query": {
                "person_titles": ["Chief Financial Officer"],
                "organization_industries": ["Financial Services", "Fintech"],
                "person_locations": ["United Kingdom", "Germany"],
            },
            "per_page": 50,
        },
    ),
    (
        12,
        "campaign_start",
        "Start campaign 'Churned customers win-back'",
        {"campaign_id": "cmp_winback", "contact_count": 1240},
    ),
)


@dataclass(frozen=True)
class Proposal:
    """A task Lexi proposes: its type, description and metadata."""

    type: str
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatPlan:
    """How Lexi answers one chat message: the reply, the credits it costs and the task it proposes, if any."""

    response: str
    cost: int
    proposal: Proposal | None = None


def seed_proposals() -> list[tuple[float, Proposal]]:
    """Return the sample tasks as (seconds ago, proposal), oldest first."""
    return [(minutes * 60.0, Proposal(kind, text, copy.deepcopy(meta))) for minutes, kind, text, meta in _SEED]


def random_proposal(rng: random.Random) -> Proposal:
    """Return a random but realistic task of any known type (some campaigns are large)."""
    kind = rng.choice(KNOWN_TYPES)
    if kind == "prospect_search":
        titles = rng.sample(_TITLES, rng.randint(1, 2))
        industries = rng.sample(_INDUSTRIES, rng.randint(1, 2))
        locations = rng.sample(_LOCATIONS, rng.randint(1, 2))
        return _search(titles, industries, locations, rng.choice((10, 20, 25, 50, 100)))
    if kind == "campaign_start":
        count = rng.randint(500, 2000) if rng.random() < _LARGE_CAMPAIGNS else rng.randint(20, 400)
        return _campaign(rng.choice(_CAMPAIGNS), count)
    if kind == "contact_update":
        return _contact_update(rng.randint(1, 250), dict(rng.choice(_FIELD_CHANGES)))
    operation = rng.choice(list(_LIST_OPERATIONS))
    return _list_operation(operation, rng.choice(_LISTS), rng.randint(15, 900))


def plan_chat(message: str, turn: int) -> ChatPlan:
    """Decide, deterministically, how Lexi answers `message`, the `turn`-th message of its conversation."""
    text = message.strip()
    name = _quoted(text)
    lowered = text.lower()
    number = _first_number(_QUOTED.sub(" ", text))
    suffix = f" (message {turn} in this conversation)"
    if re.search(r"\b(find|search|prospect\w*)\b", lowered):
        proposal = _search_from_text(text, number)
        reply = f"I prepared a prospect search: {proposal.description}. It needs your approval first."
        return ChatPlan(reply + suffix, SEARCH_COST, proposal)
    if re.search(r"\b(campaign\w*|launch\w*)\b", lowered):
        count = number or 150
        proposal = _campaign(name or "Sandbox campaign", count)
        reply = f"Campaign '{name or 'Sandbox campaign'}' is ready for {count} contacts; approve it to send."
        return ChatPlan(reply + suffix, CHAT_COST, proposal)
    if re.search(r"\bupdat\w*\b", lowered):
        fields = {key.strip().replace(" ", "_"): value for key, value in _SET_FIELD.findall(lowered)}
        proposal = _contact_update(number or 1, fields)
        reply = f"I prepared this contact update: {proposal.description}."
        return ChatPlan(reply + suffix, CHAT_COST, proposal)
    if re.search(r"\blists?\b", lowered):
        operation = next((op for op in _LIST_OPERATIONS if op.split("_")[0] in lowered), "create")
        proposal = _list_operation(operation, name or "Sandbox list", number or 0)
        reply = f"I prepared this list operation: {proposal.description}."
        return ChatPlan(reply + suffix, CHAT_COST, proposal)
    reply = (
        "I'm Lexi, running in the LeadLex sandbox. Ask me to find prospects, launch a campaign, "
        "update contacts or work on a list."
    )
    return ChatPlan(reply + suffix, CHAT_COST)


def _search(titles: list[str], industries: list[str], locations: list[str], per_page: int) -> Proposal:
    """Build a prospect-search proposal."""
    parts = [f"Find {' and '.join(titles) or 'prospects'}"]
    if industries:
        parts.append(f"at {', '.join(industries)} companies")
    if locations:
        parts.append(f"in {', '.join(locations)}")
    query = {"person_titles": titles, "organization_industries": industries, "person_locations": locations}
    return Proposal("prospect_search", " ".join(parts), {"query": query, "per_page": per_page})


def _search_from_text(text: str, number: int | None) -> Proposal:
    """Read titles, industries and locations from a request like 'find 20 CFOs at fintechs in Germany'."""
    match = re.search(
        r"\b(?:find|search(?:\s+for)?|prospects?(?:\s+for)?)\s+(?:me\s+)?(?:\d+\s+)?(?P<who>.+?)"
        r"(?:\s+(?:at|from)\s+(?P<org>.+?))?(?:\s+in\s+(?P<where>.+?))?[.?!]*$",
        text,
        re.IGNORECASE,
    )
    groups = match.groupdict() if match else {}
    per_page = min(max(number, 1), 100) if number else 25
    industries = [_COMPANIES.sub("", part) for part in _split(groups.get("org"))]
    return _search(_split(groups.get("who")), industries, _split(groups.get("where")), per_page)


def _campaign(name: str, count: int) -> Proposal:
    """Build a campaign-start proposal with a campaign id derived from its name."""
    campaign_id = "cmp_" + hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
    metadata = {"campaign_id": campaign_id, "contact_count": count}
    return Proposal("campaign_start", f"Start campaign '{name}'", metadata)


def _contact_update(count: int, fields: dict[str, str]) -> Proposal:
    """Build a contact-update proposal."""
    changes = ", ".join(f"{name} → {value}" for name, value in fields.items()) or "fields to review"
    metadata = {"contact_count": count, "fields": fields}
    return Proposal("contact_update", f"Update {count} contacts: {changes}", metadata)


def _list_operation(operation: str, list_name: str, count: int) -> Proposal:
    """Build a list-operation proposal."""
    description = _LIST_OPERATIONS[operation].format(name=list_name, count=count)
    return Proposal(
        "list_operation", description, {"operation": operation, "list_name": list_name, "record_count": count}
    )


def _split(value: str | None) -> list[str]:
    """Split 'a, b and c' into ['a', 'b', 'c']."""
    if not value:
        return []
    return [part.strip() for part in re.split(r",\s*|\s+and\s+|\s+or\s+", value) if part.strip()]


def _first_number(text: str) -> int | None:
    """Return the first whole number written in `text`, or None."""
    match = re.search(r"\b(\d{1,6})\b", text)
    return int(match.group(1)) if match else None


def _quoted(text: str) -> str | None:
    """Return the first quoted name in `text` (like 'Q1 Outbound'), or None."""
    match = _QUOTED.search(text)
    return match.group(1).strip() if match else None
