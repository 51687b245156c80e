"""Benchmark 1: announcement latency, from `sandbox.add_task` to the stand-in receiving chat.postMessage.

The bot runs in its own process (bench.botproc). Paths: webhook (a registered webhook pointing at the bot's
/lexi/webhooks; the poller runs too, reconciling hourly) and poll (POLL_INTERVAL=5, webhooks off). A batch is added
right after the bot's first poll cycle, so the poll path waits nearly a whole interval (the worst phase). Sizes: one
new task at a time (repeated), and 100 new tasks at once — with the bot's default per-channel pacing of one post a
second, and with pacing off (post_interval=0) to isolate the bot's own latency.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from bench.common import (
    Stack,
    ms,
    parse_args,
    percentile,
    posts_by_task,
    print_table,
    pyplot,
    running_bot,
    save_chart,
    secs,
    wait_until,
)

POLL_INTERVAL = 5.0


@dataclass(frozen=True)
class Result:
    """Latencies of one scenario (seconds): one per task; `first` is the batch's first post after its first add."""

    path: str
    tasks: int
    pacing: str
    latencies: list[float]
    first: float
    last: float
    duplicates: int
    missing: int

    @property
    def label(self) -> str:
        """A short name for tables and charts."""
        return f"{self.path} · {self.tasks} task{'s' if self.tasks > 1 else ''} · {self.pacing}"


def _posted(stack: Stack, task_id: str) -> bool:
    """Whether the task's announcement has reached the stand-in."""
    return task_id in posts_by_task(stack.slack)


def _single(path: str, samples: int) -> Result:
    """One task at a time, `samples` times; the gap between tasks spreads them over the poll phase."""
    rng = random.Random(4)
    latencies: list[float] = []
    with running_bot(poll_interval=POLL_INTERVAL, webhooks=path == "webhook") as stack:
        for _ in range(samples):
            added = time.time()
            task_id = stack.sandbox.add_task()["id"]
            if wait_until(partial(_posted, stack, task_id), 3 * POLL_INTERVAL):
                latencies.append(posts_by_task(stack.slack)[task_id][0] - added)
            # ≥ 1.1 s apart so the 1 post/s pacing never delays a lone task; random, to sample every poll phase.
            time.sleep(1.1 + (rng.uniform(0, POLL_INTERVAL) if path == "poll" else 0.0))
        posts = posts_by_task(stack.slack)
    duplicates = sum(len(times) - 1 for times in posts.values())
    return Result(
        path,
        1,
        "1 post/s",
        latencies,
        percentile(latencies, 0),
        max(latencies, default=float("nan")),
        duplicates,
        samples - len(latencies),
    )


def _batch(path: str, count: int, post_interval: float) -> Result:
    """`count` new tasks at once; each task's latency, and the batch's first and last post."""
    with running_bot(poll_interval=POLL_INTERVAL, webhooks=path == "webhook", post_interval=post_interval) as stack:
        added: dict[str, float] = {}
        for _ in range(count):
            now = time.time()
            added[stack.sandbox.add_task()["id"]] = now
        wait_until(
            lambda: len(posts_by_task(stack.slack)) >= count,
            count * post_interval + 3 * POLL_INTERVAL + 30,
            interval=0.05,
        )
        posts = posts_by_task(stack.slack)
    start = min(added.values())
    latencies = [posts[t][0] - added[t] for t in added if t in posts]
    firsts = [posts[t][0] for t in added if t in posts]
    duplicates = sum(len(times) - 1 for times in posts.values())
    pacing = "1 post/s" if post_interval else "pacing off"
    return Result(
        path,
        count,
        pacing,
        latencies,
        min(firsts, default=start) - start,
        max(firsts, default=start) - start,
        duplicates,
        count - len(latencies),
    )


def _chart(results: Sequence[Result], path: str) -> None:
    """Horizontal bars of p50 and p99 per scenario, on a log scale."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(9, 4.8))
    labels = [r.label for r in results]
    y = range(len(results))
    ax.barh([i + 0.2 for i in y], [percentile(r.latencies, 50) * 1000 for r in results], 0.4, label="p50")
    ax.barh([i - 0.2 for i in y], [percentile(r.latencies, 99) * 1000 for r in results], 0.4, label="p99")
    ax.axvline(500, color="red", linestyle="--", linewidth=1, label="target: webhook p50 < 500 ms")
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("task created → chat.postMessage (ms, log scale)")
    ax.set_title(f"Announcement latency (poll path: POLL_INTERVAL={POLL_INTERVAL:g} s)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    save_chart(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios, print the table, and optionally chart it."""
    args = parse_args(__doc__ or "", argv)
    batch = 10 if args.quick else 100
    results = [
        _single("webhook", 3 if args.quick else 30),
        _single("poll", 3 if args.quick else 20),
        _batch("webhook", batch, 1.0),
        _batch("poll", batch, 1.0),
        _batch("webhook", batch, 0.0),
        _batch("poll", batch, 0.0),
    ]
    rows = [
        [
            r.path,
            r.tasks,
            r.pacing,
            len(r.latencies),
            secs(r.first) if r.tasks > 1 else "—",
            secs(percentile(r.latencies, 50)),
            secs(percentile(r.latencies, 99)),
            secs(max(r.latencies, default=float("nan"))),
            secs(r.last) if r.tasks > 1 else "—",
            r.duplicates,
            r.missing,
        ]
        for r in results
    ]
    print_table(
        f"Announcement latency, task created → chat.postMessage (poll path: POLL_INTERVAL={POLL_INTERVAL:g} s)",
        [
            "path",
            "new tasks",
            "Slack pacing",
            "samples",
            "first post",
            "p50",
            "p99",
            "max",
            "last post",
            "duplicates",
            "never posted",
        ],
        rows,
    )
    webhook_p50 = percentile(results[0].latencies, 50)
    print(f"target webhook p50 < 500 ms: {ms(webhook_p50)} → {'met' if webhook_p50 < 0.5 else 'MISSED'}")
    if args.chart:
        _chart(results, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
