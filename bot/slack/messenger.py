"""Everything the bot says in Slack about tasks: paced posts, card updates, thread replies, ephemerals."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web import SlackResponse

from bot.db.store import CopyRow, Store, TaskRow
from bot.lexi.models import Task, TaskState
from bot.slack import blocks, texts
from bot.slack.transport import Connections

log = logging.getLogger(__name__)

#: Tasks per render lock whose shown version the messenger remembers (64 locks: about 4,000 tasks in all).
SHOWN_PER_STRIPE = 64

#: What to tell a person for Slack errors that mean the setup is wrong.
SLACK_HINTS = {
    "not_in_channel": "the bot is not a member of the channel: invite it with /invite @lexi-bot",
    "channel_not_found": "SLACK_CHANNEL does not name a channel this bot can see: use the channel ID (C…)",
    "invalid_auth": "SLACK_BOT_TOKEN is not valid: copy the Bot User OAuth Token (xoxb-…) again",
    "not_authed": "SLACK_BOT_TOKEN is missing",
    "account_inactive": "the Slack app was uninstalled or its token revoked: reinstall the app",
    "token_revoked": "the Slack token was revoked: reinstall the app and update SLACK_BOT_TOKEN",
    "missing_scope": "the Slack app lacks a scope: recreate it from manifest.yml and reinstall it",
}


def slack_error_text(exc: SlackApiError) -> str:
    """A one-line explanation of a Slack API error, with what to do when we know."""
    error = str(exc.response.get("error", "unknown_error")) if exc.response is not None else "unknown_error"
    hint = SLACK_HINTS.get(error)
    return f"Slack said {error}: {hint}" if hint else f"Slack said {error}"


#: Slack errors that mean a card's copy is gone for good (deleted, its DM closed to the bot): it is given up.
COPY_GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message", "is_archived"})

#: Slack methods sent straight on the kept-alive connections (CountingWebClient._send_json): idempotent, so an answer
#: other than a plain 200 may be sent again through slack_sdk's own path, with its retries (429: Retry-After).
DIRECT_METHODS = frozenset({"chat.update", "views.publish"})

#: Slack errors that mean the bot's credentials no longer work.
AUTH_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


class CountingWebClient(WebClient):
    """A WebClient that reports every Slack API error to `on_error` and keeps its connections to Slack alive.

    slack_sdk sends each call with urllib on a new connection (a TLS handshake per call in production, and a
    measurable share of the bot's CPU per click here). This client keeps connections open (bot.slack.transport), in
    slack_sdk's own retry loop: an answer of 400 or more is raised as urllib's HTTPError, as urlopen raises it, so
    the retry handlers (429: wait Retry-After) and the error responses work as before. With a proxy configured,
    slack_sdk's own urllib path is used.
    """

    on_error: Callable[[str], None] | None = None
    #: Connections shared with other workspaces' WebClients (multi-workspace mode), used instead of its own.
    connections: Connections | None = None
    _http: Connections | None = None
    _http_lock = threading.Lock()

    def api_call(self, api_method: str, *args: Any, **kwargs: Any) -> Any:
        """Call Slack; report an error answer before raising it."""
        try:
            direct = self._send_json(api_method, kwargs) if not args else None
            return direct if direct is not None else super().api_call(api_method, *args, **kwargs)
        except SlackApiError as exc:
            if self.on_error is not None and exc.response is not None:
                self.on_error(str(exc.response.get("error", "unknown_error")))
            raise

    def _send_json(self, api_method: str, kwargs: dict[str, Any]) -> SlackResponse | None:
        """A card update or Home publish sent without slack_sdk's request machinery (a fifth of the CPU of each).

        Only a JSON POST of DIRECT_METHODS on the kept-alive connections, answered 200 with JSON: the answer is
        validated as slack_sdk validates it (`ok: false` raises SlackApiError). None for anything else, or when the
        exchange failed or was answered otherwise (a 429, a 5xx): slack_sdk's own path sends it then, with its retries.
        A timeout raises TimeoutError, as slack_sdk's path does (it never retries one).
        """
        payload = kwargs.get("json")
        if (
            api_method not in DIRECT_METHODS
            or set(kwargs) != {"json"}
            or not isinstance(payload, dict)
            or "token" in payload
            or self.default_params
            or not self.token
            or self.proxy is not None
            or not self.base_url.lower().startswith("http")
        ):
            return None
        url = self.base_url + api_method
        headers = {
            **self.headers,
            "Content-Type": "application/json;charset=utf-8",
            "Authorization": f"Bearer {self.token}",
        }
        try:
            answer = self._pool().request("POST", url, json.dumps(payload).encode("utf-8"), headers)
            if answer.status != HTTPStatus.OK or answer.headers.get_content_type() != "application/json":
                return None
            data = json.loads(answer.body.decode(answer.headers.get_content_charset() or "utf-8"))
        except (URLError, UnicodeDecodeError, ValueError):
            return None  # sent again through slack_sdk, which retries a broken connection as it always has
        # A TimeoutError propagates, as through slack_sdk (which never retries one): sending again would double the
        # time a Slack that does not answer holds the caller.
        if not isinstance(data, dict):
            return None
        response = SlackResponse(
            client=self,
            http_verb="POST",
            api_url=url,
            req_args={"json": payload},
            data=data,
            headers=dict(answer.headers),
            status_code=answer.status,
        )
        if not data.get("ok", False):  # as SlackResponse.validate() raises it (slack_sdk's error is untyped)
            message = f"The request to the Slack API failed. (url: {url})"
            raise SlackApiError(message, response)  # type: ignore[no-untyped-call]
        return response

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        """Send one prepared request on a kept-alive connection; answer as slack_sdk's urllib path does."""
        if self.proxy is not None or not url.lower().startswith("http"):
            return dict(super()._perform_urllib_http_request_internal(url, req))
        answer = self._pool().request(
            req.get_method(),
            url,
            req.data if isinstance(req.data, bytes) else None,
            {name: str(value) for name, value in req.header_items()},
        )
        headers = answer.headers
        if answer.status >= HTTPStatus.BAD_REQUEST:
            raise HTTPError(url, answer.status, answer.reason, headers, io.BytesIO(answer.body))
        if headers.get_content_type() == "application/gzip":
            return {"status": answer.status, "headers": headers, "body": answer.body}
        charset = headers.get_content_charset() or "utf-8"
        return {"status": answer.status, "headers": headers, "body": answer.body.decode(charset)}

    def _pool(self) -> Connections:
        """The client's kept-alive connections, created on first use (slack_sdk's `ssl` context and timeout apply).

        With shared connections (multi-workspace mode), those instead (closed by their owner).
        """
        if self.connections is not None:
            return self.connections
        with self._http_lock:
            if self._http is None:
                self._http = Connections(self.timeout, self.ssl)
            return self._http

    def close(self) -> None:
        """Close the kept-alive connections."""
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None


def make_web_client(
    token: str,
    base_url: str,
    *,
    timeout: int = 15,
    on_error: Callable[[str], None] | None = None,
    connections: Connections | None = None,
) -> WebClient:
    """A WebClient that waits out `ratelimited` answers (safe: a 429 means Slack applied nothing).

    With `connections`, its calls go through those shared connections instead of its own.
    """
    client = CountingWebClient(token=token, base_url=base_url, timeout=timeout)
    client.on_error = on_error
    client.connections = connections
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=5))
    return client


