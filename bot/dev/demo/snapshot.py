"""What the demo page shows, as JSON: one person's view of the channel, of their DM and pane, and what happened."""

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
    """What `user` sees: the channel with their ephemerals, their DM with the app and its pane, modal and Home tab."""
    timeline = _timeline(src, user, src.channel)
    return {
        "versions": versions(src),
        "me": user,
        "people": [{"id": p.id, "name": p.name, "title": p.title, "approver": p.approver} for p in src.people],
        "bot": {"id": src.bot_user_id, "name": "lexi-bot"},
        "channel": {"id": src.channel, "name": src.channel_name},
        "timeline": timeline,
        "dm": dm_state(src, user),
        "pane": pane_state(src, user),
        "modal": src.session.modal(user),
        "home": src.standin.home_views.get(user),
    }


def dm_state(src: Sources, user: str) -> dict[str, Any]:
    """The person's DM with the app as its Messages tab shows it: what was said there, not the pane's threads."""
    channel = src.standin.open_dm(user)
    return {"channel": channel, "timeline": _timeline(src, user, channel)}


def pane_state(src: Sources, user: str) -> dict[str, Any] | None:
    """The person's assistant pane: its thread's messages, and the status, prompts and title the app set on it."""
    thread_ts = src.session.pane_thread(user)
    if thread_ts is None:
        return None
    channel = src.standin.open_dm(user)
    latest: dict[str, Any] = {"status": "", "prompts": [], "title": ""}
    for update in src.standin.thread_updates(channel, thread_ts):
        latest[update.kind] = update.value
    messages = [{**_message(m), "kind": "message"} for m in src.standin.replies(channel, thread_ts) if not m.deleted]
    started = float(thread_ts)
    told = [item for item in _ephemerals(src, user, channel) if float(item["ts"]) >= started]
    return {
        "channel": channel,
        "thread_ts": thread_ts,
        **latest,
        "messages": sorted([*messages, *told], key=lambda item: float(item["ts"]))[-TIMELINE_ITEMS:],
    }


def _timeline(src: Sources, user: str, channel: str) -> list[dict[str, Any]]:
    """A conversation's top-level messages (with their replies) and the ephemerals `user` saw there, oldest first.

    The assistant pane's threads start with a message of Slack's own ("New chat"): they are the pane's, not shown.
    """
    messages = src.standin.messages(channel)
    replies: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message.thread_ts and not message.deleted:
            replies.setdefault(message.thread_ts, []).append(_message(message))
    timeline = [
        {**_message(m), "kind": "message", "replies": replies.get(m.ts, [])}
        for m in messages
        if not m.thread_ts and not m.deleted and m.subtype != "assistant_app_thread"
    ]
    timeline += _ephemerals(src, user, channel)
    timeline.sort(key=lambda item: float(item["ts"]))
    return timeline[-TIMELINE_ITEMS:]


def _ephemerals(src: Sources, user: str, channel: str) -> list[dict[str, Any]]:
    """The ephemerals `user` saw in a channel: the stand-in's ("e<n>") and, in the channel, the slash replies."""
    shown = [
        (f"e{n}", e.at, e.text, e.blocks)
        for n, e in enumerate(src.standin.ephemerals)
        if e.user == user and e.channel == channel
    ]
    if channel == src.channel:
        shown += [(f"c{n}", r.at, r.text, r.blocks) for n, r in enumerate(src.session.replies) if r.user == user]
    return [
        {
            "kind": "ephemeral",
            "id": ephemeral_id,
            "ts": f"{at:.6f}",
            "user": src.bot_user_id,
            "text": text,
            "blocks": blocks,
        }
        for ephemeral_id, at, text, blocks in shown
    ]


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
