"""A loopback stand-in for the Slack Web API: real HTTP on 127.0.0.1, observable state, injectable faults.

Point a real `slack_sdk.WebClient(token=..., base_url=standin.api_url)` at it. Every call is served under one
lock, so tests, the app and a browser may use it from any thread; what it observed is returned as immutable
snapshots (`calls`, `messages()`, `ephemerals`, `views`, `home_views`, `responses`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from bot.dev.standin.assistant import ThreadUpdate
from bot.dev.standin.blockkit import validate_blocks, validate_view
from bot.dev.standin.oauth import OAuth, Team
from bot.dev.standin.protocol import ApiError, Args
from bot.dev.standin.records import ApiCall, Ephemeral, Message, ResponseUrlPost, View
from bot.dev.standin.webapi import Workspace

__all__ = [
    "ApiCall",
    "Ephemeral",
    "Message",
    "ResponseUrlPost",
    "SlackStandIn",
    "ThreadUpdate",
    "View",
    "validate_blocks",
    "validate_view",
]

_log = logging.getLogger(__name__)

#: Channels and people a stand-in starts with unless told otherwise.
DEFAULT_CHANNELS = {"C0LEXI": "lexi-approvals"}
DEFAULT_USERS = {"UALICE": "alice", "UBOB": "bob", "UCAROL": "carol", "UDAVE": "dave"}

#: Largest request body read; anything bigger is answered invalid_arguments unread.
_MAX_BODY = 5 * 1024 * 1024
#: chat.postMessage per channel when `enforce_post_rate` is on: a burst of 3, then 1 per second.
_POST_BURST = 3.0
_POST_RATE = 1.0


@dataclass(frozen=True)
class _Fault:
    """An injected failure waiting for the next call to its method."""

    error: str
    status: int
    headers: dict[str, str]
    channel: str | None = None  # only a call about this channel fails (None: the next call, whatever its channel)


@dataclass
class _Hold:
    """A response held back: released by the test's event, dropped (never answered) when the server stops."""

    release: threading.Event
    call: ApiCall | None = None
    dropped: bool = False


