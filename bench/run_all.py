"""Run every benchmark, one process each, writing its output and chart to a results folder.

`python -m bench.run_all [--quick] [--out bench/results] [--only NAME ...]`; a full run takes about 45 minutes
(the soak alone 10–14, side_by_side about 15).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import machine

BENCHMARKS = ("announce_latency", "ack_latency", "simulated_day", "poll_cost", "burst", "side_by_side", "soak")
#: The longest one benchmark may take before it is stopped.
TIMEOUT = 1_800


def _revision() -> str:
    """The commit measured, and whether the bot's code differed from it (others edit the tree too)."""
    root = Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None:
        return "unknown (not a git checkout)"
    try:
        commit = subprocess.run(
            [git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [git, "status", "--porcelain", "--", "bot", "migrations"],
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {commit}" + (f" with uncommitted changes to {', '.join(changed)}" if changed else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks in turn; return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test of every benchmark)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for outputs")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}", flush=True)
    print(f"code: {_revision()}", flush=True)
    failed = []
    for name in args.only or BENCHMARKS:
        command = [sys.executable, "-m", f"bench.{name}", "--chart", str(out / f"{name}.png")]
        if args.quick:
            command.append("--quick")
        print(f"\n## {name}", flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
                cwd=Path(__file__).resolve().parent.parent,
            )
            output, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            output, code = f"{partial}\nstopped after {TIMEOUT} s", -1
        (out / f"{name}.txt").write_text(output)
        print(output, flush=True)
        print(f"{name}: exit {code} in {time.monotonic() - started:.0f} s; {_revision()}", flush=True)
        if code != 0:
            failed.append(name)
    print(f"\nfailed: {', '.join(failed)}" if failed else "\nall benchmarks ran", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
