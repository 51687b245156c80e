"""`lexi-bot demo`: the LeadLex sandbox, a Slack stand-in and the real bot in one process, and a page to use them.

Everything listens on loopback (the page's server elsewhere only with --allow-remote). The bot is built exactly as
`lexi-bot run` builds it; only its configured URLs point at the sandbox and the stand-in, and the page's actions
reach it as signed Slack requests over HTTP.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import webbrowser
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bot.config import load_settings
from bot.db import migrate
from bot.db.store import Store
from bot.dev.demo.logbuffer import LogRing
from bot.dev.demo.server import DemoServer
from bot.dev.demo.session import Session
from bot.dev.demo.snapshot import Person, Sources
from bot.dev.sandbox import Sandbox
from bot.dev.standin.slack import SlackStandIn
from bot.ops.logs import setup_logging
from bot.runtime import Runtime
from bot.service import Service
from bot.slack.app import create_app

log = logging.getLogger(__name__)

CHANNEL, CHANNEL_NAME = "C0LEXI", "lexi-approvals"
PEOPLE = (
    Person("UALICE", "Alice", "Head of Sales Ops · approver", approver=True),
    Person("UBOB", "Bob", "RevOps lead · approver", approver=True),
    Person("UCAROL", "Carol", "Sales rep · not an approver", approver=False),
)
#: The demo's policy: campaign launches (they email real people) also go to each approver's DM, in sync with the
#: channel's card (`notify: both`); everything else is announced in the channel alone.
DEMO_POLICY = """\
types:
  campaign_start:
    notify: both
