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
import threading
from collections.abc import Sequence
from typing import Any

from bot.slack.app import create_app
from bot.config import load_settings
from bot.runtime import Runtime
from bot.ops.server import HttpFront, make_wsgi


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM, then drain and stop like `lexi-bot run`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--post-interval", type=float, default=1.0)
    parser.add_argument("--http-threads", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("BENCH_BOT_LOG_LEVEL", "ERROR"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(os.environ)
    runtime = Runtime.build(settings, post_interval=args.post_interval)
    app = create_app(runtime)
    wsgi = make_wsgi(app, health=runtime.health, ready=runtime.readiness, metrics=runtime.metrics,
                     webhooks=runtime.webhooks)
    front = HttpFront(wsgi, "127.0.0.1", args.port, threads=args.http_threads)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    poller = threading.Thread(target=runtime.poller.run, args=(stop,), name="lexi-poller", daemon=True)
    front.start()
    poller.start()
    print("ready", flush=True)
    while not stop.wait(0.5):
        pass
    front.stop(timeout=5)
    poller.join(timeout=10)
    runtime.close(drain_timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
