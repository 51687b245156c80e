"""The side-by-side's clicking client (bench/clicker.py), in its own process against a loopback server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from slack_sdk.signature import SignatureVerifier

SECRET = "clicker-secret"


class _Handler(BaseHTTPRequestHandler):
    """200 for a request signed with SECRET, 401 otherwise."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        """Check the signature as Slack's receivers do; note the body."""
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        valid = SignatureVerifier(SECRET).is_valid_request(body, dict(self.headers))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        self.send_response(200 if valid and self.path == "/slack/events" else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        """Quiet."""


def test_the_clicker_signs_each_click_and_reports_its_answer() -> None:
    """Each click is signed when sent; the answers come back in order with their send times and statuses."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        clicks = [[f"t-{n}", f"payload=%7B%22n%22%3A{n}%7D", "application/x-www-form-urlencoded"] for n in range(5)]
        job = {"url": f"http://127.0.0.1:{server.server_address[1]}", "secret": SECRET, "concurrency": 2}
        before = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "bench.clicker"],
            input=json.dumps({**job, "clicks": clicks}),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
            check=True,
        )
        report = json.loads(done.stdout)
        answers = report["answers"]
        assert 0 < report["seconds"] < time.time() - before  # the sending alone, not the process's start
        assert report["machine_busy"] >= 0
        assert [a[0] for a in answers] == [f"t-{n}" for n in range(5)]
        assert all(a[3] == 200 and before <= a[1] <= time.time() and 0 < a[2] < 30 for a in answers)
        assert sorted(server.bodies) == sorted(c[1].encode() for c in clicks)  # type: ignore[attr-defined]
        wrong = subprocess.run(
            [sys.executable, "-m", "bench.clicker"],
            input=json.dumps({**job, "secret": "not-it", "clicks": clicks[:1]}),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
            check=True,
        )
        assert json.loads(wrong.stdout)["answers"][0][3] == 401  # the signature is really checked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
