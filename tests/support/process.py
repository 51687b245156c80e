"""Run `lexi-bot` as a real child process for tests that kill, signal or start it twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

#: Output of every child process, and the secrets they were configured with, for the session's secret scan.
CHILD_OUTPUT: list[str] = []
CHILD_SECRETS: set[str] = set()
_SECRET_VARIABLES = (
    "LEXI_API_KEY",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "LEXI_WEBHOOK_SECRET",
)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any lexi-bot or Slack settings, plus `values`."""
    prefixes = ("LEXI_", "SLACK_", "DATABASE_URL", "POLL_INTERVAL", "PORT", "LOG_LEVEL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["LEXI_ENV_FILE"] = "/nonexistent/.env"  # never pick up a developer's .env
    env.update(values)
    return env


class BotProcess:
    """A `python -m bot.cli …` child with its output captured to a file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log_path = cwd / f"lexi-bot-{time.monotonic_ns()}.log"
        CHILD_SECRETS.update(env[name] for name in _SECRET_VARIABLES if env.get(name))
        self._log = self.log_path.open("wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def output(self) -> str:
        """Everything the process printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, port: int, timeout: float = 20.0) -> None:
        """Wait until /healthz answers (bounded); fail with the output if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"lexi-bot exited with {self.proc.returncode}:\n{self.output}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"lexi-bot did not become healthy in {timeout}s:\n{self.output}")

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit (bounded) and return its status."""
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a crash or an OOM kill."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Make sure the process is gone and the log closed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._log.closed:
            CHILD_OUTPUT.extend(self.output.splitlines())
            self._log.close()
