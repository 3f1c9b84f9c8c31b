"""The LM cache: an in-memory LRU in front of a sqlite file (WAL) that processes can share.

The file is created on the first write, never at import or construction, so building an
``LM`` touches no disk. Nothing raises to the caller: an unusable location means memory
only (one warning); a corrupt file is moved aside, kept for inspection, and replaced.
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
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_SETUP = (
    "PRAGMA journal_mode=WAL",  # readers in other processes never block the writer
    "PRAGMA synchronous=NORMAL",  # safe with WAL; a crash may lose the last writes, which a cache can afford
    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)",
)


def default_directory() -> Path:
    """``$PROMPTLESS_CACHE_DIR``, else ``~/.cache/promptless``; read per cache so tests can redirect it."""
    return Path(os.environ.get("PROMPTLESS_CACHE_DIR") or Path.home() / ".cache" / "promptless")


class Cache:
    """Thread-safe two-tier cache of JSON dicts; memory holds JSON text so each ``get`` returns a fresh copy."""

    busy_timeout: float = 30.0  # seconds to wait for another process's write lock

    def __init__(self, directory: str | Path | None = None, *, memory_size: int = 10_000, disk: bool = True) -> None:
        self.path = Path(directory if directory is not None else default_directory()) / FILE_NAME
        self.memory_size = memory_size
        self.hits = 0  # gets answered (memory or disk)
        self.misses = 0
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._memory_lock = threading.Lock()  # separate locks: a slow disk never blocks memory hits
        self._disk_lock = threading.Lock()
        self._disk = disk
        self._conn: sqlite3.Connection | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._memory_lock:
            text = self._memory.get(key)
            if text is not None:
                self._memory.move_to_end(key)
        from_disk = text is None
        if from_disk:
            rows = self._disk_run("SELECT value FROM entries WHERE key = ?", (key,), create=False)
            text = rows[0][0] if rows else None
        value = _decode(text)
        with self._memory_lock:
            self.hits += value is not None
            self.misses += value is None
            if from_disk and value is not None and key not in self._memory:  # never overwrite a newer put
                self._remember(key, text)
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            log.warning("LM cache: value is not JSON-serialisable (%s); not cached", error)
            return
        with self._memory_lock:
            self._remember(key, text)
        self._disk_run("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, text, time.time()), create=True)

    def discard(self, key: str) -> None:
        """Forget one entry (a reply that turned out unusable must not be replayed)."""
        with self._memory_lock:
            self._memory.pop(key, None)
        self._disk_run("DELETE FROM entries WHERE key = ?", (key,), create=False)

    def clear(self) -> None:
        """Empty both tiers (the file stays, empty)."""
        with self._memory_lock:
            self._memory.clear()
        self._disk_run("DELETE FROM entries", (), create=False)

    def close(self) -> None:
        """Release the file; a later call reopens it."""
        with self._disk_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _remember(self, key: str, text: str) -> None:
        self._memory[key] = text
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_size:
            self._memory.popitem(last=False)

    def _disk_run(self, sql: str, params: tuple[Any, ...], *, create: bool) -> list[tuple[Any, ...]]:
        """Run one statement; after moving a corrupt file aside, retry once on a fresh one."""
        with self._disk_lock:
            for _ in range(2):
                try:
                    conn = self._connect(create)
                    if conn is None:
                        return []
                    with conn:  # commit, or roll back on error
                        return conn.execute(sql, params).fetchall()
                except (sqlite3.Error, OSError) as error:
                    if not self._recover(error):
                        return []
            return []

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; opened lazily, and a read never creates the file."""
        if self._conn is None and self._disk and (create or self.path.exists()):
            if self.path.exists() and not os.access(self.path.parent, os.W_OK | os.X_OK):
                # A read-only, pre-filled cache (shipped with a program, or on a read-only mount) still
                # serves hits: open it immutable, without the setup statements that write.
                if create:
                    return None
                uri = f"file:{self.path}?immutable=1"
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                return self._conn
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)
            for statement in _SETUP:  # a failure here reaches _recover, which closes the connection
                self._conn.execute(statement)
        return self._conn

    def _recover(self, error: BaseException) -> bool:
        """Close the connection; True when the file was corrupt and has been moved aside (so retry)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if not _is_corrupt(error):
            self._disable(error)  # locked, read-only, no space, not a directory...: not the file's fault
            return False
        target = self.path.with_name(f"{FILE_NAME}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        while target.exists():
            target = target.with_name(target.name + "-1")
        log.warning("LM cache %s is damaged (%s); moved to %s, starting afresh", self.path, error, target)
        try:
            self.path.rename(target)
            for suffix in ("-wal", "-shm"):  # the journal belongs to the old file; never replay it into a new one
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    side.rename(f"{target}{suffix}")
        except OSError as move_error:
            self._disable(move_error)
            return False
        return True

    def _disable(self, error: BaseException) -> None:
        if self._disk:
            log.warning("LM cache on disk is off (%s: %s); using memory only", self.path, error)
        self._disk = False


def _is_corrupt(error: BaseException) -> bool:
    """Only a damaged file, not a locked or read-only one (``OperationalError`` is a ``DatabaseError`` too)."""
    code = getattr(error, "sqlite_errorcode", None) or 0  # absent on errors raised by Python itself
    return isinstance(error, sqlite3.DatabaseError) and code & 0xFF in _CORRUPT


def _decode(text: str | None) -> dict[str, Any] | None:
    """A row that is not a JSON object counts as a miss; the next put overwrites it."""
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
