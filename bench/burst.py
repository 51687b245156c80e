"""Benchmark 5: a burst of new tasks, posted at Slack's pace of one message a second per channel.

The bot (its own process, default pacing `post_interval` = 1 s) faces a Slack stand-in that enforces the
chat.postMessage rate (a burst of 3, then 1/s, answering 429 `ratelimited` beyond). All tasks are added at
once; we measure the time until every one is posted against the ideal (n − 1) s, duplicates and 429s.
Both ways tasks arrive are measured: the poll path (POLL_INTERVAL=5) and the webhook path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import (
    parse_args,
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
    """One burst: when it started (Unix s), each task's first post time, duplicates and 429s."""

    path: str
    tasks: int
    started: float
    posted: list[float]
    duplicates: int
    rate_limited: int

    @property
    def spread(self) -> float:
        """First post to last post: what pacing governs."""
        return max(self.posted) - min(self.posted) if self.posted else float("nan")

    @property
    def total(self) -> float:
        """Burst added to last post."""
        return max(self.posted) - self.started if self.posted else float("nan")


def _burst(path: str, count: int) -> Result:
    """Add `count` tasks at once and wait (bounded) until all are posted."""
    with running_bot(poll_interval=POLL_INTERVAL, webhooks=path == "webhook") as stack:
        stack.slack.enforce_post_rate = True
        started = time.time()
        ids = [stack.sandbox.add_task()["id"] for _ in range(count)]
        wait_until(lambda: len(posts_by_task(stack.slack)) >= count, count * 1.5 + 60, interval=0.2)
        time.sleep(2.0)  # a duplicate would show up right after the last post
        posts = posts_by_task(stack.slack)
        limited = sum(1 for c in stack.slack.calls_to("chat.postMessage") if c.error == "ratelimited")
    posted = sorted(posts[t][0] for t in ids if t in posts)
    duplicates = sum(len(times) - 1 for times in posts.values())
    return Result(path, count, started, posted, duplicates, limited)


def _chart(results: Sequence[Result], path: str) -> None:
    """Cumulative posts over time for each path, against the one-per-second line."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for result in results:
        first = min(result.posted)
        ax.plot(
            [t - first for t in result.posted],
            range(1, len(result.posted) + 1),
            label=f"{result.path} path ({secs(result.spread)} first→last)",
        )
    n = max(r.tasks for r in results)
    ax.plot([0, n - 1], [1, n], color="black", linestyle=":", label="ideal: 1 post/s")
    ax.set_xlabel("seconds since the burst's first post")
    ax.set_ylabel("tasks posted")
    ax.set_title(f"Burst of {n} new tasks, Slack pacing 1 post/s per channel")
    ax.legend(loc="lower right")
    save_chart(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bursts, print the table, and optionally chart them."""
    args = parse_args(__doc__ or "", argv)
    count = 20 if args.quick else 200
    results = [_burst(path, count) for path in ("poll", "webhook")]
    rows = []
    for r in results:
        ideal = r.tasks - 1.0
        rows.append(
            [
                r.path,
                r.tasks,
                f"{len(r.posted)}/{r.tasks}",
                secs(min(r.posted) - r.started),
                secs(r.spread),
                secs(ideal),
                f"{100 * (r.spread / ideal - 1):+.1f} %",
                secs(r.total),
                r.duplicates,
                r.rate_limited,
            ]
        )
    print_table(
        f"Burst of {count} new tasks at 1 post/s per channel (poll path: POLL_INTERVAL={POLL_INTERVAL:g} s)",
        [
            "path",
            "tasks",
            "posted",
            "first post",
            "first → last post",
            "ideal (n−1)·1 s",
            "vs ideal",
            "added → last post",
            "duplicates",
            "429s",
        ],
        rows,
    )
    ok = all(r.spread <= 1.1 * (r.tasks - 1) and r.duplicates == 0 and len(r.posted) == r.tasks for r in results)
    print(f"target: all posted within 10 % of the pacing limit, 0 duplicates → {'met' if ok else 'MISSED'}")
    if args.chart:
        _chart(results, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