@dataclass(frozen=True)
class _Reply:
    """An HTTP answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class SlackStandIn:
    """A Slack workspace with one bot user, served over loopback HTTP to slack_sdk, Bolt and a browser.

    It also installs the app into more workspaces through OAuth v2 (bot.dev.standin.oauth): point Bolt's
    `OAuthSettings(authorization_url=...)` at `authorize_url` and its WebClient at `api_url`. The workspace given
    here is the default one; the rest of this class observes and seeds it.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",  # noqa: S107 - the stand-in's fake token
        bot_user_id: str = "UBOT",
        team_id: str = "T0001",
        channels: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enforce_post_rate = False
        #: Socket Mode: the app-level token apps.connections.open accepts, and the WebSocket URL it hands out.
        self.app_token = "xapp-1-A0LEXI-test"
        self.socket_mode_url: str | None = None
        self._clock = clock
        self._lock = threading.RLock()
        self._held_changed = threading.Condition(self._lock)
        self._workspace = Workspace(
            bot_token=bot_token,
            bot_user_id=bot_user_id,
            team_id=team_id,
            channels=DEFAULT_CHANNELS if channels is None else channels,
            users=DEFAULT_USERS if users is None else users,
            clock=clock,
        )
        #: The app's OAuth side: credentials, token rotation, the teams that installed. Set its options
        #: (`token_rotation`, `token_lifetime`, `redirect_uri`, `installer`) before the install they concern.
        self.oauth = OAuth(clock=clock, new_workspace=self._new_workspace)
        self.oauth.add(Team(team_id, self._workspace.team_name, self._workspace), bot_token)
        self._calls: list[ApiCall] = []
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._holds: dict[str, deque[_Hold]] = defaultdict(deque)
        self._held: list[_Hold] = []
        self._buckets: dict[str, tuple[float, float]] = {}
        self._caller = ""  # the team whose token authenticated the call being served (under the lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Start serving on host:port (port 0: a free one) in a daemon thread and return self."""
        if self._server is not None:
            raise RuntimeError("the Slack stand-in is already running")
        server = _Server((host, port), self)
        self._workspace.url = f"http://{host}:{server.server_address[1]}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; held responses are dropped unanswered, as if Slack's connection had broken."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        with self._lock:
            self._holds.clear()
            for hold in self._held:
                if not hold.release.is_set():
                    hold.dropped = True
                    hold.release.set()
            self._held.clear()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        """Start (unless already running) and return self."""
        return self if self._server is not None else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def url(self) -> str:
        """The server's base URL, e.g. "http://127.0.0.1:PORT"."""
        if self._server is None:
            raise RuntimeError("the Slack stand-in is not running: call start() first")
        return self._workspace.url

    @property
    def api_url(self) -> str:
        """The Web API base URL for `slack_sdk.WebClient(base_url=...)` (with the trailing slash it needs)."""
        return f"{self.url}/api/"

    @property
    def authorize_url(self) -> str:
        """The consent page's URL, for Bolt's `OAuthSettings(authorization_url=...)`."""
        return f"{self.url}/oauth/v2/authorize"

    # ----- observation -----

    @property
    def bot_user_id(self) -> str:
        """The bot's own user id (auth.test's `user_id`; its messages carry it as `user`)."""
        return self._workspace.bot_user_id

    @property
    def bot_id(self) -> str:
        """The bot's bot id (auth.test's `bot_id`; its messages carry it as `bot_id`)."""
        return self._workspace.bot_id

    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API call so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls to one Web API method, in arrival order."""
        with self._lock:
            return [call for call in self._calls if call.method == method]

    @property
    def version(self) -> int:
        """A count that grows with every Web API call and response-URL post: poll it to notice changes."""
        with self._lock:
            return len(self._calls) + len(self._workspace.responses)

    def messages(self, channel: str) -> list[Message]:
        """A channel's messages, top-level and thread replies (deleted ones flagged), in post order."""
        with self._lock:
            return self._workspace.messages(channel)

    def message(self, channel: str, ts: str) -> Message | None:
        """The message with this ts in a channel as it stands now, None when there is none."""
        with self._lock:
            return self._workspace.find(channel, ts)

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The replies in a thread (not its parent; deleted ones flagged), in post order."""
        with self._lock:
            return [m for m in self._workspace.messages(channel) if m.thread_ts == thread_ts]

    def thread_updates(self, channel_id: str, thread_ts: str, kind: str | None = None) -> list[ThreadUpdate]:
        """What the app set on an assistant thread (statuses, prompts, titles; or only `kind`), oldest first."""
        with self._lock:
            return [
                update
                for update in self._workspace.assistant.updates
                if (update.channel_id, update.thread_ts) == (channel_id, thread_ts) and kind in (None, update.kind)
            ]

    def open_dm(self, user: str = "UALICE") -> str:
        """The id of the app's DM with `user` (D + their id without the U), where they can write to the bot."""
        with self._lock:
            return self._workspace.open_dm(user)

    def open_assistant_thread(self, user: str = "UALICE") -> Message:
        """`user` opens the app's assistant pane: Slack starts a thread in their DM (send assistant_thread_started)."""
        with self._lock:
            return self._workspace.open_assistant_thread(user)

    @property
    def ephemerals(self) -> list[Ephemeral]:
        """Every ephemeral message so far, in post order."""
        with self._lock:
            return list(self._workspace.ephemerals)

    def ephemerals_for(self, user: str) -> list[Ephemeral]:
        """The ephemeral messages one user saw, in post order."""
        with self._lock:
            return [e for e in self._workspace.ephemerals if e.user == user]

    @property
    def views(self) -> list[View]:
        """Every modal opened, updated or pushed so far, in order."""
        with self._lock:
            return list(self._workspace.views.views)

    @property
    def home_views(self) -> dict[str, dict[str, Any]]:
        """Each user's last published Home view, as Slack answered it."""
        with self._lock:
            return dict(self._workspace.views.home_views)

    @property
    def responses(self) -> list[ResponseUrlPost]:
        """Every accepted post to a response URL, in order."""
        with self._lock:
            return list(self._workspace.responses)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
        """Poll `predicate` until it returns something truthy and return that; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            error: Exception | None = None
            try:
                value = predicate()
            except Exception as exc:  # noqa: BLE001 - a predicate that is not ready yet may raise (IndexError, ...)
                value, error = None, exc
            if value:
                return value
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        recent = ", ".join(f"{c.method}:{'ok' if c.ok else c.error}" for c in self.calls[-8:]) or "none"
        outcome = f"raised {error!r}" if error else f"last returned {value!r}"
        name = getattr(predicate, "__qualname__", repr(predicate))
        raise AssertionError(f"{name} not true within {timeout} s ({outcome}); latest Slack calls: {recent}")

    # ----- building requests into the app -----

    def new_trigger_id(self, user: str = "UALICE") -> str:
        """A trigger_id for `user` that views.open/views.push accept once, within 3 seconds."""
        with self._lock:
            return self._workspace.views.issue_trigger(user)

    def new_response_url(
        self, *, channel: str | None = None, message_ts: str | None = None, user: str | None = None
    ) -> str:
        """A response URL (5 posts within 30 minutes); bound to a message/user, its posts also act on them."""
        with self._lock:
            return self._workspace.issue_response_url(channel, message_ts, user)

    def add_channel(self, channel_id: str, name: str, *, member: bool = True, private: bool = False) -> None:
        """Add (or reset) a channel; `member` says whether the bot is in it, `private` that it cannot join it."""
        with self._lock:
            self._workspace.add_channel(channel_id, name, member=member, private=private)

    def set_admin(self, user: str, *, owner: bool = False) -> None:
        """Make `user` a workspace admin (users.info is_admin), or with `owner` an owner."""
        with self._lock:
            (self._workspace.owners if owner else self._workspace.admins).add(user)

    def remove_bot_from(self, channel_id: str) -> None:
        """Take the bot out of a channel: posting and reading there then fail with not_in_channel."""
        with self._lock:
            self._workspace.channels[channel_id].bot_member = False

    def set_usergroup(self, group_id: str, users: list[str]) -> None:
        """Define (or redefine) a user group's members."""
        with self._lock:
            self._workspace.usergroups[group_id] = list(users)

    def set_members(self, channel_id: str, users: list[str]) -> None:
        """Give a channel an explicit member list (by default everyone is a member)."""
        with self._lock:
            self._workspace.channels[channel_id].members = list(users)

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "UALICE",
        blocks: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
        thread_ts: str | None = None,
        ts: str | None = None,
        bot_id: str = "",
    ) -> Message:
        """Seed a message as if someone (by default a person; the bot with user=bot_user_id) had posted it.

        With `bot_id`, another app's bot posted it: as its bot user (`user` set) or, like a legacy bot or an
        incoming webhook, with no user at all (`user=""`).
        """
        with self._lock:
            if ts is not None:
                try:
                    Decimal(ts)
                except InvalidOperation:
                    raise ValueError(f"not a Slack ts: {ts!r}") from None
            message = Message(
                channel,
                ts or self._workspace.next_ts(),
                text,
                list(blocks or []),
                metadata,
                thread_ts,
                user,
                bot_id=bot_id,
            )
            self._workspace.store(message)
            return message

    # ----- installs (OAuth v2) -----

    def deny_next_install(self, times: int = 1) -> None:
        """The next `times` installers click Cancel on the consent page (redirected with error=access_denied)."""
        with self._lock:
            self.oauth.deny_next(times)

    def revoke_tokens(self, team_id: str) -> int:
        """Revoke a team's tokens (as uninstalling the app does): calls with them answer token_revoked."""
        with self._lock:
            return self.oauth.revoke(team_id)

    def expire_tokens(self, team_id: str) -> None:
        """Let a team's tokens expire now: calls with them answer token_expired until a refresh gives a new one."""
        with self._lock:
            self.oauth.expire(team_id)

    def team_of(self, token: str) -> str | None:
        """The team a bot token was issued to, None for one never issued."""
        with self._lock:
            return self.oauth.team_of(token)

    def _new_workspace(self, team_id: str, name: str, enterprise_id: str | None) -> Workspace:
        """A workspace for a team installing for the first time: its own bot user and the default people.

        An organization installing org-wide (its id is the enterprise id) is one workspace here, too.
        """
        suffix = team_id.removeprefix("T").removeprefix("E")
        workspace = Workspace(
            bot_token="",
            bot_user_id=f"UBOT{suffix}",
            team_id=team_id,
            channels=DEFAULT_CHANNELS,
            users=DEFAULT_USERS,
            clock=self._clock,
            bot_id=f"B{suffix}",
            team_name=name,
            enterprise_id=enterprise_id,
            is_enterprise_install=team_id == enterprise_id,
        )
        workspace.url = self._workspace.url
        return workspace

    # ----- fault injection -----

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        times: int = 1,
        retry_after: int | None = None,
        status: int | None = None,
        channel: str | None = None,
    ) -> None:
        """Make the next `times` calls to `method` fail unapplied (ratelimited: HTTP 429 with Retry-After).

        With `channel`, only calls whose `channel` argument is that channel fail; the others go through.
        """
        if status is None:
            status = HTTPStatus.TOO_MANY_REQUESTS.value if error == "ratelimited" else HTTPStatus.OK.value
        headers = {}
        if status == HTTPStatus.TOO_MANY_REQUESTS or retry_after is not None:
            headers["Retry-After"] = str(1 if retry_after is None else retry_after)
        with self._lock:
            self._faults[method].extend(_Fault(error, status, headers, channel) for _ in range(times))

    def hold_next(self, method: str) -> threading.Event:
        """Apply the next call to `method` but hold its response until the returned event is set."""
        release = threading.Event()
        with self._lock:
            self._holds[method].append(_Hold(release))
        return release

    def wait_held(self, timeout: float = 5.0) -> ApiCall:
        """Wait until a held call has arrived (and was applied) and return it; AssertionError on timeout."""
        with self._held_changed:
            arrived = self._held_changed.wait_for(self._first_held, timeout=timeout)
            if arrived is None:
                waiting = sorted(method for method, queue in self._holds.items() if queue)
                raise AssertionError(f"no held call arrived within {timeout} s (holding: {waiting})")
            return arrived

    def _first_held(self) -> ApiCall | None:
        """The oldest held call whose response is still held back."""
        self._held = [hold for hold in self._held if not hold.release.is_set()]
        return self._held[0].call if self._held else None

    # ----- serving -----

    def serve_api(
        self,
        method: str,
        args: dict[str, Any] | None,
        bearer: str | None,
        basic: tuple[str, str] | None = None,
    ) -> _Reply | None:
        """Answer one Web API call (args None: the body was malformed); None means drop the connection.

        `bearer` is the token of an `Authorization: Bearer` header, `basic` the client id and secret of an
        `Authorization: Basic` one (oauth.v2.access).
        """
        hold: _Hold | None = None
        with self._lock:
            self._caller = ""
            try:
                reply = _Reply(200, {"ok": True, **self._apply(method, args, bearer, basic)})
            except ApiError as error:
                reply = _Reply(error.status, error.body(), error.headers)
            secret = {"token", "client_secret", "code", "refresh_token"}
            recorded = {key: value for key, value in (args or {}).items() if key not in secret}
            call = ApiCall(method, recorded, self._clock(), reply.body["ok"], reply.body.get("error"), self._caller)
            self._calls.append(call)
            queue = self._holds.get(method)
            if queue:
                hold = queue.popleft()
                hold.call = call
                self._held.append(hold)
                self._held_changed.notify_all()
        if hold is None:
            return reply
        hold.release.wait()
        return None if hold.dropped else reply

    def serve_response_url(self, token: str, body: bytes) -> _Reply:
        """Answer a post to a response URL."""
        with self._lock:
            status, answer = self._workspace.post_response(token, body)
        return _Reply(status, answer)

    def serve_authorize(self, query: str) -> _Reply:
        """Answer the consent page: a 302 back to the app's redirect URL, or a 400 when there is none to go to."""
        with self._lock:
            answer = self.oauth.authorize(dict(parse_qsl(query, keep_blank_values=True)))
        if answer.location is None:
            return _Reply(400, {"ok": False, "error": answer.error})
        return _Reply(302, {"ok": True}, {"Location": answer.location})

    def _apply(
        self, method: str, args: dict[str, Any] | None, bearer: str | None, basic: tuple[str, str] | None
    ) -> dict[str, Any]:
        """Authenticate, inject faults and rate limits, then run the method; raise ApiError to refuse."""
        if method in ("oauth.v2.access", "apps.connections.open"):
            return self._apply_app_level(method, args, bearer, basic)
        if method not in self._workspace.methods:
            raise ApiError("unknown_method")
        if args is None:
            raise ApiError("invalid_arguments")
        token = bearer or args.get("token")
        if not token:
            raise ApiError("not_authed")
        team = self.oauth.resolve(str(token))  # the bot token says which workspace's Web API this is
        self._caller = team.id
        handler = team.workspace.methods[method]
        faults = self._faults.get(method)
        fault = next((f for f in faults or () if f.channel in (None, args.get("channel"))), None)
        if fault is not None and faults is not None:
            faults.remove(fault)
            raise ApiError(fault.error, status=fault.status, headers=fault.headers)
        if method == "chat.postMessage" and self.enforce_post_rate:
            self._take_post_token(str(args.get("channel")))
        return handler(Args(args))

    def _apply_app_level(
        self, method: str, args: dict[str, Any] | None, bearer: str | None, basic: tuple[str, str] | None
    ) -> dict[str, Any]:
        """Run a method the app calls as itself, not as a workspace's bot: installs and Socket Mode."""
        if method == "oauth.v2.access":  # authenticated by the app's client id and secret
            if args is None:
                raise ApiError("invalid_arguments")
            return self.oauth.access(Args(args), basic)
        # Socket Mode: authenticated by the app-level token
        if (bearer or (args or {}).get("token")) != self.app_token:
            raise ApiError("invalid_auth")
        if self.socket_mode_url is None:
            raise ApiError("internal_error")
        return {"url": self.socket_mode_url}

    def _take_post_token(self, channel: str) -> None:
        """Spend one of a channel's post tokens (token bucket), or refuse with 429 ratelimited."""
        now = self._clock()
        tokens, last = self._buckets.get(channel, (_POST_BURST, now))
        tokens = min(_POST_BURST, tokens + (now - last) * _POST_RATE)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            raise ApiError("ratelimited", status=429, headers={"Retry-After": "1"})
        self._buckets[channel] = (tokens - 1, now)


