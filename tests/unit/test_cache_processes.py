"""The sqlite LM cache shared by processes (Ray workers on one machine): WAL, no lost or torn writes.

Four processes open one fresh cache directory at the same moment (the file and its WAL
switch are created by whichever comes first), each writes its own entries while reading
the others'; afterwards every entry is there, whole, and no process fell back to memory.
"""

from __future__ import annotations

import multiprocessing
import sqlite3

from promptless.lm.cache import FILE_NAME, Cache

PROCESSES = 4
ENTRIES = 150


def _writer(directory: str, worker: int, start: multiprocessing.synchronize.Event) -> tuple[bool, int]:
    cache = Cache(directory, memory_size=10)  # a small memory tier: most reads go to the file
    start.wait()
    seen = 0
    for i in range(ENTRIES):
        cache.put(f"{worker}:{i}", {"text": f"answer {worker}/{i}", "pad": "x" * 200})
        other = cache.get(f"{(worker + 1) % PROCESSES}:{i // 2}")
        seen += other is not None
    disk_on = cache._disk
    cache.close()
    return disk_on, seen


def test_processes_share_one_cache_file_without_losing_an_entry(tmp_path):
    context = multiprocessing.get_context("spawn")
    start = context.Manager().Event()
    with context.Pool(PROCESSES) as pool:
        pending = [pool.apply_async(_writer, (str(tmp_path), w, start)) for w in range(PROCESSES)]
        start.set()
        results = [p.get(timeout=120) for p in pending]
    assert all(disk_on for disk_on, _ in results), results  # none gave up on the file (locked, corrupt, ...)
    assert sum(seen for _, seen in results) > 0  # the processes did read each other's entries from the file
    reader = Cache(tmp_path)
    for worker in range(PROCESSES):
        for i in range(ENTRIES):
            assert reader.get(f"{worker}:{i}") == {"text": f"answer {worker}/{i}", "pad": "x" * 200}
    with sqlite3.connect(tmp_path / FILE_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == PROCESSES * ENTRIES
    assert not list(tmp_path.glob(f"{FILE_NAME}.corrupt-*"))
