"""Many installed workspaces and several `lexi-bot run` replicas, for bench.workspaces.

`Fleet` sets up N Slack workspaces in the stand-in (each with its own bot token and channel), N LeadLex
workspaces in the sandbox (each with its own key and daily budget), and a database in which every workspace is
installed and connected: installations are written with slack_sdk's SQLAlchemyInstallationStore.save, as Bolt's
OAuth flow saves them (the OAuth dance itself is tested in tests/scenarios/test_install.py), and each workspace is
connected with the registry (Workspaces.installed, connect_lexi, configure). Then R real `lexi-bot run` processes
in multi-workspace mode serve them all from that one database.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import create_engine, make_url, text

from bench.common import SIGNING_SECRET, UNLIMITED, _free_port, _wait_http, rss_mb
from bot.config import normalize_database_url
from bot.db import migrate
from bot.db.store import make_engine
from bot.db.vault import Vault, generate_key
from bot.db.workspaces import Workspaces
from bot.dev.sandbox import Sandbox
from bot.dev.sandbox_workspace import SandboxWorkspace
from bot.dev.standin.oauth import CLIENT_ID, CLIENT_SECRET, Team
from bot.dev.standin.slack import SlackStandIn

ROOT = Path(__file__).resolve().parent.parent
#: The database a PostgreSQL run creates on the server it is given, and drops afterwards.
PG_DATABASE = "lexi_bench_workspaces"
#: A LeadLex plan's share of the day that polling may spend (bot.core.budget.BudgetPolicy.polling_share).
POLLING_SHARE = 0.5
DAY = 86_400.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Tenant:
    """One workspace of the run: its Slack team and channel, its LeadLex workspace and its planned interval."""

    team: str
    channel: str
    lexi: SandboxWorkspace
    #: The poll interval its LeadLex budget gives (bot.core.budget: a day's polling share spread evenly).
    interval: float


def budget_for(interval: float) -> int:
    """The daily LeadLex limit whose polling share, at one call a poll spread over a day, polls every `interval` s."""
    return int(DAY / (POLLING_SHARE * interval))


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, /proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass
class Replica:
    """One `lexi-bot run` process in multi-workspace mode."""

    number: int
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    killed_at: float | None = None

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def cpu(self) -> float:
        """Its CPU seconds so far (NaN once it has gone)."""
        try:
            return cpu_seconds(self.process.pid)
        except (OSError, IndexError):
            return float("nan")

    def rss(self) -> float:
        """Its resident memory in MiB (NaN once it has gone)."""
        try:
            return rss_mb(self.process.pid)
        except OSError:
            return float("nan")

    def files(self) -> int:
        """How many files (sockets included) it has open (0 once it has gone)."""
        try:
            return len(list(Path(f"/proc/{self.process.pid}/fd").iterdir()))
        except OSError:
            return 0

    def errors(self) -> list[str]:
        """The error lines and tracebacks it logged."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if " ERROR " in line or "Traceback" in line or "CRITICAL" in line]


