"""The process's one TLS context for outgoing HTTPS: every LeadLex and Slack client of every workspace shares it."""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["client_context"]


@functools.cache
def client_context() -> ssl.SSLContext:
    """The default verifying context of httpx, built once per process (a context may serve any number of clients).

    Each build loads the CA bundle: about 20 ms of CPU and 0.8 MiB of native memory. Built per client, that was
    two per workspace in multi-workspace mode, 1.6 MiB and 40 ms each (bench.workspaces).
    """
    return httpx.create_ssl_context()
