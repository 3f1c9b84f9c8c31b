"""The sandbox's layers by name: which can be required, the warning when one is missing, the refusal to run.

Why one place: a layer the host lacks must be said once, clearly (a log warning
per layer per process, not per run), and ``Sandbox(require=...)`` must refuse
to run without it, naming it. The layers themselves live elsewhere: namespaces
in ``isolation.py``, the kernel layers in ``confine.py``, the hook in ``policy.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping

logger = logging.getLogger("promptless.sandbox")

ALWAYS = ("process", "rlimits", "audit-hook")
KERNEL = ("disk-quota", "no-capabilities", "landlock", "seccomp")  # confine.apply's order
REQUIRABLE = frozenset({"namespaces", *KERNEL})
HINTS = {
    "namespaces": "user namespaces (`unshare --user` must work: a kernel or container that forbids them)",
    "disk-quota": "a mount namespace for the tmpfs work dir (comes with the namespaces)",
    "no-capabilities": "capset(2)",
    "landlock": "a Linux kernel with Landlock enabled (5.13+, `lsm=...,landlock`)",
    "seccomp": "seccomp filters on x86_64",
}

_warned: set[str] = set()
_lock = threading.Lock()


class SandboxUnavailable(RuntimeError):
    """The child interpreter could not be started, or not with a layer the caller requires: a problem of the host."""


def normalize_required(require: Iterable[str] | None) -> frozenset[str]:
    """``require`` as a frozenset of known layer names; ValueError for an unknown name."""
    if isinstance(require, str):
        require = {require}
    names = frozenset(require or ())
    unknown = sorted(names - REQUIRABLE)
    if unknown:
        raise ValueError(f"unknown sandbox layer(s) {unknown}; known: {sorted(REQUIRABLE)}")
    return names


def refuse_missing(require: frozenset[str], missing: Mapping[str, str]) -> None:
    """Raise SandboxUnavailable naming every required layer that is missing here, and why."""
    absent = sorted(require & set(missing))
    if absent:
        details = "; ".join(f"{layer}: {missing[layer]} (needs {HINTS[layer]})" for layer in absent)
        raise SandboxUnavailable(f"the sandbox layer(s) {', '.join(absent)} are required but not available: {details}")


def warn_missing(missing: Mapping[str, str]) -> None:
    """Log each missing layer once per process."""
    with _lock:
        new = [layer for layer in missing if layer not in _warned]
        _warned.update(new)
    for layer in new:
        logger.warning(
            "sandbox layer %r is not available here (%s); runs go on without it. It needs %s; "
            "Sandbox(require={%r}) refuses to run without it.",
            layer,
            missing[layer],
            HINTS.get(layer, layer),
            layer,
        )
