"""Writing a file so that a crash leaves either the old contents or the new, never half of each."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to a temp file beside ``path``, then rename it over ``path``.

    ``fsync=True`` also flushes the data to disk before the rename, for files whose loss
    costs work (checkpoints); artifacts rewritten on demand can skip that cost.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _mode_for(path))  # mkstemp makes 0600; the file gets the mode a plain open() would
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mode_for(path: Path) -> int:
    """The existing file's mode, else 0666 less the process umask (what ``open(path, "w")`` would give)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove_stale_temps(path: Path, older_than_s: float = 3600.0) -> None:
    """Temp files of this path left by a writer that was killed mid-write (SIGKILL skips every cleanup)."""
    import time  # lazy: only writers need it

    now = time.time()
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > older_than_s:
                stale.unlink()
        except OSError:
            pass


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
