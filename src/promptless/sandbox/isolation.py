"""Linux namespaces for the sandbox child, when this machine allows them: detected once, then cached.

``unshare --user --map-root-user --net --pid --ipc --mount --fork --kill-child``
gives the child no network interface but a loopback that is down, its own
process-ID space (it cannot see, signal or renice any host process, and when it
ends every process it could have started ends with it), its own System V IPC
and its own mount table (where its work dir becomes a size-limited tmpfs). Creating a user
namespace needs no privilege on most Linux systems; where it is not possible
(no ``unshare``, a kernel or container that forbids it) the child runs without,
and Landlock, seccomp and the audit hook block network and process access.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys

UNSHARE_FLAGS = ("--user", "--map-root-user", "--net", "--pid", "--ipc", "--mount", "--fork", "--kill-child")
NAMESPACES = ("user", "net", "pid", "ipc", "mount")


@functools.cache
def namespace_prefix(python: str) -> tuple[str, ...]:
    """The command prefix that starts ``python`` in fresh namespaces, or () when that does not work here."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    prefix = (unshare, *UNSHARE_FLAGS)
    try:
        probe = subprocess.run(
            [*prefix, python, "-I", "-S", "-c", "pass"], env={}, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return prefix if probe.returncode == 0 else ()
