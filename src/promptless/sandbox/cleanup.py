"""Remove a sandbox work dir whatever the code left in it; never raises, never recurses.

Why not ``shutil.rmtree``: it recurses once per directory level (a 3000-deep
chain raises RecursionError out of ``Sandbox.run``), builds full paths (longer
than PATH_MAX past a few hundred levels), and gives up on directories the code
made unreadable. This walks with one directory descriptor at a time (opened
relative to its parent, never following links), climbs back with ``..``, and
makes a directory readable and writable before it looks inside. The child is
dead by then, so nothing moves underneath; the work dir can hold no links
(the sandbox denies them) and ``O_NOFOLLOW`` refuses any that are there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat

logger = logging.getLogger("promptless.sandbox")

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_STEPS = 10_000_000  # a bound on the work, in case the file system misbehaves


def remove_tree(root: str) -> bool:
    """Remove ``root`` and everything under it. True when it is gone; False (and a log warning) when not."""
    try:
        _remove(root)
    except Exception as error:  # cleanup must never break the run it cleans up after
        logger.warning("could not remove the sandbox work dir %s: %s", root, error)
    gone = not os.path.lexists(root)
    if not gone:
        logger.warning("the sandbox work dir %s is still on disk", root)
    return gone


def _open_dir(name: str, dir_fd: int | None) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:  # not root: make it ours to read again, then retry
        os.chmod(name, stat.S_IRWXU, dir_fd=dir_fd, follow_symlinks=False)
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def _remove(root: str) -> None:
    if not os.path.lexists(root):
        return
    if not stat.S_ISDIR(os.lstat(root).st_mode):
        os.unlink(root)
        return
    with contextlib.suppress(OSError):
        os.chmod(root, stat.S_IRWXU)
    names: list[str] = []  # the path from root to the directory ``fd`` is open on
    fd = _open_dir(root, None)
    try:
        for _ in range(MAX_STEPS):
            child = _first_subdir_after_clearing_files(fd)
            if child is not None:
                with contextlib.suppress(OSError):
                    os.chmod(child, stat.S_IRWXU, dir_fd=fd, follow_symlinks=False)
                inner = _open_dir(child, fd)
                os.close(fd)
                fd = inner
                names.append(child)
                continue
            if not names:
                break
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(root)


def _first_subdir_after_clearing_files(fd: int) -> str | None:
    """Unlink every non-directory in the directory ``fd``; return one subdirectory's name, or None."""
    with os.scandir(fd) as entries:
        listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    subdir = None
    for name, is_dir in listed:
        if is_dir:
            subdir = subdir or name
        else:
            os.unlink(name, dir_fd=fd)
    return subdir
