"""The side-by-side's clicking client, in a process of its own (`python -m bench.clicker < job.json`).

The sandbox and the Slack stand-in run in the benchmark's process. A client in that process shares their
interpreter lock: every `chat.update` the stand-in serves for lexi-bot (two per click, none for the minimal bot)
delays the client's own threads, and the ack it measures grows by the harness's work, not the bot's. Here the client
has an interpreter to itself, as Slack's clients have machines to themselves.

The job (JSON on standard input): `url`, `secret`, `concurrency` and `clicks`, a list of `[task_id, body,
content_type]`. Each click is signed when it is sent. The answer (JSON on standard output): one
`[task_id, sent, seconds, status]` per click, in order (`answers`): `sent` is the wall-clock time it was sent (the
sandbox notes the approve call's arrival on the same clock), `seconds` its answer time on this process's monotonic
clock, `status` the HTTP status (0: no answer). Also how long the sending took (`seconds`: first click to last
answer) and how many CPU seconds the whole machine was busy meanwhile (`machine_busy`, from /proc/stat).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bot.dev.standin import payloads


def busy_seconds(proc_stat: str) -> float:
    """CPU seconds all cores have been busy since boot, from /proc/stat's text (all but idle and iowait)."""
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
            return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    raise ValueError("no cpu line in /proc/stat")


def machine_busy() -> float:
    """`busy_seconds` of this machine now."""
    return busy_seconds(Path("/proc/stat").read_text())


def run(job: dict[str, object]) -> list[list[object]]:
    """Send the job's clicks, `concurrency` at a time; one answer per click, in order."""
    url, secret = str(job["url"]), str(job["secret"])
    concurrency = int(job["concurrency"])  # type: ignore[call-overload]
    clicks = job["clicks"]
    assert isinstance(clicks, list)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    with httpx.Client(timeout=30, limits=limits, trust_env=False) as client:

        def send(click: list[str]) -> list[object]:
            task_id, body, content_type = click
            content = body.encode("utf-8")
            headers = payloads.signed_request(secret, content, content_type)
            sent = time.time()
            started = time.perf_counter()
            try:
                status = client.post(f"{url}/slack/events", content=content, headers=headers).status_code
            except httpx.HTTPError:
                status = 0
            return [task_id, sent, time.perf_counter() - started, status]

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(send, clicks))


def main() -> int:
    """Read the job, send it, print the answers."""
    job = json.load(sys.stdin)
    busy, started = machine_busy(), time.perf_counter()
    answers = run(job)
    report = {"answers": answers, "seconds": time.perf_counter() - started, "machine_busy": machine_busy() - busy}
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
