"""The memory probe's reading of CPython's allocator statistics (bench/botproc.py)."""

from __future__ import annotations

from bench.botproc import python_allocator

STATS = """\
Small block threshold = 512, in 32 size classes.

class   size   num pools   blocks in use  avail blocks
-----   ----   ---------   -------------  ------------
    0     16           2             510             0

# arenas allocated total           =                1,482
# arenas reclaimed                 =                1,416
# arenas highwater mark            =                   71
# arenas allocated current         =                   66
66 arenas * 1048576 bytes/arena    =           69,206,016

# bytes in allocated blocks        =           52,345,678
# bytes in available blocks        =            9,876,543
"""


def test_the_arenas_held_and_the_bytes_in_use_are_read() -> None:
    """66 arenas of 1 MiB held, 52 MB of blocks in use: the gap is memory Python keeps but does not use."""
    assert python_allocator(STATS) == (69_206_016, 52_345_678)


def test_text_without_the_figures_reads_as_zero() -> None:
    """Another Python's wording gives zeros, which the probe's file shows plainly, never a crash of the bot."""
    assert python_allocator("nothing here\n") == (0, 0)
