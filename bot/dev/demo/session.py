"""What the demo's people do, sent to the bot exactly as Slack sends it: signed requests to /slack/events.

The page says *what* someone did (clicked the second button of block 4 of a message, submitted the open modal,
typed `/lexi tasks`); this module finds the element in what Slack shows, builds the payload with
`bot.dev.standin.payloads`, signs it, posts it to the bot, and plays Slack's part with the answer (modal errors,
closing the modal, showing a slash command's immediate reply). Each person also has a DM with the app: the
assistant pane is a thread there (opened with assistant_thread_started, written in with message.im events), and a
click on a message there is sent with that DM as its channel.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx

from bot.dev.demo import elements
from bot.dev.demo.elements import ActionError
from bot.dev.standin import payloads
from bot.dev.standin.records import Ephemeral
from bot.dev.standin.slack import SlackStandIn
from bot.slack.blocks import escape

#: Seconds Slack waits for an app to answer before it gives up (operation_timeout).
ACK_DEADLINE = 3.0
#: The longest message Slack lets a person send (the bot itself refuses more than /lexi ask allows).
MESSAGE_LIMIT = 40_000
#: The channel name Slack puts in interactive payloads from a direct message.
DM_CHANNEL_NAME = "directmessage"


@dataclass(frozen=True)
class Answer:
    """How one action went: the bot's HTTP status (0: no answer) and what Slack would say when it failed."""

    status: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The answer as the page reads it."""
        return {"ok": self.error is None, "status": self.status, "error": self.error}


@dataclass(frozen=True)
class Delivery:
    """One request the demo sent to the bot, for the panel."""

    kind: str
    summary: str
    status: int
    ms: float
    at: float


@dataclass(frozen=True)
class CommandReply:
    """A slash command's immediate answer, which Slack's client itself shows to the command's author."""

    user: str
    at: float
    text: str
    blocks: list[Any]


@dataclass
class _Modal:
    """The modal a person has open: the view as Slack shows it and the errors the bot returned."""

    view: dict[str, Any]
    errors: dict[str, str]