class _Server(ThreadingHTTPServer):
    """The HTTP server, one daemon thread per request, knowing the stand-in it serves."""

    daemon_threads = True
    #: Connections waiting to be accepted. socketserver's 5 overflows when a hundred clients connect at once, and a
    #: dropped SYN is retried after a second: a benchmark's "slow" call that was the stand-in's accept queue.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], standin: SlackStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin


class _Handler(BaseHTTPRequestHandler):
    """Routes /api/<method> and /response/<token>; never lets a bad request escape as a crash."""

    server: _Server
    server_version = "SlackStandIn/1.0"
    #: Connections are kept alive between calls, as Slack's are (every answer carries its Content-Length).
    protocol_version = "HTTP/1.1"
    #: Seconds a client may stall mid-request before its connection is closed.
    timeout = 10

    def do_GET(self) -> None:
        """Serve a GET (Web API methods accept their arguments in the query string)."""
        self._route()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._route()

    def log_message(self, _fmt: str, *args: Any) -> None:
        """Log requests at debug level instead of printing them to stderr, without query strings (tokens)."""
        _log.debug("slack stand-in: %s %s", self.command, self.path.split("?", 1)[0])

    def _route(self) -> None:
        """Dispatch by path and send the answer (a 500 answer if the stand-in itself failed)."""
        try:
            reply = self._answer()
        except Exception:  # noqa: BLE001 - logged, and answered with a 500 as Slack would
            _log.exception("slack stand-in failed on %s %s", self.command, self.path)
            reply = _Reply(500, {"ok": False, "error": "internal_error"})
        if reply is None:
            self.close_connection = True
            return
        data = json.dumps(reply.body).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            _log.debug("slack stand-in: client went away before the answer to %s", self.path)

    def _answer(self) -> _Reply | None:
        """Read the request and let the stand-in answer it."""
        parts = urlsplit(self.path)
        body = self._read_body()
        standin = self.server.standin
        if parts.path.startswith("/api/") and len(parts.path) > len("/api/"):
            args = None if body is None else _parse_args(parts.query, body, self.headers.get_content_type())
            authorization = self.headers.get("Authorization", "")
            token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else None
            return standin.serve_api(parts.path[len("/api/") :], args, token, _basic(authorization))
        if parts.path == "/oauth/v2/authorize" and self.command == "GET":
            return standin.serve_authorize(parts.query)
        if parts.path.startswith("/response/") and self.command == "POST":
            return standin.serve_response_url(parts.path[len("/response/") :], body or b"")
        return _Reply(404, {"ok": False, "error": "not_found"})

    def _read_body(self) -> bytes | None:
        """Return the request body, None when its length is missing-but-malformed, negative or too large."""
        declared = self.headers.get("Content-Length")
        if not declared:
            return b""
        try:
            length = int(declared)
        except ValueError:
            return None
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length)


def _basic(authorization: str) -> tuple[str, str] | None:
    """The user and password of an `Authorization: Basic` header, None without a well-formed one."""
    if not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[len("Basic ") :].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _parse_args(query: str, body: bytes, content_type: str) -> dict[str, Any] | None:
    """Merge query-string and body arguments (form or JSON object); None when the body is malformed."""
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if not body:
        return args
    try:
        if content_type == "application/json":
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, dict):
                return None
            args.update(data)
        elif content_type in ("application/x-www-form-urlencoded", "text/plain"):
            args.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        else:
            return None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return args
