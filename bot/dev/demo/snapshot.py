"""What the demo page shows, as JSON: one person's view of the channel, and what happened underneath."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dev.demo.logbuffer import LogRing
from bot.dev.demo.session import Session
from bot.dev.sandbox import Sandbox
from bot.dev.standin.records import Message
from bot.dev.standin.slack import SlackStandIn
from bot.runtime import Runtime

#: How many channel items (messages and ephemerals) and panel rows the page receives.
TIMELINE_ITEMS = 150
PANEL_ROWS = 40
LOG_LINES = 80


@dataclass(frozen=True)
class Person:
    """Someone the page can act as."""

    id: str
    name: str
    title: str
    approver: bool


@dataclass(frozen=True)
class Sources:
    """Everything the snapshots read from."""

    standin: SlackStandIn
    sandbox: Sandbox
    runtime: Runtime
    session: Session
    logs: LogRing
    people: tuple[Person, ...]
    channel: str
    channel_name: str
    bot_user_id: str = "UBOT"


def versions(src: Sources) -> dict[str, int]:
    """Counters that grow when the channel view ("slack") or the panel ("panel") has something new."""
    return {
        "slack": src.standin.version + src.session.version,
        "panel": len(src.sandbox.calls) + src.logs.total + src.session.delivered + src.standin.version,
    }


def channel_state(src: Sources, user: str) -> dict[str, Any]:
    """What `user` sees: the channel with their ephemerals, their open modal and their Home tab."""
    messages = src.standin.messages(src.channel)
    replies: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message.thread_ts and not message.deleted:
            replies.setdefault(message.thread_ts, []).append(_message(message))
    timeline: list[tuple[float, dict[str, Any]]] = [
        (float(m.ts), {**_message(m), "kind": "message", "replies": replies.get(m.ts, [])})
        for m in messages
        if not m.thread_ts and not m.deleted
    ]
    shown = [
        (f"e{n}", e.at, e.text, e.blocks)
        for n, e in enumerate(src.standin.ephemerals)
        if e.user == user and e.channel == src.channel
    ]
    shown += [(f"c{n}", r.at, r.text, r.blocks) for n, r in enumerate(src.session.replies) if r.user == user]
    for ephemeral_id, at, text, blocks in shown:
        timeline.append(
            (
                at,
                {
                    "kind": "ephemeral",
                    "id": ephemeral_id,
                    "ts": f"{at:.6f}",
                    "user": src.bot_user_id,
                    "text": text,
                    "blocks": blocks,
                },
            )
        )
    timeline.sort(key=lambda item: item[0])
    return {
        "versions": versions(src),
        "me": user,
        "people": [{"id": p.id, "name": p.name, "title": p.title, "approver": p.approver} for p in src.people],
        "bot": {"id": src.bot_user_id, "name": "lexi-bot"},
        "channel": {"id": src.channel, "name": src.channel_name},
        "timeline": [item for _, item in timeline[-TIMELINE_ITEMS:]],
        "modal": src.session.modal(user),
        "home": src.standin.home_views.get(user),
    }


def panel_state(src: Sources) -> dict[str, Any]:
    """What happened underneath: LeadLex calls and budget, Slack traffic both ways, the bot's log."""
    budget = src.runtime.lexi.budget
    return {
        "versions": versions(src),
        "leadlex": {
            "url": src.sandbox.url,
            "calls": [
                {"method": c.method, "path": c.path, "status": c.status, "at": c.at}
                for c in src.sandbox.calls[-PANEL_ROWS:]
            ][::-1],
            "budget": {"limit": budget.limit, "remaining": budget.remaining, "reset": budget.reset},
            "poll_every": round(src.runtime.poller.last_delay, 1),
        },
        "slack": {
            "requests": [
                {"kind": d.kind, "summary": d.summary, "status": d.status, "ms": round(d.ms), "at": d.at}
                for d in list(src.session.deliveries)[::-1]
            ],
            "api": [
                {"method": c.method, "ok": c.ok, "error": c.error, "at": c.at} for c in src.standin.calls[-PANEL_ROWS:]
            ][::-1],
        },
        "log": src.logs.lines(LOG_LINES),
    }


def _message(message: Message) -> dict[str, Any]:
    """One message as the page renders it."""
    return {
        "ts": message.ts,
        "user": message.user,
        "text": message.text,
        "blocks": message.blocks,
        "edited": message.edits > 0,
    }
