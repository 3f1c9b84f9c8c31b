"""The LM cache: an in-memory LRU in front of a sqlite file (WAL) shared by processes.

The file is created on the first write, never at import or construction, so a
read-only home still works (memory only, with one warning). A corrupt file is
moved aside, kept for inspection, and replaced; nothing raises to the caller.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger("promptless.cache")

FILE_NAME = "lm_cache.sqlite3"


def default_directory() -> Path:
    return Path(os.environ.get("PROMPTLESS_CACHE_DIR") or Path.home() / ".cache" / "promptless")


class Cache:
    """Thread-safe two-tier cache of JSON values by string key."""

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, memory_size: int = 10_000, disk: bool = True
    ):
        self.path = Path(directory) / FILE_NAME if directory is not None else default_directory() / FILE_NAME
        self.memory_size = memory_size
        self.hits = 0
        self.misses = 0
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._disk_enabled = disk
        self._conn: sqlite3.Connection | None = None

    # -- public ---------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._memory.get(key)
            if value is not None:
                self._memory.move_to_end(key)
            else:
                value = self._disk_get(key)
                if value is not None:
                    self._remember(key, value)
            self.hits += value is not None
            self.misses += value is None
            return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._remember(key, value)
            self._disk_put(key, text)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            conn = self._connect(create=False)
            if conn is not None:
                self._guarded(lambda: conn.execute("DELETE FROM entries") and conn.commit())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- memory tier ----------------------------------------------------------------------------
    def _remember(self, key: str, value: dict[str, Any]) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_size:
            self._memory.popitem(last=False)

    # -- disk tier (called with the lock held) ----------------------------------------------------
    def _disk_get(self, key: str) -> dict[str, Any] | None:
        conn = self._connect(create=False)
        if conn is None:
            return None
        row = self._guarded(lambda: conn.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone())
        if not row:
            return None
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:
            return None  # a damaged row is a miss; the next put overwrites it

    def _disk_put(self, key: str, text: str) -> None:
        conn = self._connect(create=True)
        if conn is not None:
            self._guarded(
                lambda: (
                    conn.execute(
                        "INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)",
                        (key, text, time.time()),
                    )
                    and conn.commit()
                )
            )

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None or not self._disk_enabled:
            return self._conn
        if not create and not self.path.exists():
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._open()
        except sqlite3.DatabaseError:
            self._move_aside()
            self._conn = self._open_or_disable()
        except OSError as error:
            self._disable(error)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_or_disable(self) -> sqlite3.Connection | None:
        try:
            return self._open()
        except (sqlite3.Error, OSError) as error:
            self._disable(error)
            return None

    def _guarded(self, operation: Any) -> Any:
        """Run a query; on a corrupt or unwritable file, fall back instead of raising."""
        try:
            return operation()
        except sqlite3.DatabaseError as error:
            log.warning("LM cache %s failed (%s); starting a fresh file", self.path, error)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._move_aside()
            return None
        except (sqlite3.Error, OSError) as error:
            self._disable(error)
            return None

    def _move_aside(self) -> None:
        if not self.path.exists():
            return
        target = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.warning("LM cache file %s is damaged; moved to %s and starting afresh", self.path, target)
        try:
            self.path.rename(target)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as error:
            self._disable(error)

    def _disable(self, error: BaseException) -> None:
        if self._disk_enabled:
            log.warning("LM cache on disk is off (%s: %s); using memory only", self.path, error)
        self._disk_enabled = False
        if self._conn is not None:
            self._conn.close()
        self._conn = None
