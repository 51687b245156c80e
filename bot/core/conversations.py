"""Asking Lexi: a person's message goes on in the conversation they have in that channel, or starts a new one.

A thread the bot answers in (the AI pane's, or one under a DM or an @mention) has a conversation of its own, kept
in the same table under the key (`thread:<thread_ts>`, its channel): no person's id looks like that, so the two
kinds never meet.
"""

from __future__ import annotations

from bot.db.store import Store
from bot.lexi.client import ChatReply, LexiClient

#: How an assistant thread is named in the conversations table's user column (a thread has no one person).
_THREAD_KEY = "thread:"
#: The conversation recorded for an assistant thread whose first message has not reached Lexi yet.
_NONE_YET = ""


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

    def open_thread(self, channel: str, thread_ts: str) -> bool:
        """Remember an assistant thread at its first message; True when it was new (it gets its title then)."""
        key = _THREAD_KEY + thread_ts
        if self._store.conversation_for(key, channel) is not None:
            return False
        self._store.remember_conversation(key, channel, _NONE_YET)
        return True

    def ask_in_thread(self, channel: str, thread_ts: str, message: str) -> ChatReply:
        """Send `message` to Lexi in the conversation of a thread (a new one at its first message).

        As `ask`: the conversation Lexi names is remembered for the thread's next message; errors propagate.
        """
        key = _THREAD_KEY + thread_ts
        reply = self._lexi.chat(message, conversation_id=self._store.conversation_for(key, channel) or None)
        if reply.conversation_id:
            self._store.remember_conversation(key, channel, reply.conversation_id)
        return reply