class Session:
    """Acts for the demo's people: clicks, modal submissions, slash commands, messages and opening Home."""

    def __init__(
        self,
        standin: SlackStandIn,
        bot_url: str,
        signing_secret: str,
        channel: str,
        channel_name: str,
        *,
        bot_user_id: str = "UBOT",
    ) -> None:
        self._standin = standin
        self._events_url = f"{bot_url}/slack/events"
        self._secret = signing_secret
        self._channel, self._channel_name = channel, channel_name
        self._bot_user_id = bot_user_id
        self._http = httpx.Client(timeout=ACK_DEADLINE)
        self._lock = threading.RLock()
        self._modals: dict[str, _Modal] = {}
        #: Each person's open assistant thread: the ts of its first message in their DM with the app.
        self._panes: dict[str, str] = {}
        self._views_seen = 0
        self._changes = 0
        self.replies: list[CommandReply] = []
        self.deliveries: deque[Delivery] = deque(maxlen=60)
        self.delivered = 0

    def close_client(self) -> None:
        """Release the HTTP connections to the bot."""
        self._http.close()

    @property
    def version(self) -> int:
        """A count that grows whenever something the demo itself shows changes (modals, posted messages)."""
        with self._lock:
            return self._changes

    # --- what a person does ---

    def click(self, user: str, where: dict[str, Any], block: int, element: int, selected: Any = None) -> Answer:
        """Click (or choose in) element `element` of block `block` (-1: the section's accessory) somewhere."""
        surface = where.get("surface")
        if surface == "message":
            return self._click_message(user, str(where.get("ts") or ""), block, element, selected)
        if surface == "dm":
            return self._click_message(user, str(where.get("ts") or ""), block, element, selected, dm=True)
        if surface == "ephemeral":
            return self._click_ephemeral(user, str(where.get("id", "")), block, element, selected)
        if surface in ("home", "modal"):
            return self._click_view(user, surface, block, element, selected)
        raise ActionError(f"unknown surface {surface!r}")

    def submit(self, user: str, values: dict[str, dict[str, Any]]) -> Answer:
        """Submit the person's open modal with the values typed or chosen, and apply the bot's response_action."""
        with self._lock:
            modal = self._modal(user)
            if modal is None:
                raise ActionError("no modal is open")
            view = modal.view
        payload = payloads.build_view_submission(
            callback_id=str(view.get("callback_id", "")),
            values=elements.state_values(view, values),
            private_metadata=str(view.get("private_metadata", "")),
            user=user,
            view_id=str(view.get("id", "V1")),
            trigger_id=self._standin.new_trigger_id(user),
        )
        payload["view"].update({k: view[k] for k in ("title", "blocks", "hash", "submit", "close") if k in view})
        answer, body = self._send(
            payloads.encode_interactive(payload), "view_submission", str(view.get("callback_id", ""))
        )
        if answer.error is None:
            self._apply_response_action(user, view, body)
        return answer

    def close(self, user: str) -> Answer:
        """Close the person's open modal, telling the bot when the modal asked to be notified."""
        with self._lock:
            modal = self._modal(user)
            self._modals.pop(user, None)
            self._changes += 1
        if modal is None or not modal.view.get("notify_on_close"):
            return Answer(200)
        payload = payloads.build_view_closed(
            callback_id=str(modal.view.get("callback_id", "")),
            private_metadata=str(modal.view.get("private_metadata", "")),
            user=user,
            view_id=str(modal.view.get("id", "V1")),
        )
        return self._send(payloads.encode_interactive(payload), "view_closed", payload["view"]["callback_id"])[0]

    def type_line(self, user: str, line: str) -> Answer:
        """Send what the person typed in the message box: a slash command, or a message to the channel."""
        line = line.strip()
        if not line:
            return Answer(200)
        if not line.startswith("/"):
            self._standin.add_message(self._channel, escape(line), user=user)  # Slack's client escapes & < >
            with self._lock:
                self._changes += 1
            return Answer(200)
        command, _, text = line.partition(" ")
        if command != "/lexi":
            return Answer(0, f"{command} is not a valid command. In Slack, messages starting with / are commands.")
        fields = payloads.build_slash_command(
            command=command,
            text=text.strip(),
            user=user,
            channel=self._channel,
            channel_name=self._channel_name,
            response_url=self._standin.new_response_url(channel=self._channel, user=user),
            trigger_id=self._standin.new_trigger_id(user),
        )
        sent_at = time.time()
        answer, body = self._send(payloads.encode_command(fields), "slash_command", line[:80])
        if answer.error is None and body:
            self._show_command_reply(user, sent_at, body)
        return answer

    def open_home(self, user: str) -> Answer:
        """Open the app's Home tab: Slack sends the app_home_opened event."""
        envelope = payloads.build_app_home_opened(user=user, bot_user_id=self._bot_user_id)
        return self._send(payloads.encode_event(envelope), "app_home_opened", "Home tab")[0]

    def open_pane(self, user: str, *, new: bool = False) -> Answer:
        """Open the assistant pane: Slack starts a thread in the person's DM and sends assistant_thread_started.

        The pane already open shows its thread again (nothing is sent); `new` starts another one ("New chat").
        """
        with self._lock:
            if user in self._panes and not new:
                return Answer(200)
            thread = self._standin.open_assistant_thread(user)
            self._panes[user] = thread.ts
            self._changes += 1
        envelope = payloads.build_assistant_thread_started(
            user=user,
            channel=thread.channel,
            thread_ts=thread.ts,
            context_channel=self._channel,
            bot_user_id=self._bot_user_id,
        )
        return self._send(payloads.encode_event(envelope), "assistant_thread_started", "Lexi pane opened")[0]

    def pane_thread(self, user: str) -> str | None:
        """The ts of the person's open assistant thread, None before they open the pane."""
        with self._lock:
            return self._panes.get(user)

    def ask(self, user: str, text: str) -> Answer:
        """Write to Lexi in the open pane: the message goes into its thread and Slack sends the message.im event."""
        thread_ts = self.pane_thread(user)
        if thread_ts is None:
            raise ActionError("the Lexi pane is not open")
        return self._write_dm(user, text, thread_ts)

    def write_dm(self, user: str, text: str) -> Answer:
        """Write a message in the person's DM with the app (not in a thread): the bot answers in a thread under it."""
        return self._write_dm(user, text, None)

    def _write_dm(self, user: str, text: str, thread_ts: str | None) -> Answer:
        """Post a person's message in their DM with the app (in a thread or not) and send its message.im event."""
        text = text.strip()[:MESSAGE_LIMIT]
        if not text:
            return Answer(200)
        channel = self._standin.open_dm(user)
        message = self._standin.add_message(channel, escape(text), user=user, thread_ts=thread_ts)
        with self._lock:
            self._changes += 1
        envelope = payloads.build_im_message(
            user=user,
            channel=channel,
            text=message.text,
            ts=message.ts,
            thread_ts=thread_ts,
            bot_user_id=self._bot_user_id,
        )
        kind = "message.im (Lexi pane)" if thread_ts else "message.im"
        return self._send(payloads.encode_event(envelope), kind, text[:80])[0]

    # --- what a person sees of the demo's own state ---

    def modal(self, user: str) -> dict[str, Any] | None:
        """The person's open modal with the errors to show under its fields, or None."""
        with self._lock:
            modal = self._modal(user)
            return None if modal is None else {"view": modal.view, "errors": dict(modal.errors)}

    # --- clicks ---

    def _click_message(
        self, user: str, ts: str, block: int, element: int, selected: Any, *, dm: bool = False
    ) -> Answer:
        """Click in a message of the channel (or of the person's DM with the app, `dm`), as block_actions with it."""
        channel = self._standin.open_dm(user) if dm else self._channel
        message = self._standin.message(channel, ts)
        if message is None or message.deleted:
            raise ActionError("the message is gone")
        action = elements.block_action(message.blocks, block, element, selected)
        shown = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "blocks": message.blocks,
        }
        if message.user == self._bot_user_id:
            shown.update(bot_id=payloads.BOT_ID, app_id=payloads.API_APP_ID)
        container = {"type": "message", "message_ts": message.ts, "channel_id": channel, "is_ephemeral": False}
        if message.thread_ts:
            shown["thread_ts"] = container["thread_ts"] = message.thread_ts
        payload = self._block_action(
            user, action, message_ts=message.ts, message=shown, container=container, channel=channel
        )
        return self._send_action(payload, action)

    def _click_ephemeral(self, user: str, ephemeral_id: str, block: int, element: int, selected: Any) -> Answer:
        """Click in an ephemeral message: Slack sends no message, only a container marked ephemeral."""
        found = self.ephemeral(user, ephemeral_id)
        if found is None:
            raise ActionError("no such ephemeral message")
        at, shown_blocks, channel = found
        action = elements.block_action(shown_blocks, block, element, selected)
        ts = f"{at:.6f}"
        payload = self._block_action(
            user,
            action,
            message_ts=None,
            message=None,
            container={
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": True,
            },
            channel=channel,
        )
        payload.pop("message", None)
        return self._send_action(payload, action)

    def _click_view(self, user: str, surface: str, block: int, element: int, selected: Any) -> Answer:
        """Click in the Home tab or the open modal: the payload carries the view instead of a message."""
        with self._lock:
            modal = self._modal(user)
        view = modal.view if surface == "modal" and modal else self._standin.home_views.get(user)
        if view is None:
            raise ActionError(f"no {surface} is open")
        action = elements.block_action(view.get("blocks") or [], block, element, selected)
        payload = self._block_action(
            user, action, message_ts=None, message=None, container={"type": "view", "view_id": view.get("id")}
        )
        for key in ("channel", "message", "response_url"):
            payload.pop(key, None)
        payload["view"] = view
        return self._send_action(payload, action)

    def _block_action(
        self,
        user: str,
        action: dict[str, Any],
        *,
        message_ts: str | None,
        message: dict[str, Any] | None,
        container: dict[str, Any] | None = None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        """A block_actions payload for `action` (in the channel, or `channel`) with a fresh trigger and response URL."""
        channel = channel or self._channel
        payload = payloads.build_block_action(
            action_id=action["action_id"],
            value=str(action.get("value", "")),
            user=user,
            channel=channel,
            channel_name=self._channel_name if channel == self._channel else DM_CHANNEL_NAME,
            message_ts=message_ts,
            message=message,
            trigger_id=self._standin.new_trigger_id(user),
            response_url=self._standin.new_response_url(channel=channel, message_ts=message_ts, user=user),
            block_id=action["block_id"],
            container=container,
        )
        payload["actions"] = [action]
        return payload

    def _send_action(self, payload: dict[str, Any], action: dict[str, Any]) -> Answer:
        """Send a block_actions payload."""
        return self._send(payloads.encode_interactive(payload), "block_actions", action["action_id"])[0]

    # --- Slack's side of the bot's answers ---

    def _apply_response_action(self, user: str, view: dict[str, Any], body: dict[str, Any] | None) -> None:
        """Close, update or keep the modal as the bot's answer to a submission says."""
        response_action = (body or {}).get("response_action")
        with self._lock:
            self._changes += 1
            if response_action == "errors":
                errors = (body or {}).get("errors") or {}
                self._modals[user] = _Modal(view, {str(k): str(v) for k, v in errors.items()})
            elif response_action in ("update", "push") and isinstance((body or {}).get("view"), dict):
                new = elements.with_ids({**(body or {})["view"], "id": view.get("id"), "hash": f"{time.time():.6f}"})
                self._modals[user] = _Modal(new, {})
            else:
                self._modals.pop(user, None)

    def _show_command_reply(self, user: str, at: float, body: dict[str, Any]) -> None:
        """Show a slash command's immediate answer as Slack does: to its author only, unless in_channel."""
        text, shown_blocks = str(body.get("text") or ""), list(body.get("blocks") or [])
        if not text and not shown_blocks:
            return
        if body.get("response_type") == "in_channel":
            self._standin.add_message(self._channel, text, user=self._bot_user_id, blocks=shown_blocks)
        with self._lock:
            if body.get("response_type") != "in_channel":
                self.replies.append(CommandReply(user, at, text, shown_blocks))
            self._changes += 1

    def ephemeral(self, user: str, ephemeral_id: str) -> tuple[float, list[Any], str] | None:
        """When an ephemeral shown to `user` arrived, its blocks and channel: "e<n>" the stand-in's, "c<n>" a reply."""
        kind, number = ephemeral_id[:1], ephemeral_id[1:]
        if not number.isdigit():
            return None
        shown = self._standin.ephemerals if kind == "e" else self.replies if kind == "c" else []
        if int(number) >= len(shown) or shown[int(number)].user != user:
            return None
        item = shown[int(number)]
        return item.at, item.blocks, item.channel if isinstance(item, Ephemeral) else self._channel

    def _modal(self, user: str) -> _Modal | None:
        """The person's open modal, after taking in the views the bot opened or updated since the last look."""
        views = self._standin.views
        for shown in views[self._views_seen :]:
            current = self._modals.get(shown.user)
            if shown.kind != "update" or (current and current.view.get("id") == shown.view.get("id")):
                self._modals[shown.user] = _Modal(elements.with_ids(shown.view), {})
                self._changes += 1
        self._views_seen = len(views)
        return self._modals.get(user)

    def _send(self, encoded: tuple[bytes, str], kind: str, summary: str) -> tuple[Answer, dict[str, Any] | None]:
        """POST a signed request to the bot within Slack's deadline; return the answer and any JSON body."""
        body, content_type = encoded
        headers = payloads.signed_request(self._secret, body, content_type)
        started = time.monotonic()
        try:
            response = self._http.post(self._events_url, content=body, headers=headers)
        except httpx.TimeoutException:
            answer, data = Answer(0, "operation_timeout"), None
        except httpx.HTTPError:
            answer, data = Answer(0, "dispatch_failed"), None
        else:
            data = _json_body(response)
            answer = Answer(response.status_code, None if response.status_code == HTTPStatus.OK else "dispatch_failed")
        with self._lock:
            self.deliveries.append(
                Delivery(kind, summary, answer.status, (time.monotonic() - started) * 1000, time.time())
            )
            self.delivered += 1
        return answer, data


def _json_body(response: httpx.Response) -> dict[str, Any] | None:
    """The bot's answer as JSON (a plain-text answer becomes {"text": …}); None when empty."""
    text = response.text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"text": text}
    return data if isinstance(data, dict) else None