class Pacer:
    """Spaces calls per key (a channel) at least `interval` seconds apart, across threads."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next: dict[str, float] = defaultdict(float)
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    @contextmanager
    def slot(self, key: str) -> Iterator[None]:
        """Hold the key's slot: wait for its turn, run the body, and push the next turn `interval` later."""
        with self._guard:
            lock = self._locks[key]
        with lock:
            delay = self._next[key] - self._clock()
            if delay > 0:
                time.sleep(delay)
            try:
                yield
            finally:
                self._next[key] = self._clock() + self.interval


def card_for(row: TaskRow, confirm_above: blocks.ConfirmAbove | None = None) -> blocks.Card:
    """What the card of a task record should show (`confirm_above`, the policy's, sets the confirmation size)."""
    at: datetime | None = row.decided_at
    if row.state == TaskState.DECIDING:
        at = row.claimed_at
    quorum = row.approvals or {}
    return blocks.Card(
        state=TaskState.PENDING if row.state == TaskState.ANNOUNCING else row.state,
        actor=row.actor,
        action=row.action,
        at=at,
        reason=row.reason,
        note=row.note,
        approvals=tuple(quorum.get("by", [])),
        needed=int(quorum.get("needed", 1)),
        confirm_above=blocks.confirm_size(confirm_above, row.task),
        resumed=row.state == TaskState.DECIDING and row.resumed_at is not None,
    )


def card_metadata(row: TaskRow) -> dict[str, Any]:
    """The card's message metadata: the task id, plus the state it shows and who decided (ids only).

    With these, a bot whose database was lost rebuilds its records from the channel (Announcer.restore).
    """
    metadata = blocks.message_metadata(row.task_id)
    state = TaskState.PENDING if row.state in (TaskState.ANNOUNCING, TaskState.DECIDING) else row.state
    metadata["event_payload"].update({"state": state, **({"actor": row.actor} if row.actor else {})})
    return metadata


