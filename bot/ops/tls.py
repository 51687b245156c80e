"""The process's outgoing HTTPS: one TLS context, and the HTTP clients every workspace's clients share."""

from __future__ import annotations

import functools
import ssl
import threading
import weakref
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

__all__ = ["SharedConnections", "client_context"]


@functools.cache
def client_context() -> ssl.SSLContext:
    """The default verifying context of httpx, built once per process (a context may serve any number of clients).

    Each build loads the CA bundle: about 20 ms of CPU and 0.8 MiB of native memory. Built per client, that was
    two per workspace in multi-workspace mode, 1.6 MiB and 40 ms each (bench.workspaces).
    """
    return httpx.create_ssl_context()


class SharedConnections:
    """HTTP clients that every workspace's LeadLex clients share: one per thread and base URL, whatever the key.

    Multi-workspace mode has a LeadLex client per workspace, and each on its own keeps a kept-alive connection per
    thread that called it: at 1,000 workspaces that was 4,000 connections per replica to the one LeadLex host (4 poll
    threads; bench.workspaces). Shared, it is one per thread and host. Each request carries its own key; no cookie
    is ever kept, so nothing one workspace's answer sets reaches another workspace's request. (Their Slack clients
    share one bot.slack.transport.Connections the same way.)
    """

    def __init__(self) -> None:
        """No client yet: each thread's are created on its first request to each URL."""
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[httpx.Client] = weakref.WeakSet()

    def client(self, base_url: str, timeout: float) -> httpx.Client:
        """The calling thread's client for `base_url` with `timeout`, created on first use."""
        clients: dict[tuple[str, float], httpx.Client] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get((base_url, timeout))
        if client is None:
            jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # accepts no cookie from any answer
            client = httpx.Client(base_url=base_url, timeout=timeout, verify=client_context(), cookies=jar)
            clients[(base_url, timeout)] = client
            with self._lock:
                self._clients.add(client)
        return client

    def __len__(self) -> int:
        """How many clients there are (one per thread and URL)."""
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        """Close every thread's clients and their connections."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()