"""
#: The sandbox's daily budget: large enough that the 2-second polling is never stretched to protect it.
DAILY_LIMIT = 500_000


class Demo:
    """The whole demo: start() brings every part up on loopback, stop() takes them down in reverse order."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: bool = True,
        complete_after: float | None = 10.0,
        generate_every: float | None = 20.0,
        poll_interval: float = 2.0,
        post_interval: float = 1.0,
    ) -> None:
        self._host, self._port = host, port
        self._seed, self._complete_after, self._generate_every = seed, complete_after, generate_every
        self._poll_interval, self._post_interval = poll_interval, post_interval
        self.signing_secret = secrets.token_hex(20)
        self.bot_token = f"xoxb-demo-{secrets.token_hex(12)}"
        self.api_key = f"wbk_demo_{secrets.token_hex(12)}"
        self._stack = ExitStack()
        self._server: DemoServer | None = None
        self.sandbox: Sandbox | None = None
        self.standin: SlackStandIn | None = None
        self.runtime: Runtime | None = None
        self.bot_url = ""

    def secrets(self) -> list[str]:
        """The secrets the demo's bot is configured with, for log redaction."""
        return [self.signing_secret, self.bot_token, self.api_key]

    @property
    def url(self) -> str:
        """The page's address."""
        if self._server is None:
            raise RuntimeError("the demo is not started")
        host = "127.0.0.1" if self._host in ("0.0.0.0", "::", "") else self._host  # noqa: S104 - a comparison
        return f"http://{f'[{host}]' if ':' in host else host}:{self._server.port}/"

    def start(self) -> Self:
        """Start the sandbox, the stand-in, the bot, its poller and the page's server; undo all on failure."""
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        """Stop everything started, newest first; calling it again does nothing."""
        self._stack.close()

    def __enter__(self) -> Self:
        """Start the demo."""
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Stop the demo."""
        self.stop()

    def _start(self) -> None:
        """Bring the parts up, registering how to stop each one as soon as it runs."""
        stack = self._stack
        server = self._server = DemoServer(self._host, self._port)  # first: a busy port fails before anything runs
        stack.callback(server.server_close)
        workdir = Path(tempfile.mkdtemp(prefix="lexi-demo-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        logs = LogRing(self.secrets())
        logging.getLogger().addHandler(logs)
        stack.callback(logging.getLogger().removeHandler, logs)

        self.sandbox = Sandbox(
            api_key=self.api_key,
            seed=self._seed,
            complete_after=self._complete_after,
            generate_every=self._generate_every,
            daily_limit=DAILY_LIMIT,
            minute_limit=5_000,
        )
        stack.callback(self.sandbox.stop)
        self.sandbox.start()
        self.standin = SlackStandIn(
            bot_token=self.bot_token, channels={CHANNEL: CHANNEL_NAME}, users={p.id: p.name.lower() for p in PEOPLE}
        )
        stack.callback(self.standin.stop)
        self.standin.start()

        policy = workdir / "lexi-bot.yml"
        policy.write_text(DEMO_POLICY)
        settings = load_settings(
            {
                "LEXI_POLICY_FILE": str(policy),
                "LEXI_API_KEY": self.sandbox.api_key,
                "LEXI_API_URL": self.sandbox.url,
                "SLACK_BOT_TOKEN": self.bot_token,
                "SLACK_SIGNING_SECRET": self.signing_secret,
                "SLACK_CHANNEL": CHANNEL,
                "SLACK_API_URL": self.standin.api_url,
                "DATABASE_URL": f"sqlite:///{workdir / 'lexi-bot.db'}",
                "POLL_INTERVAL": str(self._poll_interval),
                "LEXI_APPROVERS": ",".join(p.id for p in PEOPLE if p.approver),
            }
        )
        store = Store.from_url(settings.database_url)
        migrate.upgrade(store.engine)
        runtime = self.runtime = Runtime.build(settings, store=store, post_interval=self._post_interval)
        service = Service(runtime, drain_timeout=5.0)
        stack.callback(service.close)
        front = service.serve_http(create_app(runtime), "127.0.0.1", 0, stop_timeout=5.0)
        service.start_poller()

        self.bot_url = f"http://127.0.0.1:{front.port}"
        session = Session(self.standin, self.bot_url, self.signing_secret, CHANNEL, CHANNEL_NAME)
        stack.callback(session.close_client)
        server.start(Sources(self.standin, self.sandbox, runtime, session, logs, PEOPLE, CHANNEL, CHANNEL_NAME))
        stack.callback(server.stop)
        log.info("demo ready: bot on 127.0.0.1:%s, LeadLex sandbox at %s", front.port, self.sandbox.url)


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def run_demo(
    host: str = "127.0.0.1", port: int = 8000, *, open_browser: bool = False, allow_remote: bool = False
) -> int:
    """Run the demo in the foreground until Ctrl-C or SIGTERM; print the page's URL; return the exit status.

    The page lets whoever loads it act as any of the demo's people, so listening beyond loopback needs
    `allow_remote`, and then comes with a warning.
    """
    if not is_loopback(host):
        if not allow_remote:
            print(
                f"lexi-bot demo: --host {host} is not a loopback address and anyone who can reach it could "
                "drive the demo; add --allow-remote to listen there anyway",
                file=sys.stderr,
            )
            return 2
        print(
            f"lexi-bot demo: warning: listening on {host}: anyone who can reach port {port} can drive the demo "
            "(act as its people, approve and dismiss its tasks)",
            file=sys.stderr,
            flush=True,
        )
    demo = Demo(host, port)
    setup_logging("INFO", demo.secrets())
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # the terminal shows only problems; the page shows the full log
    try:
        demo.start()
    except OSError as exc:
        print(f"lexi-bot demo: cannot listen on {host}:{port} ({exc.strerror or exc}); try --port 0", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(
        f"lexi-bot demo: open {demo.url} — approve Lexi's tasks as Alice or Bob, or try as Carol "
        "(not an approver). Ctrl-C stops it.",
        flush=True,
    )
    if open_browser:
        webbrowser.open(demo.url)
    while not stop.wait(0.5):
        pass
    print("lexi-bot demo: stopping…", flush=True)
    demo.stop()
    return 0
