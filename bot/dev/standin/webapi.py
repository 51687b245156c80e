"""The workspace behind the Slack stand-in: channels, people, messages, and the Web API methods on them.

Not thread-safe by itself: `bot.dev.standin.slack.SlackStandIn` serialises every call under one lock.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.dev.standin.assistant import AssistantThreads
from bot.dev.standin.blockkit import validate_blocks
from bot.dev.standin.protocol import ApiError, Args
from bot.dev.standin.records import Ephemeral, Message, ResponseUrlPost
from bot.dev.standin.views import AppIdentity, Views

#: Longest `text` Slack accepts in a message.
MAX_TEXT = 40_000
#: Posts a response URL accepts, and the seconds it stays usable.
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0


@dataclass
class _Channel:
    """A conversation: its name, whether the bot is in it, and an explicit member list (None: everyone)."""

    name: str
    bot_member: bool = True
    members: list[str] | None = None
    private: bool = False


@dataclass
class _ResponseUrl:
    """A response URL: when it was issued, how often it was used, and the message/user it answers."""

    issued_at: float
    channel: str | None
    message_ts: str | None
    user: str | None
    uses: int = 0


class Workspace:
    """One Slack workspace with a bot user: its state and the Web API methods that read and change it."""

    def __init__(
        self,
        *,
        bot_token: str,
        bot_user_id: str,
        team_id: str,
        channels: Mapping[str, str],
        users: Mapping[str, str],
        clock: Callable[[], float],
        bot_id: str = "B0LEXI",
        team_name: str = "Lexi Test",
        enterprise_id: str | None = None,
        is_enterprise_install: bool = False,
    ) -> None:
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = "A0LEXI"
        self.bot_name = "lexi"
        self.team_id = team_id
        self.team_name = team_name
        #: Enterprise Grid: the organization this workspace belongs to, and whether the app is installed org-wide.
        self.enterprise_id = enterprise_id
        self.is_enterprise_install = is_enterprise_install
        self.url = ""
        self.clock = clock
        self.channels = {cid: _Channel(name) for cid, name in channels.items()}
        self.users = dict(users)
        self.usergroups: dict[str, list[str]] = {}
        #: Workspace admins (users.info says is_admin) and owners (is_owner; the primary owner too).
        self.admins: set[str] = set()
        self.owners: set[str] = set()
        self.ephemerals: list[Ephemeral] = []
        self.responses: list[ResponseUrlPost] = []
        self.views = Views(AppIdentity(team_id, self.app_id, self.bot_id), self.users, clock, self._next_id)
        self.assistant = AssistantThreads(self._thread_exists, clock)
        self._messages: dict[str, dict[str, Message]] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._last_micros = 0
        self._sequence = 0
        self.methods: dict[str, Callable[[Args], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "chat.getPermalink": self._get_permalink,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.info": self._conversation_info,
            "conversations.members": self._conversation_members,
            "conversations.join": self._join,
            "conversations.open": self._open,
            "users.info": self._user_info,
            "usergroups.users.list": self._usergroup_users,
            **self.views.methods,
            **self.assistant.methods,
        }

    # ----- reading and seeding state -----

    def messages(self, channel: str) -> list[Message]:
        """Return every message of a channel (replies and deleted ones included) in ts order."""
        return sorted(self._messages.get(channel, {}).values(), key=lambda m: Decimal(m.ts))

    def find(self, channel: str, ts: str | None) -> Message | None:
        """Return the message with this exact ts in a channel, None when there is none."""
        return self._messages.get(channel, {}).get(ts or "")

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """Return the live replies of a thread, oldest first."""
        replies = (m for m in self._messages.get(channel, {}).values() if m.thread_ts == thread_ts)
        return sorted((m for m in replies if not m.deleted), key=lambda m: Decimal(m.ts))

    def open_dm(self, user: str) -> str:
        """The id of the app's DM with `user`, opened if need be (as conversations.open does)."""
        return self._channel_id(user)

    def open_assistant_thread(self, user: str) -> Message:
        """Start an assistant thread as Slack does when `user` opens the app's pane: a "New chat" in their DM."""
        channel = self._channel_id(user)
        message = Message(channel, self.next_ts(), "New chat", user=self.bot_user_id, subtype="assistant_app_thread")
        self.store(message)
        return message

    def _thread_exists(self, channel: str, thread_ts: str) -> bool:
        """Whether a live message with this ts (a thread's parent) is in the channel."""
        message = self.find(channel, thread_ts)
        return message is not None and not message.deleted

    def store(self, message: Message) -> None:
        """Add or replace a message; a seeded ts also moves the ts generator past it."""
        self._messages.setdefault(message.channel, {})[message.ts] = message
        micros = int(Decimal(message.ts) * 1_000_000)
        self._last_micros = max(self._last_micros, micros)

    def next_ts(self) -> str:
        """Return a fresh message ts from the clock, strictly greater than every ts so far."""
        micros = max(int(self.clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def issue_response_url(self, channel: str | None, message_ts: str | None, user: str | None) -> str:
        """Return a new response URL, optionally bound to the message and user it answers."""
        token = secrets.token_urlsafe(12)
        self._response_urls[token] = _ResponseUrl(self.clock(), channel, message_ts, user)
        return f"{self.url}/response/{token}"

    def add_channel(self, cid: str, name: str, *, member: bool, private: bool = False) -> None:
        """Add or reset a channel (everyone a member) with or without the bot; a private one it cannot join."""
        self.channels[cid] = _Channel(name, bot_member=member, private=private)

    def _next_id(self) -> int:
        """Return the next number of the workspace-wide id sequence."""
        self._sequence += 1
        return self._sequence

    # ----- response URLs -----

    def post_response(self, token: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Apply a post to a response URL and return Slack's HTTP status and JSON answer."""
        entry = self._response_urls.get(token)
        if entry is None:
            return 404, {"ok": False, "error": "no_such_url"}
        problem = self._spent(entry)
        if problem is not None:
            return 404, {"ok": False, "error": problem}
        entry.uses += 1
        body = _response_body(raw)
        if body is None:
            return 400, {"ok": False, "error": "invalid_payload"}
        text, blocks = body.get("text") or "", body.get("blocks") or []
        if blocks and validate_blocks(blocks):
            return 400, {"ok": False, "error": "invalid_blocks"}
        self._apply_response(entry, body, text, blocks)
        self.responses.append(ResponseUrlPost(token, body, self.clock()))
        return 200, {"ok": True}

    def _spent(self, entry: _ResponseUrl) -> str | None:
        """Slack's error for a response URL that expired or was used up; None while it can be posted to."""
        if self.clock() - entry.issued_at > RESPONSE_URL_TTL:
            return "expired_url"
        if entry.uses >= RESPONSE_URL_USES:
            return "used_url"
        return None

    def _apply_response(self, entry: _ResponseUrl, body: dict[str, Any], text: str, blocks: list[Any]) -> None:
        """Delete, replace or answer the bound message as the post's flags say (no flag: an ephemeral)."""
        original = self.find(entry.channel or "", entry.message_ts)
        if body.get("delete_original") and original and not original.deleted:
            self.store(replace(original, deleted=True))
        elif body.get("replace_original") and original and not original.deleted:
            self.store(replace(original, text=text, blocks=blocks, edits=original.edits + 1))
        elif body.get("response_type") == "in_channel" and entry.channel:
            self.store(Message(entry.channel, self.next_ts(), text, blocks, user=self.bot_user_id))
        elif entry.channel and entry.user:
            self.ephemerals.append(Ephemeral(entry.channel, entry.user, text, blocks, self.clock()))

    # ----- shared argument handling -----

    def _channel_id(self, value: str | None) -> str:
        """Resolve a channel id, `#name`, name or user id (the bot's DM with them) to a channel id."""
        if not value:
            raise ApiError("channel_not_found")
        if value in self.channels:
            return value
        name = value.removeprefix("#")
        for cid, channel in self.channels.items():
            if channel.name == name:
                return cid
        if value in self.users:
            dm = "D" + value.removeprefix("U")
            self.channels.setdefault(dm, _Channel(name=value, members=[value]))
            return dm
        raise ApiError("channel_not_found")

    def _member_channel(self, value: str | None) -> str:
        """Resolve a channel the bot must be a member of (to post or read)."""
        cid = self._channel_id(value)
        if not self.channels[cid].bot_member:
            raise ApiError("not_in_channel")
        return cid

    def _content(self, args: Args) -> tuple[str | None, list[Any] | None]:
        """Read and check `text` and `blocks` (None when absent) against Slack's limits."""
        text = args.text("text")
        blocks = args.structured("blocks", "invalid_blocks_format")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise ApiError("invalid_blocks_format")
            problem = validate_blocks(blocks)
            if problem:
                raise ApiError("invalid_blocks", messages=[problem])
        if text is not None and len(text) > MAX_TEXT:
            raise ApiError("msg_too_long")
        if not text and not blocks:
            raise ApiError("no_text")
        return text, blocks

    def _metadata(self, args: Args) -> dict[str, Any] | None:
        """Read message metadata `{"event_type", "event_payload"}`, None when absent."""
        value = args.structured("metadata", "invalid_metadata_format")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ApiError("invalid_metadata_format")
        event_type, payload = value.get("event_type"), value.get("event_payload")
        if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
            raise ApiError("invalid_metadata_schema")
        return {"event_type": event_type, "event_payload": payload}

    def _render(self, message: Message, *, with_metadata: bool) -> dict[str, Any]:
        """Render a message the way conversations.history and chat.postMessage return it.

        As in Slack, who posted it shows in `user` (a person, or an app's bot user) and, for apps, `bot_id`; a
        legacy bot message has no `user`, only `bot_id` and the subtype `bot_message`.
        """
        out: dict[str, Any] = {"type": "message"}
        if message.subtype:
            out["subtype"] = message.subtype
        if message.user:
            out["user"] = message.user
        if message.bot_id:
            out["bot_id"] = message.bot_id
            if not message.user:
                out["subtype"] = "bot_message"
        elif message.user == self.bot_user_id:
            out.update(bot_id=self.bot_id, app_id=self.app_id)
        out.update(text=message.text, ts=message.ts, team=self.team_id, blocks=message.blocks)
        if message.thread_ts:
            out["thread_ts"] = message.thread_ts
        elif replies := self.thread(message.channel, message.ts):
            out.update(thread_ts=message.ts, reply_count=len(replies), latest_reply=replies[-1].ts)
        if with_metadata and message.metadata:
            out["metadata"] = message.metadata
        return out

    def _page(self, items: list[Message], args: Args, *, newest_first: bool) -> tuple[list[Message], str]:
        """Cut a page (`limit`: default 100, at most 999) from `cursor` on; return it and the next cursor."""
        limit = args.integer("limit", 100)
        limit = 100 if limit < 1 else min(limit, 999)
        cursor = args.text("cursor")
        if cursor:
            try:
                prefix, _, ts = base64.b64decode(cursor, validate=True).decode("ascii").partition(":")
                start = Decimal(ts)
            except (binascii.Error, UnicodeDecodeError, InvalidOperation):
                raise ApiError("invalid_cursor") from None
            if prefix != "next_ts" or not start.is_finite():
                raise ApiError("invalid_cursor")
            items = [m for m in items if (Decimal(m.ts) <= start if newest_first else Decimal(m.ts) >= start)]
        page, rest = items[:limit], items[limit:]
        next_cursor = base64.b64encode(f"next_ts:{rest[0].ts}".encode()).decode() if rest else ""
        return page, next_cursor

    @staticmethod
    def _bound(args: Args, name: str, error: str) -> Decimal | None:
        """Read a ts bound (`oldest`/`latest`), None when absent."""
        value = args.text(name)
        if not value:
            return None
        try:
            bound = Decimal(value)
        except InvalidOperation:
            raise ApiError(error) from None
        if not bound.is_finite():
            raise ApiError(error)
        return bound

    # ----- Web API methods -----

    def _auth_test(self, _args: Args) -> dict[str, Any]:
        """auth.test: who the token belongs to; on Enterprise Grid also its organization (org-wide: the org's URL)."""
        org_wide = self.is_enterprise_install
        answer: dict[str, Any] = {
            "url": f"{self.url}/enterprise/{self.enterprise_id}/" if org_wide else f"{self.url}/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": self.is_enterprise_install,
        }
        if self.enterprise_id:
            answer["enterprise_id"] = self.enterprise_id
        return answer

    def _post_message(self, args: Args) -> dict[str, Any]:
        """chat.postMessage: store a bot message (optionally in a thread) with blocks and metadata."""
        channel = self._member_channel(args.text("channel"))
        text, blocks = self._content(args)
        metadata = self._metadata(args)
        thread_ts = args.text("thread_ts") or None
        if thread_ts:
            parent = self.find(channel, thread_ts)
            if parent is None or parent.deleted:
                raise ApiError("thread_not_found")
            thread_ts = parent.thread_ts or parent.ts
        ts = self.next_ts()
        message = Message(channel, ts, text or "", blocks or [], metadata, thread_ts, self.bot_user_id)
        self.store(message)
        return {"channel": channel, "ts": message.ts, "message": self._render(message, with_metadata=True)}

    def _update(self, args: Args) -> dict[str, Any]:
        """chat.update: rewrite a bot message; absent text, blocks or metadata keep their old values."""
        channel = self._channel_id(args.text("channel"))
        text, blocks = self._content(args)
        metadata = self._metadata(args)
        message = self.find(channel, args.text("ts"))
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        if message.user != self.bot_user_id:
            raise ApiError("cant_update_message")
        updated = replace(
            message,
            text=message.text if text is None else text,
            blocks=message.blocks if blocks is None else blocks,
            metadata=message.metadata if metadata is None else metadata,
            edits=message.edits + 1,
        )
        self.store(updated)
        rendered = self._render(updated, with_metadata=True)
        return {"channel": channel, "ts": updated.ts, "text": updated.text, "message": rendered}

    def _post_ephemeral(self, args: Args) -> dict[str, Any]:
        """chat.postEphemeral: record a message only `user` sees; they must be in the channel."""
        channel = self._member_channel(args.text("channel"))
        user = args.text("user")
        if not user or user not in self.users:
            raise ApiError("user_not_found")
        members = self.channels[channel].members
        if members is not None and user not in members:
            raise ApiError("user_not_in_channel")
        text, blocks = self._content(args)
        self.ephemerals.append(Ephemeral(channel, user, text or "", blocks or [], self.clock()))
        return {"message_ts": self.next_ts()}

    def _delete(self, args: Args) -> dict[str, Any]:
        """chat.delete: mark a bot message deleted (it stays visible to `messages()` with deleted=True)."""
        channel = self._channel_id(args.text("channel"))
        message = self.find(channel, args.text("ts"))
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        if message.user != self.bot_user_id:
            raise ApiError("cant_delete_message")
        self.store(replace(message, deleted=True))
        return {"channel": channel, "ts": message.ts}

    def _get_permalink(self, args: Args) -> dict[str, Any]:
        """chat.getPermalink: a loopback link to the message (with thread parameters for replies)."""
        channel = self._channel_id(args.text("channel"))
        message = self.find(channel, args.text("message_ts"))
        if message is None or message.deleted:
            raise ApiError("message_not_found")
        link = f"{self.url}/archives/{channel}/p{message.ts.replace('.', '')}"
        if message.thread_ts:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _history(self, args: Args) -> dict[str, Any]:
        """conversations.history: live top-level messages between oldest and latest, newest first, paged."""
        channel = self._member_channel(args.text("channel"))
        oldest = self._bound(args, "oldest", "invalid_ts_oldest")
        latest = self._bound(args, "latest", "invalid_ts_latest")
        inclusive = args.flag("inclusive")
        with_metadata = args.flag("include_all_metadata")

        def in_range(ts: Decimal) -> bool:
            """Whether a ts lies between the bounds (bounds included only when `inclusive`)."""
            above = oldest is None or ts > oldest or (inclusive and ts == oldest)
            below = latest is None or ts < latest or (inclusive and ts == latest)
            return above and below

        top = [m for m in self.messages(channel) if not m.thread_ts and not m.deleted and in_range(Decimal(m.ts))]
        page, next_cursor = self._page(top[::-1], args, newest_first=True)
        return {
            "messages": [self._render(m, with_metadata=with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _replies(self, args: Args) -> dict[str, Any]:
        """conversations.replies: a thread's parent then its live replies, oldest first, paginated."""
        channel = self._member_channel(args.text("channel"))
        parent = self.find(channel, args.text("ts"))
        if parent is not None and parent.thread_ts:
            parent = self.find(channel, parent.thread_ts)
        if parent is None or parent.deleted:
            raise ApiError("thread_not_found")
        with_metadata = args.flag("include_all_metadata")
        page, next_cursor = self._page([parent, *self.thread(channel, parent.ts)], args, newest_first=False)
        return {
            "messages": [self._render(m, with_metadata=with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _channel_info(self, cid: str) -> dict[str, Any]:
        """Render a conversation the way conversations.info returns it."""
        channel = self.channels[cid]
        is_im = cid.startswith("D")
        info: dict[str, Any] = {"id": cid, "is_channel": not is_im, "is_im": is_im, "is_private": channel.private}
        info.update(is_archived=False, is_member=channel.bot_member)
        if is_im:
            info["user"] = channel.name
        else:
            info["name"] = channel.name
        return info

    def _conversation_info(self, args: Args) -> dict[str, Any]:
        """conversations.info: id, name and whether the bot is a member."""
        return {"channel": self._channel_info(self._channel_id(args.text("channel")))}

    def _conversation_members(self, args: Args) -> dict[str, Any]:
        """conversations.members: the explicit member list, else the bot and every user."""
        cid = self._channel_id(args.text("channel"))
        channel = self.channels[cid]
        people = list(self.users) if channel.members is None else list(channel.members)
        if channel.bot_member and self.bot_user_id not in people:
            people.insert(0, self.bot_user_id)
        return {"members": people, "response_metadata": {"next_cursor": ""}}

    def _join(self, args: Args) -> dict[str, Any]:
        """conversations.join: make the bot a member (warning already_in_channel when it was one).

        As at Slack, a bot cannot join a private channel or a DM on its own: it must be invited.
        """
        cid = self._channel_id(args.text("channel"))
        answer: dict[str, Any] = {}
        if self.channels[cid].bot_member:
            answer["warning"] = "already_in_channel"
        elif self.channels[cid].private or cid.startswith("D"):
            raise ApiError("method_not_supported_for_channel_type")
        self.channels[cid].bot_member = True
        answer["channel"] = self._channel_info(cid)
        return answer

    def _open(self, args: Args) -> dict[str, Any]:
        """conversations.open: the bot's DM with one person (`users`), or an existing conversation (`channel`).

        A group DM (several users) is not served by the stand-in: it answers invalid_arguments.
        """
        users = [u.strip() for u in (args.text("users") or "").split(",") if u.strip()]
        channel = args.text("channel")
        if channel and not users:
            return {"channel": {"id": self._channel_id(channel)}}
        if not users:
            raise ApiError("users_list_not_supplied")
        if len(users) > 1:
            raise ApiError("invalid_arguments", messages=["[ERROR] the stand-in opens one-person DMs only"])
        if users[0] not in self.users:
            raise ApiError("user_not_found")
        was_open = "D" + users[0].removeprefix("U") in self.channels
        answer: dict[str, Any] = {"channel": {"id": self._channel_id(users[0])}}
        if was_open:
            answer.update(no_op=True, already_open=True)
        return answer

    def _user_info(self, args: Args) -> dict[str, Any]:
        """users.info: a person (or the bot user) with name, real_name and profile.display_name."""
        user = args.text("user") or ""
        if user == self.bot_user_id:
            name, is_bot = self.bot_name, True
        elif user in self.users:
            name, is_bot = self.users[user], False
        else:
            raise ApiError("user_not_found")
        profile = {"display_name": name, "real_name": name.title()}
        return {
            "user": {
                "id": user,
                "team_id": self.team_id,
                "name": name,
                "real_name": name.title(),
                "deleted": False,
                "is_bot": is_bot,
                "is_admin": user in self.admins or user in self.owners,
                "is_owner": user in self.owners,
                "is_primary_owner": bool(self.owners) and user == min(self.owners),
                "tz": "UTC",
                "profile": profile,
            }
        }

    def _usergroup_users(self, args: Args) -> dict[str, Any]:
        """usergroups.users.list: the members of a user group."""
        group = args.text("usergroup") or ""
        if group not in self.usergroups:
            raise ApiError("no_such_subteam")
        return {"users": list(self.usergroups[group])}


def _response_body(raw: bytes) -> dict[str, Any] | None:
    """The JSON object posted to a response URL; None unless it is an object whose text, if any, is a string."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("text") or "", str):
        return None
    return body
