"""Asking Lexi: a person's message goes on in the conversation they have in that channel, or starts a new one."""

from __future__ import annotations

from bot.db.store import Store
from bot.lexi.client import ChatReply, LexiClient


class Conversations:
    """Sends people's messages to Lexi and remembers which conversation each person continues where."""

    def __init__(self, store: Store, lexi: LexiClient) -> None:
        self._store = store
        self._lexi = lexi

    def ask(self, user: str, channel: str, message: str, *, new: bool = False) -> ChatReply:
        """Send `message` to Lexi in `user`'s conversation in `channel` (a new one with `new`) and return Lexi's reply.

        Lexi's answer names the conversation it went on in; that one is remembered for the person's next message.
        LeadLex's errors propagate: chat is never retried, because it costs credits and may have reached Lexi.
        """
        conversation = None if new else self._store.conversation_for(user, channel)
        reply = self._lexi.chat(message, conversation_id=conversation)
        if reply.conversation_id:
            self._store.remember_conversation(user, channel, reply.conversation_id)
        return reply
