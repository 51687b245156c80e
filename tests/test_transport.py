"""The Slack client's kept-alive connections (bot.slack.transport), against real loopback servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.error import URLError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.messenger import make_web_client
from bot.slack.transport import Connections


class _Handler(BaseHTTPRequestHandler):
    """Answers every POST with a small JSON body; closes the connection when the server says so."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Read the body, answer ok."""
        self.rfile.read(int(self.headers.get("content-length") or 0))
        server: _Server = self.server  # type: ignore[assignment]
        server.requests += 1
        body = b'{"ok": true, "ts": "1.0"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if server.close_after_answer:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if server.drop_idle:  # as a server that times idle connections out: closed right after the answer
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        """Quiet."""


class _Server(ThreadingHTTPServer):
    """Counts the connections it accepted and the requests it answered."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests = 0
        self.close_after_answer = False
        self.drop_idle = False

    def get_request(self) -> tuple[socket.socket, object]:
        """Count each accepted connection."""
        self.connections += 1
        return super().get_request()

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.server_address[1]}"


_S = TypeVar("_S", bound=ThreadingHTTPServer)


def _serving(running: _S) -> Iterator[_S]:
    """Serve `running` on a thread for one test; stop and close it afterwards."""
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join(5)


@pytest.fixture
def server() -> Iterator[_Server]:
    """A loopback HTTP/1.1 server, stopped after the test."""
    yield from _serving(_Server())


def _post(connections: Connections, url: str) -> bytes:
    answer = connections.request("POST", f"{url}/api/chat.update?x=1", b"{}", {"Content-Type": "application/json"})
    assert answer.status == 200
    return answer.body


def test_calls_share_one_kept_alive_connection(server: _Server) -> None:
    """Ten calls one after another open one connection."""
    connections = Connections(5)
    for _ in range(10):
        assert _post(connections, server.url) == b'{"ok": true, "ts": "1.0"}'
    connections.close()
    assert server.requests == 10
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(server: _Server) -> None:
    """A server that drops idle connections: every call still succeeds, each on a fresh connection."""
    server.drop_idle = True
    connections = Connections(5)
    for _ in range(5):
        _post(connections, server.url)
        time.sleep(0.05)  # idle a moment: the server's close has arrived
    connections.close()
    assert server.requests == 5
    assert server.connections == 5


def test_an_answer_that_says_close_is_not_reused(server: _Server) -> None:
    """`Connection: close` ends the connection: the next call opens another."""
    server.close_after_answer = True
    connections = Connections(5)
    _post(connections, server.url)
    _post(connections, server.url)
    assert server.connections == 2


def test_threads_never_share_a_connection_and_idle_ones_are_bounded(server: _Server) -> None:
    """Concurrent calls each get a connection of their own; at most `keep` stay open afterwards."""
    connections = Connections(5, keep=2)
    barrier = threading.Barrier(6)

    def call() -> None:
        barrier.wait(5)
        for _ in range(5):
            _post(connections, server.url)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert server.requests == 30
    idle = sum(len(kept) for kept in connections._idle.values())  # noqa: SLF001 - what is kept is the point
    assert idle <= 2


def test_a_refused_connection_is_a_url_error() -> None:
    """Nothing listens: URLError, as urlopen raises it (slack_sdk's connection-error handling applies)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(URLError):
        Connections(2).request("POST", f"http://127.0.0.1:{port}/api/x", b"{}", {})


def test_a_server_that_never_answers_times_out() -> None:
    """An accepted connection with no answer: TimeoutError after the timeout, and the connection is dropped."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            Connections(0.3).request("POST", f"http://127.0.0.1:{port}/api/x", b"{}", {})


def test_the_web_client_decodes_answers_and_keeps_its_connection(server: _Server) -> None:
    """Through slack_sdk's WebClient: the JSON answer is decoded, and consecutive calls use one connection."""
    client = make_web_client("xoxb-test", f"{server.url}/api/")
    for _ in range(3):
        assert client.chat_update(channel="C1", ts="1.0", text="hi")["ts"] == "1.0"
    client.close()  # type: ignore[attr-defined]
    assert server.connections == 1


class _ScriptedHandler(BaseHTTPRequestHandler):
    """Answers each request with the next of the server's scripted answers (then ok), noting what it was sent."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Note the request; answer as scripted ("drop": close without answering)."""
        server: _ScriptedServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        server.seen.append((self.path, dict(self.headers), body))
        status, answer = server.script.pop(0) if server.script else (200, b'{"ok": true, "ts": "1.0"}')
        if status == 0:
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(answer)
        self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        """Quiet."""


class _ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.script: list[tuple[int, bytes]] = []
        self.seen: list[tuple[str, dict[str, str], bytes]] = []


@pytest.fixture
def scripted() -> Iterator[_ScriptedServer]:
    """A loopback server answering as each test scripts it, stopped after the test."""
    yield from _serving(_ScriptedServer())


def _client(server: _ScriptedServer, errors: list[str]) -> WebClient:
    return make_web_client("xoxb-test", f"http://127.0.0.1:{server.server_address[1]}/api/", on_error=errors.append)


def test_a_card_update_is_sent_directly_as_slack_expects_it(scripted: _ScriptedServer) -> None:
    """chat.update skips slack_sdk's request building: one POST of the JSON, with the token, answered as before."""
    errors: list[str] = []
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approving…"}}]
    answer = _client(scripted, errors).chat_update(channel="C1", ts="1.0", text="t", blocks=blocks)
    assert answer["ts"] == "1.0"
    assert answer.status_code == 200
    [(path, headers, body)] = scripted.seen
    assert path == "/api/chat.update"
    assert headers["Authorization"] == "Bearer xoxb-test"
    assert headers["Content-Type"].startswith("application/json")
    assert headers["User-Agent"].startswith("Python/")  # slack_sdk's own user agent
    assert json.loads(body) == {"channel": "C1", "ts": "1.0", "text": "t", "blocks": blocks}
    assert errors == []


def test_a_direct_error_answer_raises_and_is_reported_once(scripted: _ScriptedServer) -> None:
    """`ok: false` raises SlackApiError with Slack's error, reported to on_error, and is not sent again."""
    errors: list[str] = []
    scripted.script = [(200, b'{"ok": false, "error": "message_not_found"}')]
    with pytest.raises(SlackApiError) as raised:
        _client(scripted, errors).chat_update(channel="C1", ts="1.0", text="t")
    assert raised.value.response["error"] == "message_not_found"
    assert errors == ["message_not_found"]
    assert len(scripted.seen) == 1


@pytest.mark.parametrize("first", [(429, b'{"ok": false, "error": "ratelimited"}'), (503, b"{}"), (0, b"")])
def test_a_direct_update_not_plainly_answered_goes_through_slack_sdk(
    scripted: _ScriptedServer, first: tuple[int, bytes]
) -> None:
    """A 429, a 5xx or a dropped connection: the update is sent again by slack_sdk, whose retries apply."""
    errors: list[str] = []
    scripted.script = [first, (429, b'{"ok": false, "error": "ratelimited"}')]  # slack_sdk's first try: 429 too
    answer = _client(scripted, errors).chat_update(channel="C1", ts="1.0", text="t")
    assert answer["ok"] is True
    assert len(scripted.seen) == 3  # direct, slack_sdk's try (429, Retry-After: 0), its retry
    assert {body for _path, _headers, body in scripted.seen} == {scripted.seen[0][2]}


def test_a_post_is_never_sent_directly(scripted: _ScriptedServer) -> None:
    """chat.postMessage is not idempotent: it goes through slack_sdk alone, so a 429 costs one retry, not two."""
    errors: list[str] = []
    scripted.script = [(429, b'{"ok": false, "error": "ratelimited"}')]
    assert _client(scripted, errors).chat_postMessage(channel="C1", text="t")["ok"] is True
    assert len(scripted.seen) == 2


def test_a_direct_update_that_times_out_is_not_sent_again() -> None:
    """A Slack that accepts and never answers: TimeoutError after one wait, as through slack_sdk (no second send)."""
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        client = make_web_client("xoxb-test", f"http://127.0.0.1:{listener.getsockname()[1]}/api/", timeout=1)
        try:
            with pytest.raises(TimeoutError):
                client.chat_update(channel="C1", ts="1.0", text="t")
        finally:
            stop.set()
            thread.join(5)
            for conn in accepted:
                conn.close()
    assert len(accepted) == 1
