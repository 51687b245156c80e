"""The bot in a process of its own, wired as `lexi-bot run` wires it (HTTP mode), for benchmarks to measure.

Settings come from the environment as usual; `--port` and `--post-interval` (the per-channel pacing of
announcements) are the only extras. Prints `ready` once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from bot.config import load_settings
from bot.runtime import Runtime
from bot.service import Service
from bot.slack.app import create_app


def trace_memory(path: str, runtime: Runtime, stop: threading.Event, every: float = 60.0) -> None:
    """Every `every` seconds, append to `path` what grew since the first minute (BENCH_MEMORY_TRACE=PATH).

    tracemalloc's biggest growths, the threads and the database pool: how bench/memory.py finds what makes RSS grow.
    """
    tracemalloc.start(25)
    first = None
    while not stop.wait(every):
        own = tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)
        snapshot = tracemalloc.take_snapshot().filter_traces([own])
        if first is None:
            first = snapshot
            continue
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        pool = runtime.store.engine.pool.status()
        lines = [f"--- {time.strftime('%H:%M:%S')} threads={threading.active_count()} {pool} traced={traced:.1f} MiB"]
        lines += [str(stat) for stat in snapshot.compare_to(first, "lineno")[:10]]
        for stat in snapshot.compare_to(first, "traceback")[:3]:
            lines += [str(stat), *("    " + line for line in stat.traceback.format())]
        with Path(path).open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (glibc 2.33+): where the C heap's bytes are."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _jemalloc_stats() -> Callable[[], tuple[int, int, int]] | None:
    """The bytes jemalloc has allocated, resident and mapped, read fresh (its `mallctl`); None when it is not loaded."""
    try:
        mallctl = ctypes.CDLL(None).mallctl
    except (OSError, AttributeError):
        return None
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]

    def read(name: bytes) -> int:
        value, size = ctypes.c_size_t(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
        mallctl(name, ctypes.byref(value), ctypes.byref(size), None, 0)
        return value.value

    def stats() -> tuple[int, int, int]:
        epoch = ctypes.c_uint64(1)  # refresh the cached statistics first
        mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))
        return read(b"stats.allocated"), read(b"stats.resident"), read(b"stats.mapped")

    return stats


def python_allocator(stats: str) -> tuple[int, int]:
    """From `sys._debugmallocstats()`'s text: the bytes Python's own allocator holds in arenas, and in blocks in use.

    Freed blocks stay in their arena until all of its blocks are free, so arenas held far beyond the blocks in use
    are fragmentation in Python's allocator, which neither the C heap's figures nor tracemalloc show.
    """
    arenas = used = 0
    for line in stats.splitlines():
        name, _, value = line.partition("=")
        if "bytes/arena" in name:
            arenas = int(value.strip().replace(",", ""))
        elif name.strip() == "# bytes in allocated blocks":
            used = int(value.strip().replace(",", ""))
    return arenas, used


def _python_allocator_now() -> tuple[int, int]:
    """`python_allocator` of this process now (the statistics are written to file descriptor 2: read from there).

    For that instant, whatever another thread writes to standard error lands in the capture and is dropped: a
    benchmark's probe only (BENCH_MALLOC_TRACE), whose bot logs errors alone.
    """
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            sys._debugmallocstats()  # noqa: SLF001 - the only way CPython reports its allocator's arenas
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return python_allocator(captured.read().decode("utf-8", "replace"))


def probe_memory(path: str, stop: threading.Event, every: float = 60.0) -> None:
    """Every `every` seconds, append to `path` where the process's memory is (BENCH_MALLOC_TRACE=PATH).

    Cheap enough not to change what it measures (unlike tracemalloc): VmRSS; Python's allocated blocks and objects
    the collector tracks (growth there is Python-level); glibc's heap in use, free inside it (fragmentation) and
    mmapped (big blocks), which Python's own allocator and the C libraries (SQLite, libpq) both draw on. On jemalloc
    (preloaded), the same columns hold its bytes allocated, resident beyond those, and mapped beyond resident.
    Python's own allocator: the arenas it holds and the bytes of its blocks in use (python_allocator). And the part of
    the RSS that is files mapped (the interpreter's and libraries' code, paged in as it first runs), not memory.
    BENCH_MALLOC_TRIM=1: call malloc_trim(0) before each sample, to see how much of the RSS is free heap kept.
    """
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
        mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        mallinfo2 = None
    jemalloc = _jemalloc_stats()  # preloaded (LD_PRELOAD): its own figures, since glibc's heap is then unused
    try:  # the SQLite library Python's sqlite3 module uses: its page caches and statements (malloc'd, in the heap)
        sqlite_used = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0").sqlite3_memory_used
        sqlite_used.restype = ctypes.c_int64
    except (OSError, AttributeError):
        sqlite_used = None
    with Path(path).open("a", encoding="utf-8") as out:
        types = os.environ.get("BENCH_MALLOC_TYPES")  # set: also the kinds of object that grew since the first minute
        first_types: Counter[str] | None = None
        out.write(
            "time rss_mib py_blocks gc_objects heap_in_use_mib heap_free_mib mmapped_mib sqlite_mib threads"
            " py_arenas_mib py_used_mib rss_file_mib\n"
        )
        trim = ctypes.CDLL(None).malloc_trim if os.environ.get("BENCH_MALLOC_TRIM") else None
        while not stop.wait(every):
            if trim is not None:  # hand glibc's free heap pages back first: what remains is held, not fragmented
                trim(0)
            status = {
                line.split(":")[0]: int(line.split()[1]) / 1024
                for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith(("VmRSS:", "RssFile:"))
            }
            rss = status.get("VmRSS", 0.0)
            info = mallinfo2() if mallinfo2 is not None else _MallInfo2()
            if jemalloc is not None:  # allocated; resident pages beyond it (free kept); mapped beyond resident
                allocated, resident, mapped = jemalloc()
                info = _MallInfo2(uordblks=allocated, fordblks=resident - allocated, hblkhd=mapped - resident)
            out.write(
                f"{time.strftime('%H:%M:%S')} {rss:.1f} {sys.getallocatedblocks()} {len(gc.get_objects())} "
                f"{info.uordblks / 2**20:.1f} {info.fordblks / 2**20:.1f} {info.hblkhd / 2**20:.1f} "
                f"{(sqlite_used() if sqlite_used is not None else 0) / 2**20:.2f} "
                f"{threading.active_count()} "
                + " ".join(f"{value / 2**20:.1f}" for value in _python_allocator_now())
                + f" {status.get('RssFile', 0.0):.1f}\n"
            )
            if types:
                counts = Counter(type(o).__qualname__ for o in gc.get_objects())
                if first_types is None:
                    first_types = counts
                else:
                    counts.subtract(first_types)
                    out.write("    grew: " + ", ".join(f"{name} {n:+d}" for name, n in counts.most_common(8)) + "\n")
            out.flush()


def start_profile() -> None:
    """Profile the CPU time of every thread with yappi (BENCH_PROFILE=PATH; `pip install yappi`, not a dependency)."""
    import yappi

    yappi.set_clock_type(os.environ.get("BENCH_PROFILE_CLOCK", "cpu"))
    yappi.start(builtins=False, profile_threads=True)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: yappi.clear_stats())  # measure from here on


def save_profile(path: str) -> None:
    """Write the functions by total CPU time, and by own CPU time, to `path`."""
    import yappi

    yappi.stop()
    stats = yappi.get_func_stats()
    with Path(path).open("w", encoding="utf-8") as out:
        for key in ("ttot", "tsub"):
            out.write(f"=== by {key}\n")
            for stat in sorted(stats, key=lambda s: getattr(s, key), reverse=True)[
                : int(os.environ.get("BENCH_PROFILE_TOP", "70"))
            ]:
                where = f"{Path(stat.module).name}:{stat.lineno} {stat.name}"
                out.write(f"{stat.ncall:>8} {stat.ttot:9.3f} {stat.tsub:9.3f}  {where}\n")


def count_statements(path: str) -> Callable[[], None]:
    """Count the SQL statements the bot sends, by their first 100 characters (BENCH_SQL_COUNT=PATH).

    Returns what writes the counts to `path`: per kind, how many were sent, how many distinct SQL texts it took
    (each distinct text is another entry in every connection's prepared-statement cache: a kind whose texts keep
    varying, like an IN list of changing length, fills those caches slowly), and how many rows they returned or
    changed in all (the driver's rowcount; SQLite's driver gives none for a SELECT). SIGUSR2 starts again from zero.
    """
    counts: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    texts: dict[str, set[str]] = {}
    lock = threading.Lock()

    @event.listens_for(Engine, "after_cursor_execute")
    def _count(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        kind = " ".join(statement.split())[:100]
        with lock:
            counts[kind] += 1
            rows[kind] += max(getattr(cursor, "rowcount", -1) or 0, 0)
            texts.setdefault(kind, set()).add(statement)

    def _clear(_signum: int, _frame: Any) -> None:
        with lock:
            counts.clear()
            rows.clear()
            texts.clear()

    signal.signal(signal.SIGUSR2, _clear)

    def _write() -> None:
        with lock, Path(path).open("w", encoding="utf-8") as out:
            out.write(f"{'sent':>8} {'texts':>6} {'rows':>9}  statement\n")
            out.writelines(
                f"{n:>8} {len(texts[kind]):>6} {rows[kind]:>9}  {kind}\n" for kind, n in counts.most_common()
            )

    return _write


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
    if os.environ.get("BENCH_PROFILE"):
        start_profile()
    write_counts = count_statements(os.environ["BENCH_SQL_COUNT"]) if os.environ.get("BENCH_SQL_COUNT") else None
    runtime = Runtime.build(settings, post_interval=args.post_interval)
    with Service(runtime, drain_timeout=20) as service:

        def on_signal(_signum: int, _frame: Any) -> None:
            service.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        service.start_poller()
        if os.environ.get("BENCH_MALLOC_TRACE"):
            threading.Thread(
                target=probe_memory, args=(os.environ["BENCH_MALLOC_TRACE"], service.stop), daemon=True
            ).start()
        if os.environ.get("BENCH_MEMORY_TRACE"):
            threading.Thread(
                target=trace_memory, args=(os.environ["BENCH_MEMORY_TRACE"], runtime, service.stop), daemon=True
            ).start()
        service.serve_http(create_app(runtime), "127.0.0.1", args.port, threads=args.http_threads, stop_timeout=5)
        print("ready", flush=True)
        while not service.stop.wait(0.5):
            pass
    if os.environ.get("BENCH_PROFILE"):
        save_profile(os.environ["BENCH_PROFILE"])
    if write_counts is not None:
        write_counts()
    return 0


if __name__ == "__main__":
    sys.exit(main())
