"""Issue 11: the HTTP front under hostile input — malformed, oversized, slow and idle requests."""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from bot.dev.sandbox import Sandbox
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.ops.server import MAX_BODY, make_wsgi
from bot.slack import blocks
from bot.slack.app import create_app
from tests.support.harness import BotHarness, bot_env
from tests.support.process import BotProcess, clean_env, free_port

FORM = "application/x-www-form-urlencoded"

#: Bodies Slack never sends, each with the content type it is sent with: all must be refused as malformed.
MALFORMED = [
    (b"null", "application/json"),
    (b"true", "application/json"),
    (b"3", "application/json"),
    (b'"x"', "application/json"),
    (b"[1, 2]", "application/json"),
    (b"{not json", "application/json"),
    (b"{\xff\xfe}", "application/json"),
    (b"\xc3\x28=1", FORM),
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    (urlencode({"payload": "not json"}).encode(), FORM),
    (urlencode({"payload": "[1, 2]"}).encode(), FORM),
    (urlencode({"payload": "null"}).encode(), FORM),
    (urlencode({"payload": "[" * 50_000}).encode(), FORM),
    (b'{"type": "event_callback", "event": []}', "application/json"),
    (b'{"type": "event_callback", "authorizations": 3}', "application/json"),
    (b'{"type": "block_actions", "enterprise": 5, "team": []}', "text/plain"),
    (b"\x00\x01\x02", "application/octet-stream"),
]


def _address(bot: BotHarness) -> tuple[str, int]:
    """The bot's host and port."""
    parts = urlsplit(bot.url)
    return parts.hostname or "127.0.0.1", int(parts.port or 80)


def _is_utf8(body: bytes) -> bool:
    """Whether `body` is UTF-8 text (Slack signs text, so other bytes cannot carry its signature)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _status_line(sock: socket.socket) -> bytes:
    """The first line of the server's answer on `sock` (bounded by the socket's timeout)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED, ids=[f"body{i}" for i in range(len(MALFORMED))])
def test_signed_malformed_slack_requests_are_refused_with_400(bot: BotHarness, body: bytes, content_type: str) -> None:
    """A correctly signed body that is not a Slack payload gets a 400 (401 if not UTF-8), never a 5xx or a 200."""
    response = bot.post(body, content_type)
    assert response.status_code == (400 if _is_utf8(body) else 401), response.text
    assert "Traceback" not in response.text
    assert bot.http.get(f"{bot.url}/healthz").status_code == 200


