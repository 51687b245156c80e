"""The loopback TCP proxy that database-outage tests put in front of PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from tests.support.tcp_proxy import TcpProxy


def _echo_server() -> tuple[socket.socket, int]:
    """A 127.0.0.1 server that echoes every connection until it closes (daemon threads)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)

    def serve() -> None:
        """Accept clients until the server socket is closed."""
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        """Send back whatever arrives."""
        with conn, contextlib.suppress(OSError):  # the proxy resets connections when cut
            while data := conn.recv(4096):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


def _roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    """Connect to `port`, send `payload` and return what comes back (bounded by a timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def _echoed(sock: socket.socket, payload: bytes) -> bytes:
    """Send `payload` on an open connection and return the echo; a connection closed without one raises."""
    sock.sendall(payload)
    echo = sock.recv(16)
    if not echo:
        raise ConnectionResetError("closed")
    return echo


def _open_roundtrip(port: int) -> bytes:
    """A round trip on a new connection to `port`; a connection closed without an answer raises."""
    data = _roundtrip(port)
    if not data:
        raise ConnectionResetError("closed")
    return data


def test_proxy_forwards_cuts_and_resumes() -> None:
    """The proxy forwards bytes, breaks open connections and refuses new ones when cut, and forwards again after."""
    server, port = _echo_server()
    with server, TcpProxy("127.0.0.1", port) as proxy:
        assert _roundtrip(proxy.port) == b"ping"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        held.sendall(b"a")
        assert held.recv(16) == b"a"
        proxy.cut()
        with pytest.raises(OSError):  # noqa: PT011 - reset, broken pipe or closed: which one depends on timing
            _echoed(held, b"b")  # the open connection was reset …
        held.close()
        with pytest.raises(OSError):  # noqa: PT011 - refused, reset or closed: which one depends on timing
            _open_roundtrip(proxy.port)  # … and a new one gets nowhere
        proxy.resume()
        assert _roundtrip(proxy.port, b"back") == b"back"
        assert proxy.refused >= 1