@dataclass
class Fleet:
    """The sandbox, the stand-in, the database and the replicas of one run (a context: `with Fleet(...) as f`)."""

    workspaces: int
    replicas: int
    database_url: str
    workdir: Path
    poll_interval: float
    intervals: tuple[float, float]
    seed: int = 0
    sandbox: Sandbox = field(init=False)
    slack: SlackStandIn = field(init=False)
    tenants: list[Tenant] = field(default_factory=list)
    running: list[Replica] = field(default_factory=list)
    url: str = field(init=False)

    def __enter__(self) -> Self:
        """Start the peers, create and fill the database (PostgreSQL: a database of its own)."""
        self.url = self._create_database()
        self.sandbox = Sandbox(seed=False, **UNLIMITED).start()
        self.slack = SlackStandIn().start()
        self._key = generate_key()
        self._populate()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the replicas, the peers, and drop the PostgreSQL database."""
        for replica in self.running:
            self.stop(replica)
        self.sandbox.stop()
        self.slack.stop()
        self._drop_database()

    # --- the database -------------------------------------------------------------------------------

    def _create_database(self) -> str:
        """A migrated database: a fresh PostgreSQL database on the given server, or a SQLite file in workdir."""
        url = normalize_database_url(self.database_url)
        if url.startswith("postgresql"):
            self._drop_database()
            with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f"CREATE DATABASE {PG_DATABASE}"))
            url = make_url(url).set(database=PG_DATABASE).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{self.workdir / 'workspaces.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        return url

    def _drop_database(self) -> None:
        """Drop the run's PostgreSQL database (nothing for SQLite: the folder goes)."""
        url = normalize_database_url(self.database_url)
        if not url.startswith("postgresql"):
            return
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
        admin.dispose()

    def _populate(self) -> None:
        """Install and connect every workspace, each with its own token, channel, LeadLex key and budget."""
        rng = random.Random(self.seed)
        engine = make_engine(self.url)
        installations = SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)
        registry = Workspaces(engine, Vault.parse(self._key))
        for i in range(self.workspaces):
            team, channel = f"TW{i:05d}", f"CW{i:05d}"
            interval = rng.uniform(*self.intervals)
            daily = budget_for(interval)
            lexi = self.sandbox.add_workspace(
                daily_limit=daily, minute_limit=max(10, int(240 / interval)), workspace_id=f"lexi-{team}"
            )
            token = f"xoxb-bench-{i}-{secrets.token_hex(12)}"
            name = f"Bench {team}"
            workspace = self.slack.oauth.new_workspace(team, name, None)
            workspace.add_channel(channel, "lexi-approvals", member=True)
            self.slack.oauth.add(Team(team, name, workspace), token)
            installations.save(
                Installation(
                    app_id=workspace.app_id,
                    team_id=team,
                    team_name=name,
                    bot_token=token,
                    bot_id=workspace.bot_id,
                    bot_user_id=workspace.bot_user_id,
                    bot_scopes="chat:write,commands,users:read,channels:read",
                    user_id="UALICE",
                    installed_at=time.time(),
                )
            )
            registry.installed(team, enterprise_id=None, is_enterprise_install=False, installer="UALICE")
            registry.connect_lexi(team, lexi.api_key, self.sandbox.url)
            registry.configure(team, channel=channel)
            self.tenants.append(Tenant(team, channel, lexi, max(self.poll_interval, DAY / (POLLING_SHARE * daily))))
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        engine.dispose()

    # --- the replicas -------------------------------------------------------------------------------

    def start_replicas(self, timeout: float = 120.0) -> None:
        """Start every replica and wait (bounded) until each answers /healthz."""
        for number in range(1, self.replicas + 1):
            port = _free_port()
            log_path = self.workdir / f"replica-{number}.log"
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("LEXI_", "SLACK_", "DATABASE_URL"))},
                "LEXI_ENV_FILE": "/nonexistent",
                "SLACK_CLIENT_ID": CLIENT_ID,
                "SLACK_CLIENT_SECRET": CLIENT_SECRET,
                "LEXI_ENCRYPTION_KEYS": self._key,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": self.slack.api_url,
                "LEXI_API_URL": self.sandbox.url,
                "DATABASE_URL": self.url,
                "POLL_INTERVAL": str(self.poll_interval),
                "PORT": str(port),
                "LOG_LEVEL": "WARNING",
            }
            process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--host", "127.0.0.1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log_path.open("wb"),
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
            self.running.append(Replica(number, process, port, log_path))
        for replica in self.running:
            if not _wait_http(f"http://127.0.0.1:{replica.port}/healthz", replica.process, timeout):
                tail = replica.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"replica {replica.number} did not start: {tail}")

    def kill(self, replica: Replica) -> None:
        """SIGKILL a replica, as a crash or an OOM kill would end it."""
        replica.killed_at = time.time()
        replica.process.send_signal(signal.SIGKILL)
        replica.process.wait(timeout=10)

    @staticmethod
    def stop(replica: Replica) -> None:
        """Stop a replica with SIGTERM, as a platform would (bounded), else SIGKILL."""
        if replica.process.poll() is not None:
            return
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(timeout=10)

    def health(self, replica: Replica) -> bool:
        """Whether a replica's /healthz says ok."""
        try:
            return httpx.get(f"http://127.0.0.1:{replica.port}/healthz", timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False
