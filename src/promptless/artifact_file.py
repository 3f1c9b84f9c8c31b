"""Reading a saved program's file without letting the file hang, exhaust or crash the reader.

A program artifact is read only from a regular file: a FIFO (which blocks until a writer
comes), a device (``/dev/zero`` never ends), a socket or a directory is refused at once;
so is a file over ``MAX_ARTIFACT_BYTES`` and JSON nested deeper than ``MAX_JSON_DEPTH``
(CPython's parser would raise ``RecursionError``, and code walking the value later could
too). ``check_version`` accepts exactly the integer versions this promptless reads. Every
failure is an ``ArtifactError`` whose message starts with the path. ``Module.load`` and
the CLI both read through here.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from promptless.errors import ArtifactError
from promptless.types import ARTIFACT_VERSION

MAX_ARTIFACT_BYTES = 64 * 1024 * 1024  # a program with thousands of long demos is a few MB
MAX_JSON_DEPTH = 64  # signatures, demos and their values need a handful of levels


def read_regular_text(path: str | os.PathLike[str], *, limit: int = MAX_ARTIFACT_BYTES) -> str:
    """The file's text (UTF-8, a byte-order mark allowed), read only if it is a regular file of at most ``limit``."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # non-blocking: opening a FIFO without a writer returns at once
    except FileNotFoundError:
        raise ArtifactError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ArtifactError(f"{path} is a directory, not a file") from None
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing elsewhere
            raise ArtifactError(f"{path} is not a regular file; a program is read only from a file") from None
        raise ArtifactError(f"{path} cannot be read ({error.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ArtifactError(f"{path} is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise ArtifactError(f"{path} is not a regular file ({_kind(mode)}); a program is read only from a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            data = handle.read(limit + 1)
    except OSError as error:
        raise ArtifactError(f"{path} cannot be read ({error.strerror})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise ArtifactError(f"{path} is larger than {limit // (1024 * 1024)} MB; a program artifact is never that big")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ArtifactError(
            f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start})"
        ) from None


def loads_bounded(text: str, path: str | os.PathLike[str], *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses JSON nested deeper than ``max_depth`` (``json.JSONDecodeError`` passes through)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ArtifactError(f"{path} holds JSON nested too deeply (more than {max_depth} levels)") from None
    if _depth(value, max_depth) > max_depth:
        raise ArtifactError(f"{path} holds JSON nested too deeply (more than {max_depth} levels)")
    return value


def check_version(state: dict[str, Any], path: str | os.PathLike[str] | None = None) -> None:
    """The artifact's ``version`` is an integer from 1 to ``ARTIFACT_VERSION``; anything else is refused."""
    version = state.get("version")
    where = f"{path}: " if path is not None else ""
    if "version" not in state:
        raise ArtifactError(f"{where}the artifact has no 'version' (expected {ARTIFACT_VERSION})")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(f"{where}artifact version {version!r} is not a whole number (expected {ARTIFACT_VERSION})")
    if version > ARTIFACT_VERSION:
        raise ArtifactError(f"{where}artifact version {version} is newer than promptless reads ({ARTIFACT_VERSION})")
    if version < 1:
        raise ArtifactError(f"{where}artifact version {version} is not a version (expected {ARTIFACT_VERSION})")


def _depth(value: Any, limit: int) -> int:
    """How deeply lists and objects nest in ``value`` (iterative; stops counting past ``limit``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
