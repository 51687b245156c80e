"""A loopback TCP proxy that a test can cut and restore, to put a server (PostgreSQL) "away" for a while.

    proxy = TcpProxy("127.0.0.1", 5432)      # listens on 127.0.0.1:<free port>, forwards to the target
    proxy.start()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
    proxy.cut()       # drops every open connection and refuses new ones (connect gets ECONNREFUSED-like resets)
    proxy.resume()    # accepts and forwards again
    proxy.stop()      # closes everything; also a context manager

Everything runs in daemon threads bound to 127.0.0.1; no test code of ours is mocked.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from types import TracebackType
from typing import Self


class TcpProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port`, with a switch that cuts everything."""

    def __init__(self, target_host: str, target_port: int, listen_port: int = 0) -> None:
        """Bind the listening socket now (so `port` is known); forwarding starts with `start()`."""
        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)  # so the accept loop notices stop() promptly
        self.port: int = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._up = True
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy-accept", daemon=True)
        #: Connections accepted and forwarded, and connections refused while cut (for assertions and logs).
        self.accepted = 0
        self.refused = 0

    # -- the switch ---------------------------------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        """Whether the proxy forwards (False between `cut()` and `resume()`)."""
        return self._up

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until `resume()` (as a server that went away)."""
        with self._lock:
            self._up = False
            pairs, self._pairs = self._pairs, set()
        for client, upstream in pairs:
            # Shut down rather than close here: the pump thread is selecting on these sockets and closes them
            # itself (with a reset), so no file descriptor is reused while it still watches it.
            _shutdown(client)
            _shutdown(upstream)

    def resume(self) -> None:
        """Accept and forward new connections again."""
        with self._lock:
            self._up = True

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        """Start the accept thread; returns self so `with TcpProxy(...).start() as proxy:` reads well."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and the listener (bounded wait for the thread)."""
        self._stopped.set()
        self.cut()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> Self:
        """Start on entering a `with` block (if not started yet)."""
        if not self._thread.is_alive() and not self._stopped.is_set():
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on leaving a `with` block."""
        self.stop()

    # -- the work -----------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        """Accept clients; forward each through its own thread, or reset it at once while cut."""
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._up:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if not self._up:  # cut while we were connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self._pairs.add(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair,), name="tcp-proxy-pump", daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Copy bytes both ways until either side closes or the pair is cut."""
        client, upstream = pair
        peer = {client: upstream, upstream: client}
        sel = selectors.DefaultSelector()
        try:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while not self._stopped.is_set():
                with self._lock:
                    if pair not in self._pairs:
                        return
                for key, _ in sel.select(timeout=0.2):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            with self._lock:
                self._pairs.discard(pair)
            _reset(client)
            _reset(upstream)


def _shutdown(sock: socket.socket) -> None:
    """Stop both directions of `sock`, which wakes the thread that pumps it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    """Close `sock` with a TCP reset (SO_LINGER 0), the way a crashed server's connections end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
