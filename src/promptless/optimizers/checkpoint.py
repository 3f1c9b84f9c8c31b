"""A compile's progress on disk, so a killed search resumes where it stopped.

The file is JSON, rewritten atomically (temp file + ``os.replace``) after every
finished step: a crash leaves either the previous state or the new one, never half
of each. It holds what the LM cache cannot give back cheaply: which candidates were
proposed and how each scored. The cache makes the LM calls themselves free to repeat.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from promptless.atomic import write_text_atomic
from promptless.errors import CheckpointMismatch

CHECKPOINT_FORMAT = "promptless.checkpoint"
CHECKPOINT_VERSION = 1


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts: what must match for a checkpoint to be resumed."""
    text = json.dumps(parts, sort_keys=True, default=_stable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stable(value: Any) -> str:
    """A text for a value JSON cannot hold that is the same in the next process (no memory addresses)."""
    name = getattr(value, "__qualname__", None)
    if name is not None:
        return f"{getattr(value, '__module__', '')}.{name}"
    text = repr(value)
    return type(value).__qualname__ if " at 0x" in text else text


class Checkpoint:
    """Key → JSON value store for one compile; ``path=None`` keeps it in memory only."""

    def __init__(self, path: str | os.PathLike[str] | None, *, optimizer: str, key: str) -> None:
        self.path = Path(path) if path is not None else None
        self.optimizer, self.key = optimizer, key
        self.values: dict[str, Any] = {}
        self.resumed = 0  # entries found on disk at start
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointMismatch(f"checkpoint {self.path} is not readable JSON: {error}") from error
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointMismatch(f"{self.path} is not a promptless checkpoint (format={data.get('format')!r})")
        if data.get("optimizer") != self.optimizer or data.get("key") != self.key:
            raise CheckpointMismatch(
                f"checkpoint {self.path} is from another compile ({data.get('optimizer')}, key {data.get('key')}); "
                f"this one is {self.optimizer}, key {self.key}. Delete the file or pass another checkpoint path."
            )
        self.values = dict(data.get("values") or {})
        self.resumed = len(self.values)

    def get(self, name: str, default: Any = None) -> Any:
        with self._lock:
            return self.values.get(name, default)

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self.values

    def put(self, name: str, value: Any) -> None:
        """Store one finished step and write the file (atomically) at once."""
        with self._lock:
            self.values[name] = value
            if self.path is not None:
                self._write()

    def _write(self) -> None:
        assert self.path is not None
        data = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "optimizer": self.optimizer,
            "key": self.key,
            "values": self.values,
        }
        write_text_atomic(self.path, json.dumps(data), fsync=True)
