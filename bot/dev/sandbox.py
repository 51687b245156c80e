"""A local LeadLex-compatible API server, for trying the bot without real data and for tests.

It serves the Lexi task, chat and webhook endpoints at `/v1/...` and under the real gateway prefix, with
LeadLex's envelopes, error codes, rate-limit headers and signed webhook deliveries, and lets its owner change
state (as the dashboard would), inject faults and observe every call. Run: `python -m bot.dev.sandbox`.

It serves any number of LeadLex workspaces, each with its own keys, tasks, budget, webhooks, call log and faults
(`add_workspace`); a request goes to the workspace its Bearer key belongs to. The `Sandbox` is itself the first,
default workspace: `add_task`, `calls_to`, `fail_next`, `latency`, `api_key`… act on it, as they did before there
were others, and on it alone (a fault injected here never reaches a request with another workspace's key).
Requests that name no workspace (no key, an unknown or revoked key, a browser's preflight) are the default
workspace's too: in its call log, subject to its faults, answered with its rate-limit headers.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from bot.dev.sandbox_http import Reply, SandboxServer, body_value
from bot.dev.sandbox_webhooks import WORKSPACE_ID, Delivery
from bot.dev.sandbox_workspace import (
    DEMO_DAILY_LIMIT,
    DEMO_MINUTE_LIMIT,
    GATEWAY_PREFIX,
    PLANS,
    ApiRequest,
    Call,
    SandboxWorkspace,
    Services,
    new_key,
    new_workspace_id,
    route_path,
)

__all__ = [
    "DEMO_DAILY_LIMIT",
    "DEMO_MINUTE_LIMIT",
    "GATEWAY_PREFIX",
    "PLANS",
    "Call",
    "Delivery",
    "Reply",
    "Sandbox",
    "SandboxWorkspace",
    "main",
]

log = logging.getLogger("bot.sandbox")

#: The most extra workspaces the command line serves.
MAX_WORKSPACES = 100_000
_TICK = 0.05  # seconds between the HTTP server's checks for a shutdown
#: add_workspace's defaults that are no plain value: "as the default workspace has it", "a key made up for it".
_INHERIT: Any = object()
_MADE_UP: Any = object()
_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
}


class Sandbox(SandboxWorkspace):
    """A LeadLex-compatible API on a loopback port serving many workspaces, itself the default one."""

    def __init__(
        self,
        *,
        api_key: str = "wbk_sandbox",
        no_lexi_key: str | None = "wbk_nolexi",
        daily_limit: int = DEMO_DAILY_LIMIT,
        minute_limit: int = DEMO_MINUTE_LIMIT,
        credits: int = 1000,  # noqa: A002 - LeadLex's word for the workspace balance
        seed: bool = True,
        complete_after: float | None = None,
        fail_ratio: float = 0.0,
        generate_every: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        services = Services(clock)
        super().__init__(
            services,
            workspace_id=WORKSPACE_ID,
            api_key=api_key,
            no_lexi_key=no_lexi_key,
            daily_limit=daily_limit,
            minute_limit=minute_limit,
            credits=credits,
            seed=seed,
            complete_after=complete_after,
            fail_ratio=fail_ratio,
            generate_every=generate_every,
            random_seeds=(0, 1),
        )
        self._workspaces: list[SandboxWorkspace] = [self]
        self._server: SandboxServer | None = None
        self._http_thread: threading.Thread | None = None
        self._started = False

    # --- workspaces ---

    def add_workspace(
        self,
        *,
        plan: str | None = None,
        daily_limit: int | None = None,
        minute_limit: int | None = None,
        credits: int = 1000,  # noqa: A002 - LeadLex's word for the workspace balance
        seed: bool = False,
        complete_after: float | None = _INHERIT,
        fail_ratio: float = 0.0,
        generate_every: float | None = None,
        api_key: str | None = None,
        no_lexi_key: str | None = _MADE_UP,
        workspace_id: str | None = None,
    ) -> SandboxWorkspace:
        """Add a LeadLex workspace with keys of its own (made up unless given) and return it.

        `plan` ("starter", "pro" or "org") sets LeadLex's limits for it; `daily_limit` and `minute_limit` override
        them; with neither, the sandbox's demo plan applies. Approved tasks complete after the default workspace's
        `complete_after` unless told otherwise. Without `seed` it starts with no tasks. `no_lexi_key=None` gives it
        no key without the Lexi permission.
        """
        if plan is not None and plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r}; expected one of {', '.join(PLANS)}")
        if workspace_id is not None and any(w.id == workspace_id for w in self.workspaces):
            raise ValueError(f"a workspace with id {workspace_id!r} already exists")
        plan_daily, plan_minute = PLANS[plan] if plan else (DEMO_DAILY_LIMIT, DEMO_MINUTE_LIMIT)
        workspace = SandboxWorkspace(
            self._services,
            workspace_id=workspace_id or new_workspace_id(),
            api_key=api_key or new_key(),
            no_lexi_key=new_key() if no_lexi_key is _MADE_UP else no_lexi_key,
            plan=plan,
            daily_limit=plan_daily if daily_limit is None else daily_limit,
            minute_limit=plan_minute if minute_limit is None else minute_limit,
            credits=credits,
            seed=seed,
            complete_after=self.complete_after if complete_after is _INHERIT else complete_after,
            fail_ratio=fail_ratio,
            generate_every=generate_every,
        )
        with self._services.lock:
            self._workspaces.append(workspace)
            started = self._started
        if started:
            workspace.start_generating()
        return workspace

    @property
    def workspaces(self) -> list[SandboxWorkspace]:
        """Every workspace served, the default one (this sandbox) first, then in the order they were added."""
        with self._services.lock:
            return list(self._workspaces)

    def workspace_of(self, key: str) -> SandboxWorkspace | None:
        """The workspace a key belongs to, or None for an unknown or revoked key."""
        grant = self._services.keys.get(key)
        return grant.workspace if grant else None

    # --- serving ---

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Start serving on `host:port` (0 picks a free port) in daemon threads, and return self."""
        if self._server is not None:
            raise RuntimeError("a sandbox can be started only once")
        self._server = SandboxServer((host, port), self._respond)
        thread = self._http_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": _TICK}, name="sandbox-http", daemon=True
        )
        thread.start()
        with self._services.lock:
            self._started = True
            workspaces = list(self._workspaces)
        for workspace in workspaces:
            workspace.start_generating()
        self._services.timers.start()
        return self

    def stop(self) -> None:
        """Stop the server, the background work and webhook retries; calling it again does nothing."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        deadline = time.monotonic() + 2.0
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._http_thread is not None:
            self._http_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._services.timers.stop(deadline)
        self._services.couriers.join(deadline)

    def __enter__(self) -> Self:
        """Start the sandbox on a free loopback port."""
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop the sandbox."""
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, like http://127.0.0.1:PORT, to which clients append /v1/...."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"  # noqa: S104 - a comparison

    def _respond(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request through the workspace of its key (the default one without), and record it."""
        split = urlsplit(target)
        request = ApiRequest(
            method, route_path(split.path), parse_qs(split.query, keep_blank_values=True), headers, body
        )
        key = _bearer(headers.get("authorization", ""))
        grant = self._services.keys.get(key) if key else None
        workspace = grant.workspace if grant else self
        # A browser's CORS preflight needs no key and is never counted.
        reply = Reply(204, headers=dict(_PREFLIGHT)) if method == "OPTIONS" else workspace.answer(request, grant)
        reply.headers = {**workspace.standard_headers(), **reply.headers}
        path = request.path + (f"?{split.query}" if split.query else "")
        workspace.record(Call(method, path, reply.status, self._clock(), body_value(body)))
        return reply


def _bearer(header: str) -> str | None:
    """Return the key of an `Authorization: Bearer <key>` header, or None."""
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox from the command line until Ctrl-C; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.dev.sandbox",
        description="Serve a local LeadLex-compatible API with sample Lexi tasks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8787, help="port to listen on, 0 for any free port (default: %(default)s)"
    )
    parser.add_argument(
        "--complete-after",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="complete approved tasks after SECONDS, 0 for never (default: %(default)s)",
    )
    parser.add_argument(
        "--generate-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="add a new pending task every SECONDS, 0 for never (default: never)",
    )
    parser.add_argument(
        "--workspaces",
        type=_count,
        default=0,
        metavar="N",
        help="also serve N more LeadLex workspaces with sample tasks, each with keys of its own (printed)",
    )
    parser.add_argument(
        "--plan",
        choices=sorted(PLANS),
        default=None,
        help="LeadLex plan whose rate limits every workspace has (default: a demo plan too large to matter)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    daily, minute = PLANS[args.plan] if args.plan else (DEMO_DAILY_LIMIT, DEMO_MINUTE_LIMIT)
    options: dict[str, Any] = {"generate_every": args.generate_every or None}
    sandbox = Sandbox(complete_after=args.complete_after or None, daily_limit=daily, minute_limit=minute, **options)
    more = [sandbox.add_workspace(plan=args.plan, seed=True, **options) for _ in range(args.workspaces)]
    try:
        sandbox.start(args.host, args.port)
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    lines = [
        f"LeadLex sandbox listening on {sandbox.url}",
        f"  use: LEXI_API_URL={sandbox.url} LEXI_API_KEY={sandbox.api_key}",
        f"  a key without the Lexi permission: {sandbox.no_lexi_key}",
    ]
    if more:
        lines.append(
            f"  {len(more)} more workspaces, one a line: workspace id, Lexi key, key without the Lexi permission"
        )
        lines += [f"    {workspace.id} {workspace.api_key} {workspace.no_lexi_key}" for workspace in more]
    print("\n".join([*lines, "Press Ctrl-C to stop."]), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("sandbox stopped", flush=True)
    finally:
        sandbox.stop()
    return 0


def _count(text: str) -> int:
    """A command-line count: a whole number from 0 to 100,000."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= count <= MAX_WORKSPACES:
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_WORKSPACES:,}, not {count}")
    return count


if __name__ == "__main__":
    raise SystemExit(main())
