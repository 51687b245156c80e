"""The bot in a process of its own, wired as `lexi-bot run` wires it (HTTP mode), for benchmarks to measure.

Settings come from the environment as usual; `--port` and `--post-interval` (the per-channel pacing of
announcements) are the only extras. Prints `ready` once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from bot.config import load_settings
from bot.runtime import Runtime
from bot.service import Service
from bot.slack.app import create_app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM, then drain and stop like `lexi-bot run`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--post-interval", type=float, default=1.0)
    parser.add_argument("--http-threads", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("BENCH_BOT_LOG_LEVEL", "ERROR"), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = load_settings(os.environ)
    runtime = Runtime.build(settings, post_interval=args.post_interval)
    with Service(runtime, drain_timeout=20) as service:

        def on_signal(_signum: int, _frame: Any) -> None:
            service.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        service.start_poller()
        service.serve_http(create_app(runtime), "127.0.0.1", args.port, threads=args.http_threads, stop_timeout=5)
        print("ready", flush=True)
        while not service.stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