@pytest.mark.parametrize(("body", "content_type"), MALFORMED, ids=[f"body{i}" for i in range(len(MALFORMED))])
def test_unsigned_malformed_slack_requests_are_refused_with_401(
    bot: BotHarness, body: bytes, content_type: str
) -> None:
    """Without a valid signature a request is refused with 401 before its body is parsed."""
    response = bot.http.post(f"{bot.url}/slack/events", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=\u00e9\u00e9".encode("latin-1")},
        {"X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": "v0=00"},
        {"X-Slack-Signature": "v0=00"},
        {},
    ],
    ids=["word-timestamp", "latin1-signature", "huge-timestamp", "no-timestamp", "no-headers"],
)
def test_broken_signature_headers_are_refused_with_401(bot: BotHarness, headers: dict[str, str | bytes]) -> None:
    """Missing, non-numeric or non-ASCII signature headers get a 401, never a 5xx."""
    body = json.dumps({"type": "url_verification", "challenge": "c"}).encode()
    response = bot.http.post(
        f"{bot.url}/slack/events", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == 401


def test_stale_signatures_are_refused_with_401(bot: BotHarness) -> None:
    """A request signed correctly but more than five minutes ago is refused."""
    body, content_type = payloads.encode_command(payloads.build_slash_command(text="help"))
    response = bot.post(body, content_type, timestamp=int(time.time()) - 6 * 60)
    assert response.status_code == 401
    assert bot.post(body, content_type, secret="another-secret-0123456789").status_code == 401


def test_unknown_paths_get_404_and_wrong_methods_405(hooked: BotHarness) -> None:
    """Unknown paths answer 404; known paths asked with the wrong method answer 405 with Allow."""
    http, url = hooked.http, hooked.url
    assert http.get(f"{url}/nope").status_code == 404
    assert http.post(f"{url}/slack/events/extra").status_code == 404
    for method, path, allowed in [
        ("GET", "/slack/events", "POST"),
        ("PUT", "/slack/events", "POST"),
        ("GET", "/lexi/webhooks", "POST"),
        ("DELETE", "/lexi/webhooks", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("PUT", "/readyz", "GET, HEAD"),
    ]:
        response = http.request(method, f"{url}{path}")
        assert response.status_code == 405, (method, path)
        assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("path", ["/slack/events", "/lexi/webhooks"])
def test_a_huge_declared_body_is_refused_before_it_is_read(hooked: BotHarness, path: str) -> None:
    """A 100 MiB Content-Length is answered 413 after the headers, without the bot waiting for the body."""
    with socket.create_connection(_address(hooked), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
            + b"{" * 65536
        )
        assert b" 413 " in _status_line(sock)
    assert hooked.http.get(f"{hooked.url}/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/slack/events", "/lexi/webhooks"])
def test_a_chunked_body_is_cut_off_at_the_limit(hooked: BotHarness, path: str) -> None:
    """A body without Content-Length (chunked) is refused with 413 once it passes the limit, not read to its end."""
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(_address(hooked), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < 16 * MAX_BODY:  # never the final chunk: only the limit can end this request
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed while we were still sending
        assert b" 413 " in _status_line(sock)
    assert sent < 16 * MAX_BODY


@pytest.mark.parametrize("path", ["/slack/events", "/lexi/webhooks"])
def test_a_body_just_over_the_limit_is_refused_and_one_under_is_read(hooked: BotHarness, path: str) -> None:
    """The limit is about 1 MiB on both endpoints: a larger signed body is refused, a smaller one is judged."""
    big = b'{"pad": "' + b"x" * MAX_BODY + b'"}'
    response = (
        hooked.post(big, "application/json")
        if path == "/slack/events"
        else hooked.http.post(f"{hooked.url}{path}", content=big)
    )
    assert response.status_code == 413
    small = b'{"pad": "' + b"x" * (MAX_BODY - 100) + b'"}'
    response = (
        hooked.post(small, "application/json")
        if path == "/slack/events"
        else hooked.http.post(f"{hooked.url}{path}", content=small)
    )
    assert response.status_code in (400, 401)


class _Endless(io.RawIOBase):
    """A request body that never ends, counting what was read of it."""

    def __init__(self) -> None:
        self.taken = 0

    def readable(self) -> bool:
        """It can be read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill the buffer with more of the body."""
        buffer[:] = b"x" * len(buffer)
        self.taken += len(buffer)
        return len(buffer)


@pytest.mark.parametrize("length", [None, "10"])
def test_the_front_itself_stops_reading_at_the_limit(bot: BotHarness, length: str | None) -> None:
    """Behind any WSGI server, a body without Content-Length (or longer than it claims) is read only to the limit."""
    wsgi = make_wsgi(create_app(bot.runtime), health=bot.runtime.health)
    stream = _Endless()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "wsgi.input": stream,
        "CONTENT_TYPE": "application/json",
        **({"CONTENT_LENGTH": length} if length else {}),
    }
    statuses: list[str] = []
    wsgi(environ, lambda status, _headers: statuses.append(status))
    if length is None:
        assert statuses == ["413 Payload Too Large"] and stream.taken <= MAX_BODY + 1
    else:
        assert statuses == ["401 Unauthorized"] and stream.taken == 10


def test_idle_and_slow_connections_do_not_starve_the_bot(bot: BotHarness, sandbox: Sandbox) -> None:
    """With 150 idle connections and 50 half-sent requests open, /healthz and a signed click still answer."""
    task_id = sandbox.add_task("prospect_search", "Find CFOs")["id"]
    bot.poll()
    address = _address(bot)
    sockets: list[socket.socket] = []
    try:
        sockets.extend(socket.create_connection(address, timeout=5) for _ in range(150))
        for _ in range(50):  # slowloris: a request line and a header, then nothing
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            sockets.append(sock)
        fresh = httpx.Client(timeout=10)  # a new connection, as a new Slack request would open
        try:
            assert fresh.get(f"{bot.url}/healthz").status_code == 200
        finally:
            fresh.close()
        bot.http.close()
        bot.http = httpx.Client(timeout=10)
        assert bot.click(blocks.APPROVE_ACTION, task_id).status_code == 200
        bot.settle()
        assert sandbox.task(task_id)["status"] == "approved"
    finally:
        for sock in sockets:
            sock.close()


def _peak_rss_kib(pid: int) -> int:
    """A process's peak resident memory (VmHWM), in KiB."""
    with Path(f"/proc/{pid}/status").open() as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_an_unsigned_100_mib_post_does_not_raise_the_bots_memory(
    sandbox: Sandbox, slack: SlackStandIn, tmp_path: Path
) -> None:
    """A real `lexi-bot run` sent an unsigned 100 MiB body answers 413 and its peak memory stays where it was."""
    port = free_port()
    env = clean_env(**bot_env(sandbox, slack, f"sqlite:///{tmp_path / 'bot.db'}", PORT=str(port)))
    proc = BotProcess(["run", "--host", "127.0.0.1"], env, tmp_path)
    try:
        proc.wait_healthy(port)
        before = _peak_rss_kib(proc.proc.pid)
        size, block = 100 * 1024 * 1024, b"{" * (1024 * 1024)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(
                f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            try:
                for _ in range(size // len(block)):
                    sock.sendall(block)
            except OSError:
                pass  # refused and closed before we finished sending: what we want
            assert b" 413 " in _status_line(sock)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        assert _peak_rss_kib(proc.proc.pid) - before < 32 * 1024, proc.output
    finally:
        proc.stop()
