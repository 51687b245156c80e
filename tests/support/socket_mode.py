"""A loopback Socket Mode server for tests: hands envelopes to the connected app and collects its acks."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from websockets.sync.server import ServerConnection, serve


class SocketModeServer:
    """Plays Slack's side of a Socket Mode connection on 127.0.0.1."""

    def __init__(self) -> None:
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._connections: list[ServerConnection] = []
        self.acks: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The WebSocket URL apps.connections.open hands out."""
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=test"

    def start(self) -> SocketModeServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and stop serving."""
        self._server.shutdown()
        self._thread.join(timeout=5)

    def _handle(self, connection: ServerConnection) -> None:
        """Greet the app as Slack does, then record every message it sends (the acks)."""
        connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "connection_info": {"app_id": "A0LEXI"},
                    "debug_info": {"host": "test"},
                }
            )
        )
        with self._lock:
            self._connections.append(connection)
        for message in connection:
            with self._lock:
                self.acks.append(json.loads(message))

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until the app has connected."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._connections:
                    return
            time.sleep(0.02)
        raise AssertionError("the app never connected over Socket Mode")

    def send(self, envelope_type: str, payload: dict[str, Any], *, accepts_response_payload: bool = False) -> str:
        """Deliver one envelope to the app; return its id."""
        envelope_id = f"env-{time.monotonic_ns()}"
        message = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        with self._lock:
            connection = self._connections[-1]
        connection.send(json.dumps(message))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The app's ack of an envelope (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for ack in self.acks:
                    if ack.get("envelope_id") == envelope_id:
                        return ack
            time.sleep(0.02)
        raise AssertionError(f"no ack for {envelope_id}")
