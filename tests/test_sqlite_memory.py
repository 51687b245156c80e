"""SQLite's memory stays bounded however many pooled connections have read the file (PRAGMA soft_heap_limit)."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

from bot.db.store import SQLITE_HEAP_LIMIT, make_engine

MIB = 2**20


def _sqlite_memory_used() -> int:
    """What the SQLite library this process runs (the one Python's sqlite3 module links) holds now."""
    library = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    used = library.sqlite3_memory_used
    used.restype = ctypes.c_int64
    return int(used())


def test_connections_reading_the_whole_file_stay_within_the_limit(tmp_path: Path) -> None:
    """Fourteen connections that each read 6 MB of pages would cache 2 MiB each (28 MiB); SQLite keeps to the limit."""
    engine = make_engine(f"sqlite:///{tmp_path}/big.db")
    connections = []
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE rows_of_bytes (id INTEGER PRIMARY KEY, body BLOB)")
            conn.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000) "
                "INSERT INTO rows_of_bytes (body) SELECT randomblob(1000) FROM n"
            )
        connections = [engine.connect() for _ in range(14)]  # all held at once: none gives its cache back
        for conn in connections:
            assert conn.exec_driver_sql("PRAGMA soft_heap_limit").scalar() == SQLITE_HEAP_LIMIT
            assert conn.exec_driver_sql("SELECT sum(length(body)) FROM rows_of_bytes").scalar() == 6_000_000
        used = _sqlite_memory_used()
        assert used > 4 * MIB  # the library measured is the one that read the file (a copy of its own would say ~0)
        assert used <= SQLITE_HEAP_LIMIT * 1.25
    finally:
        for conn in connections:
            conn.close()
        engine.dispose()
