"""Memory under steady work: one bot process for `--minutes`, new tasks arriving and being decided all the time.

The bot runs in its own process with webhooks on (bench/common.py); each second a new task is created in the sandbox
(the webhook announces it, paced at Slack's one post a second) and the oldest undecided card is approved (its
button) or dismissed (`/lexi dismiss ID not_relevant`), and every ten seconds someone runs `/lexi tasks`. The bot's
VmRSS is sampled every `SAMPLE` seconds. Reported: RSS after the warm-up (the first minute), at the middle and at
the end, and the growth per ten minutes over the second half (a least-squares slope): flat memory means that slope
stays near zero however long the run. A 100k-task history's RSS is measured by `bench.poll_cost`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Sequence

from bench.common import CHANNEL, Stack, fresh_database, parse_args, positive, print_table, running_bot
from bot.dev.standin import payloads
from bot.slack import blocks

#: Seconds between RSS samples.
SAMPLE = 5.0
#: Seconds of warm-up before the first counted sample (imports, pools and caches filling).
WARM_UP = 60.0


def slope_per_10_min(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MiB) points, in MiB per ten minutes (0 for fewer than two points)."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread * 600


def _cards(stack: Stack) -> dict[str, str]:
    """The ts of each task's card in the channel."""
    slack = stack.slack
    return {
        m.metadata["event_payload"]["task_id"]: m.ts
        for m in slack.messages(CHANNEL)
        if m.thread_ts is None and m.metadata
    }


def run(minutes: float, postgres: str | None = None, rate: float = 1.0) -> dict[str, float]:
    """One run; the figures of the report.

    `rate`: new tasks (and decisions) a second, announced at that pace too: caches that fill as the history grows
    fill `rate` times sooner, so a short run shows where a long one levels off.
    """
    samples: list[tuple[float, float]] = []
    threads: list[tuple[float, int]] = []  # (seconds, the bot's threads): pools start theirs on demand
    decided: set[str] = set()
    created = clicks = commands = 0
    with (
        fresh_database(postgres) as database_url,
        running_bot(
            webhooks=True, post_interval=min(1.0, 1.0 / rate), poll_interval=30.0, database_url=database_url
        ) as stack,
    ):
        started = time.monotonic()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE):
                at = time.monotonic() - started
                samples.append((at, stack.rss_mb()))
                threads.append((at, stack.threads()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = started + minutes * 60
        tick = 0
        while time.monotonic() < deadline:
            tick += 1
            stack.sandbox.add_task()
            created += 1
            open_cards = [(t, ts) for t, ts in _cards(stack).items() if t not in decided]
            if open_cards:
                task_id, ts = open_cards[0]
                decided.add(task_id)
                if tick % 3:  # two in three approved with the button, one dismissed with /lexi
                    body, content_type = payloads.encode_interactive(
                        payloads.build_block_action(
                            action_id=blocks.APPROVE_ACTION,
                            value=task_id,
                            user="UALICE",
                            channel=CHANNEL,
                            message_ts=ts,
                            trigger_id=stack.slack.new_trigger_id("UALICE"),
                            response_url=stack.slack.new_response_url(),
                        )
                    )
                else:
                    body, content_type = payloads.encode_command(
                        payloads.build_slash_command(
                            text=f"dismiss {task_id} not_relevant",
                            channel=CHANNEL,
                            response_url=stack.slack.new_response_url(),
                        )
                    )
                stack.post_signed(body, content_type)
                clicks += 1
            if tick % 10 == 0:
                body, content_type = payloads.encode_command(
                    payloads.build_slash_command(
                        text="tasks",
                        channel=CHANNEL,
                        response_url=stack.slack.new_response_url(),
                    )
                )
                stack.post_signed(body, content_type)
                commands += 1
            time.sleep(max(0.0, started + tick / rate - time.monotonic()))
        stop.set()
        sampler.join(SAMPLE * 2)
    counted = [(t, mib) for t, mib in samples if t >= WARM_UP] or samples
    counted_threads = [n for t, n in threads if t >= WARM_UP] or [n for _t, n in threads] or [0]
    half = counted[len(counted) // 2 :]
    return {
        "minutes": minutes,
        "tasks": created,
        "clicks": clicks,
        "commands": commands,
        "first": counted[0][1] if counted else 0.0,
        "middle": counted[len(counted) // 2][1] if counted else 0.0,
        "last": counted[-1][1] if counted else 0.0,
        "max": max((m for _t, m in counted), default=0.0),
        "slope": slope_per_10_min(half),
        "threads_first": counted_threads[0],
        "threads_middle": counted_threads[len(counted_threads) // 2],
        "threads_last": counted_threads[-1],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--minutes", type=float, default=10.0)
    extra.add_argument("--postgres", metavar="URL", help="run the bot on a fresh database of this server, not SQLite")
    extra.add_argument("--rate", type=positive(float), default=1.0, help="new tasks a second (default 1)")
    known, rest = extra.parse_known_args(argv)
    args = parse_args(__doc__ or "", rest)
    minutes = 2.0 if args.quick else known.minutes
    result = run(minutes, known.postgres, known.rate)
    print_table(
        f"Memory over {minutes:g} minutes of steady work ({'PostgreSQL' if known.postgres else 'SQLite'}; webhooks on;"
        f" {known.rate:g} task(s) a second; VmRSS of the bot's process)",
        [
            "tasks created",
            "clicks",
            "/lexi tasks",
            "RSS after warm-up",
            "middle",
            "end",
            "max",
            "growth over the second half",
            "threads (warm-up → middle → end)",
        ],
        [
            [
                result["tasks"],
                result["clicks"],
                result["commands"],
                f"{result['first']:.1f} MiB",
                f"{result['middle']:.1f} MiB",
                f"{result['last']:.1f} MiB",
                f"{result['max']:.1f} MiB",
                f"{result['slope']:+.2f} MiB / 10 min",
                f"{result['threads_first']:.0f} → {result['threads_middle']:.0f} → {result['threads_last']:.0f}",
            ]
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
