"""Which memory allocator the bot says it runs on (logged at the start of `lexi-bot run`; README → Memory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.ops.checks import MALLOC_HINT, allocator

_JEMALLOC = sorted(str(path) for path in Path("/usr/lib").glob("*-linux-gnu/libjemalloc.so.2"))
_MAPS_WITH = "7f2c1a400000-7f2c1a42c000 r--p 00000000 fd:01 1311 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n"
_MAPS_WITHOUT = "7f2c1a400000-7f2c1a42c000 r--p 00000000 fd:01 1312 /usr/lib/x86_64-linux-gnu/libc.so.6\n"


def test_jemalloc_is_named_only_when_it_is_mapped() -> None:
    """A mapped libjemalloc means jemalloc; anything else is the C library's malloc, with where to read more."""
    assert allocator(_MAPS_WITH) == "jemalloc"
    assert allocator(_MAPS_WITHOUT) == MALLOC_HINT
    assert allocator("") == MALLOC_HINT
    assert "README → Memory" in MALLOC_HINT


def _said(env: dict[str, str]) -> str:
    """What a fresh Python process with `env` says it runs on."""
    done = subprocess.run(
        [sys.executable, "-c", "from bot.ops.checks import allocator; print(allocator())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(not _JEMALLOC, reason="libjemalloc2 is not installed here (.ci/run installs it)")
def test_a_process_started_with_jemalloc_preloaded_says_so() -> None:
    """LD_PRELOAD as the Docker image sets it: the process reads its own maps and finds jemalloc."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    assert _said({**env, "LD_PRELOAD": _JEMALLOC[0]}) == "jemalloc"
    assert _said(env) == MALLOC_HINT