class Messenger:
    """Posts and updates the task messages; the only module that calls Slack's chat API for tasks."""

    def __init__(
        self,
        client: WebClient,
        store: Store,
        *,
        post_interval: float = 1.0,
        confirm_above: blocks.ConfirmAbove | None = None,
        on_card_change: Callable[[], object] | None = None,
    ) -> None:
        self.client = client
        self._store = store
        self._pacer = Pacer(post_interval)
        self.confirm_above = confirm_above  # per-type bulk-safety sizes (the policy's, bot.wiring)
        self.on_card_change = on_card_change  # called on any card change: refresh open Home tabs
        # A fixed pool of locks, striped by task id: renders of one task never interleave, and memory stays
        # constant however many tasks the bot has ever seen.
        self._render_locks = [threading.Lock() for _ in range(64)]
        # Per stripe (used under its lock), the version this process last showed of its most recent tasks: a record
        # handed to sync_card that is older than what was shown is not shown again (a card update that ran late).
        self._shown: list[dict[str, int]] = [{} for _ in self._render_locks]
        self._identity: tuple[str | None, str | None] | None = None  # (user_id, bot_id), from auth.test once
        self._dms: dict[str, str] = {}  # user id → the bot's DM with them (conversations.open), asked once

    def identity(self) -> tuple[str | None, str | None]:
        """The bot's own (user id, bot id) from auth.test, asked once; SlackApiError when Slack cannot say."""
        if self._identity is None:
            auth = self.client.auth_test()
            user_id, bot_id = auth.get("user_id"), auth.get("bot_id")
            self._identity = (
                user_id if isinstance(user_id, str) and user_id else None,
                bot_id if isinstance(bot_id, str) and bot_id else None,
            )
        return self._identity

    def own_user(self) -> str | None:
        """The bot's own user id (a channel or user group may list it), or None (logged) when Slack cannot say."""
        try:
            return self.identity()[0]
        except SlackApiError as exc:
            log.warning("could not ask Slack who the bot is: %s", slack_error_text(exc))
            return None

    def posted_by_me(self, message: dict[str, Any]) -> bool:
        """Whether Slack says this bot posted `message`: its `user` and `bot_id`, where present, are the bot's own.

        Slack sets both from the token that posted, so no one else can claim them; message metadata, by contrast,
        is whatever its poster attached.
        """
        user_id, bot_id = self.identity()
        user, bot = message.get("user"), message.get("bot_id")
        if not user and not bot:
            return False
        return (not user or user == user_id) and (not bot or bot == bot_id)

    def post_task(self, task: Task, channel: str) -> str:
        """Post a task's announcement (paced per channel) with its id as message metadata; return the ts."""
        message = blocks.render_card(
            task, blocks.Card(state=TaskState.PENDING, confirm_above=blocks.confirm_size(self.confirm_above, task))
        )
        with self._pacer.slot(channel):
            response = self.client.chat_postMessage(
                channel=channel,
                text=message["text"],
                blocks=message["blocks"],
                metadata=blocks.message_metadata(task.id),
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(response["ts"])

    def find_announcement(self, channel: str, task_id: str, oldest: float) -> str | None:
        """Find a message the bot posted for a task since `oldest` (from its metadata); its ts or None."""
        for ts, payload in self.announcements(channel, oldest):
            if payload.get("task_id") == task_id:
                return ts
        return None

    def announcements(self, channel: str, oldest: float) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every card this bot posted in a channel since `oldest`, newest first: (ts, metadata payload).

        Only the bot's own messages count (anyone can attach the cards' metadata type to a message); the payload
        is returned unchecked for the caller to validate. Paging is bounded.
        """
        yield from self._cards(
            lambda cursor: self.client.conversations_history(
                channel=channel, oldest=f"{oldest:.6f}", limit=200, include_all_metadata=True, cursor=cursor
            )
        )

    def find_in_thread(self, channel: str, thread_ts: str, task_id: str) -> str | None:
        """Find a card the bot posted for a task in a thread (a copy under Lexi's answer); its ts or None."""
        pages = self._cards(
            lambda cursor: self.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200, include_all_metadata=True, cursor=cursor
            )
        )
        for ts, payload in pages:
            if payload.get("task_id") == task_id and ts != thread_ts:
                return ts
        return None

    def _cards(self, read: Callable[[str | None], Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The bot's own cards among the pages `read(cursor)` answers (conversations.history or .replies)."""
        self.identity()  # before reading anything: without it, no message can be told to be ours
        cursor: str | None = None
        for _page in range(50):  # at most 50 pages of 200 messages
            response = read(cursor)
            for message in response.get("messages") or []:
                if not isinstance(message, dict) or not isinstance(message.get("ts"), str):
                    continue
                metadata = message.get("metadata")
                payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
                if (
                    isinstance(payload, dict)
                    and isinstance(metadata, dict)  # it is when payload is one; said again for mypy
                    and metadata.get("event_type") == blocks.METADATA_EVENT
                    and self.posted_by_me(message)
                ):
                    yield message["ts"], payload
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                return

    def sync_card(self, task_id: str, row: TaskRow | None = None) -> None:
        """Make every card of the task (its record's and each copy) show its current state (no-op when they do).

        `row`: the record as a transaction just left it (a claim's or an outcome's RETURNING), shown without reading
        it again. Had the record moved on by the time the card was updated (another thread or replica), it is read
        and shown once more, so the card never stays behind the record. The record's card is updated first and a
        failure there raises, as always (the caller retries it); a copy Slack does not update is logged and marked
        for the reconciler's next pass, never raised: one person's DM must not stop a decision. A copy whose
        message or channel is gone is given up (logged).
        """
        stripe = zlib.crc32(task_id.encode()) % len(self._render_locks)
        with self._render_locks[stripe]:
            known = self._shown[stripe]
            if row is not None and row.version <= known.get(task_id, 0):
                row = None  # this process already showed that version or a later one: read what is current
            shown, behind = self._render(task_id, row)
            if shown is not None and behind:  # the record moved past what was just shown: show what it holds now
                shown = self._render(task_id, None, newer_than=shown.version)[0] or shown
            if shown is not None:
                known.pop(task_id, None)
                if len(known) >= SHOWN_PER_STRIPE:
                    del known[next(iter(known))]  # the least recently shown
                known[task_id] = shown.version
            copied = self._sync_copies(task_id, shown)
        if (shown is not None or copied) and self.on_card_change is not None:
            self.on_card_change()

    def _sync_copies(self, task_id: str, shown: TaskRow | None) -> bool:
        """Make each posted copy show the record (`shown`: as the record's card now shows it); whether one changed.

        When only copies were behind (a repair), the task's mark is cleared once every copy is current.
        """
        row = shown if shown is not None else self._store.get(task_id)
        if row is None or not row.has_copies:  # most cards have none: their table is not read
            return False
        copies = [c for c in self._store.copies(task_id) if c.ts is not None]
        stale = [c for c in copies if c.rendered_version < row.version]
        if not stale:
            return False
        message = blocks.render_card(row.task, card_for(row, self.confirm_above))
        updated = [self._update_copy(row, copy, message) for copy in stale]  # each one, whatever the others did
        if not all(updated):
            self._store.render_again(task_id)
        elif shown is None and row.rendered_version >= row.version:  # the record's card was current: now all are
            self._store.rendered_everywhere(task_id, row.version)
        return True

    def _update_copy(self, row: TaskRow, copy: CopyRow, message: dict[str, Any]) -> bool:
        """Make one copy show the record's version; False when Slack refused for now (try again later)."""
        try:
            self.client.chat_update(
                channel=copy.channel,
                ts=copy.ts or "",
                text=message["text"],
                blocks=message["blocks"],
                metadata=card_metadata(row),
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            gone = error in COPY_GONE
            log.warning(
                "could not update the copy of task %s's card in %s (%s)%s",
                row.task_id[:100],
                copy.channel,
                slack_error_text(exc),
                "; it is no longer kept in sync" if gone else "; trying again later",
            )
            if not gone:
                return False
        except Exception as exc:  # noqa: BLE001 - a copy must never stop the decision that changed the card
            log.warning("could not update the copy of task %s's card in %s (%s)", row.task_id[:100], copy.channel, exc)
            return False
        self._store.mark_copy_rendered(row.task_id, copy.channel, row.version)
        return True

    def open_dm(self, user: str) -> str:
        """The bot's DM with `user` (conversations.open, asked once per person); SlackApiError when Slack refuses."""
        dm = self._dms.get(user)
        if dm is None:
            dm = self._dms[user] = str(self.client.conversations_open(users=user)["channel"]["id"])
        return dm

    def post_copy(self, task_id: str, channel: str, kind: str, thread_ts: str | None = None) -> str | None:
        """Post a copy of a task's card in `channel` (in the thread `thread_ts`), once: claimed before it is posted.

        Returns the copy's ts; None when the copy was already claimed, the task has no record, or Slack refused
        (logged; the claim is released). Any other failure (a timeout) keeps the claim: the copy may have been
        posted, and is never posted twice.
        """
        row = self._store.get(task_id)
        if row is None or not self._store.claim_copy(task_id, channel, kind, thread_ts):
            return None
        message = blocks.render_card(row.task, card_for(row, self.confirm_above))
        try:
            with self._pacer.slot(channel):
                response = self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=message["text"],
                    blocks=message["blocks"],
                    metadata=card_metadata(row),
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except SlackApiError as exc:
            self._store.release_copy(task_id, channel)
            log.warning(
                "could not post a copy of task %s's card in %s: %s", task_id[:100], channel, slack_error_text(exc)
            )
            return None
        ts = str(response["ts"])
        self._store.record_copy(task_id, channel, ts, rendered_version=row.version)
        return ts

    def _render(
        self, task_id: str, row: TaskRow | None, *, newer_than: int | None = None
    ) -> tuple[TaskRow | None, bool]:
        """Update the card from `row` (None: read it now): the record shown (None: none), and if the record is past it.

        The record is past it when it changed meanwhile, or another render recorded that version or a later one first.
        `newer_than`: show the record only if its version is newer than this, whatever it says was rendered.
        """
        if row is None:
            row = self._store.get(task_id)
        if row is None or row.message_ts is None:
            return None, False
        if row.version <= (newer_than if newer_than is not None else row.rendered_version):
            return None, False
        message = blocks.render_card(row.task, card_for(row, self.confirm_above))
        self.client.chat_update(
            channel=row.channel,
            ts=row.message_ts,
            text=message["text"],
            blocks=message["blocks"],
            metadata=card_metadata(row),
        )
        current = self._store.mark_rendered(task_id, row.version)
        return row, current != row.version

    def reply_final(self, row: TaskRow) -> None:
        """Post the one thread reply for a completed or failed task."""
        if row.message_ts is None or not self._store.claim_reply(row.task_id, row.state):
            return
        message = blocks.thread_reply(row.task, row.state, row.decided_at)
        self.client.chat_postMessage(
            channel=row.channel, thread_ts=row.message_ts, text=message["text"], blocks=message["blocks"]
        )

    def reply_in_thread(self, row: TaskRow, text: str) -> None:
        """Post a plain reply (a reminder) in the thread of a task's card and of each copy in someone's DM.

        SlackApiError when Slack refuses the card's; a copy's refusal is logged (its owner has the card's state).
        """
        self.client.chat_postMessage(channel=row.channel, thread_ts=row.message_ts, text=text)
        for copy in self._store.copies(row.task_id):
            if copy.kind != "dm" or copy.ts is None or copy.channel == row.channel:
                continue
            try:
                self.client.chat_postMessage(channel=copy.channel, thread_ts=copy.ts, text=text)
            except SlackApiError as exc:
                log.warning("task %s: no reply in its copy in %s: %s", row.task_id, copy.channel, slack_error_text(exc))

    def permalink(self, row: TaskRow) -> str:
        """A link to a task's card; SlackApiError when Slack cannot give one (ValueError: the task has no card)."""
        if row.message_ts is None:
            raise ValueError(f"task {row.task_id} has no card to link to")
        return str(self.client.chat_getPermalink(channel=row.channel, message_ts=row.message_ts)["permalink"])

    def linked(self, row: TaskRow) -> str:
        """A task's escaped line, linked to its card when Slack gives a link (for lists: answers, the digest)."""
        label = blocks.describe_task(row.task)
        if row.message_ts is None:
            return f"{label} (its card will appear in {texts.place(row.channel)} shortly)"
        try:
            return f"<{self.permalink(row)}|{label}>"
        except SlackApiError as exc:
            log.warning("no permalink for task %s: %s", row.task_id, slack_error_text(exc))
            return f"{label} (in {texts.place(row.channel)})"

    def tell(self, channel: str, user: str, text: str) -> bool:
        """Say something privately to one person in a channel; False (logged, never raised) when Slack refused."""
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as exc:
            log.warning("could not send an ephemeral message to %s: %s", user, slack_error_text(exc))
            return False
        return True

    def say(self, channel: str, text: str, **kwargs: Any) -> bool:
        """Post a plain notice to a channel (a user id: their DM); False when Slack refused (logged, never raised)."""
        try:
            self.client.chat_postMessage(channel=channel, text=text, **kwargs)
        except SlackApiError as exc:
            log.warning("could not post to %s: %s", channel, slack_error_text(exc))
            return False
        return True
