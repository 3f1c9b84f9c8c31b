"""Scale-out: the executors that map a program over examples, and how to pick one by name.

``ThreadExecutor`` (``promptless.executor``) runs in this process; ``RayExecutor`` runs on
Ray actors, each with its own LM, on this machine or a cluster. Ray is imported only when
a ``RayExecutor`` starts (``pip install 'promptless[ray]'``).
"""

from __future__ import annotations

from typing import Any

from promptless.distributed.ray_executor import RayExecutor
from promptless.distributed.recipes import import_ray
from promptless.executor import Executor, ThreadExecutor, executor_in_force
from promptless.settings import current

__all__ = ["Executor", "RayExecutor", "ThreadExecutor", "import_ray", "resolve_executor"]

NAMES = ("threads", "ray")


def resolve_executor(executor: Any = None) -> Any:
    """An Executor from ``executor`` or the ``executor`` setting: an Executor object, ``"threads"`` or ``"ray"``."""
    chosen = executor if executor is not None else current().executor
    if chosen == "ray":  # by name: its actors live for one call (a RayExecutor object keeps them warm)
        return RayExecutor(keep_workers=False)
    if isinstance(chosen, str) and chosen not in NAMES:
        raise ValueError(f"executor={chosen!r}: choose 'threads', 'ray' or an Executor object (RayExecutor(...))")
    return executor_in_force(chosen)
