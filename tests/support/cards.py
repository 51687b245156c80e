"""Task cards as the Slack stand-in holds them, wherever they are (channel, DM, thread), and clicks on them."""

from __future__ import annotations

import json

import httpx

from bot.dev.standin import payloads
from bot.dev.standin.slack import Message, SlackStandIn
from bot.slack import blocks
from tests.support.harness import BotHarness


def cards_in(slack: SlackStandIn, channel: str) -> list[Message]:
    """The task cards the bot posted in a conversation (top level or in threads), as they stand now."""
    return [
        m
        for m in slack.messages(channel)
        if m.user == slack.bot_user_id and m.metadata and not m.deleted and m.metadata.get("event_payload")
    ]


def card_text(message: Message | None) -> str:
    """A card's blocks as JSON text."""
    assert message is not None
    return json.dumps(message.blocks, ensure_ascii=False)


def has_buttons(message: Message | None) -> bool:
    """Whether a card still offers Approve / Dismiss."""
    assert message is not None
    return any(b["type"] == "actions" for b in message.blocks)


def click_card(bot: BotHarness, card: Message, user: str, action_id: str = blocks.APPROVE_ACTION) -> httpx.Response:
    """`user` clicks a button on this very card (in whatever channel, DM or thread it is), signed as Slack signs."""
    task_id = card.metadata["event_payload"]["task_id"] if card.metadata else ""
    payload = payloads.build_block_action(
        action_id=action_id,
        value=task_id,
        user=user,
        channel=card.channel,
        channel_name="directmessage" if card.channel.startswith("D") else "lexi-approvals",
        message_ts=card.ts,
        trigger_id=bot.slack.new_trigger_id(user),
        response_url=bot.slack.new_response_url(channel=card.channel, message_ts=card.ts, user=user),
    )
    return bot.post(*payloads.encode_interactive(payload))
