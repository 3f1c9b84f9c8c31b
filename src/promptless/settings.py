"""Settings live in one ContextVar: ``configure()`` sets them, ``context()`` overrides them in a block.

This is the library's one piece of mutable global state. The other process-wide
objects are devices, made once and shared on purpose: the default LM
(``promptless.lm.default_lm``), each embedded model loaded by llama.cpp (one per
file and LoRA, ``promptless.lm.llama``) and its compiled grammars, and the on-disk
LM cache files (shared across processes through sqlite). Threads started by the
library run in a copy of the caller's context (see ``run_in_context``), so settings
follow the work.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptless.adapters.base import Adapter
    from promptless.budget import Budget
    from promptless.lm.base import LM
    from promptless.trace import UsageTracker


@dataclass(frozen=True)
class Settings:
    lm: LM | None = None
    adapter: Adapter | None = None
    trace: list | None = None
    usage_tracker: UsageTracker | None = None
    max_parse_retries: int = 1
    num_threads: int = 4
    rm: Any = None
    callbacks: tuple = ()
    budget: Budget | None = None  # LM calls/tokens allowed in this context (see promptless.budget)
    stream_sink: Callable[[Any], None] | None = None  # set by promptless.stream(); Predict streams into it
    prices: Mapping[str, Any] | None = None  # model -> promptless.cost.Price ($ per million tokens)
    track_usage: bool = True  # DSPy's switch, accepted; usage is always tracked here (pred.get_lm_usage())
    executor: Any = None  # how Evaluate, Module.batch and the CLI map a program over examples (promptless.executor)


_SETTINGS: contextvars.ContextVar[Settings] = contextvars.ContextVar(
    "promptless_settings",
    default=Settings(),  # noqa: B039 - Settings is frozen
)
_NAMES = {f.name for f in fields(Settings)}


current: Callable[[], Settings] = _SETTINGS.get
"""``current()``: the settings in force here. The ContextVar's own ``get``, so a lookup runs no Python frame
(a Predict call reads the settings about ten times)."""


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - _NAMES)
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; known: {sorted(_NAMES)}")
    return changes


def configure(**changes: Any) -> None:
    """Change the settings of the current context (the main program, usually)."""
    _SETTINGS.set(replace(current(), **_checked(changes)))


@contextmanager
def context(**changes: Any) -> Iterator[Settings]:
    """Override settings inside a ``with`` block only; restored on exit, also on error."""
    token = _SETTINGS.set(replace(current(), **_checked(changes)))
    try:
        yield _SETTINGS.get()
    finally:
        _SETTINGS.reset(token)


def override(name: str, value: Any) -> contextvars.Token[Settings]:
    """Set one setting for the current context and return the token that ``restore`` takes.

    The per-call fast path of ``context()`` (every module call scopes its usage tracker): no
    keyword checking and no ``dataclasses.replace``, which re-runs ``__init__``.
    """
    changed = object.__new__(Settings)
    changed.__dict__.update(current().__dict__)
    changed.__dict__[name] = value
    return _SETTINGS.set(changed)


restore: Callable[[contextvars.Token[Settings]], None] = _SETTINGS.reset
"""``restore(token)``: undo the ``override`` that returned ``token``."""


def run_in_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bind ``fn`` to a copy of the caller's context, for handing to a worker thread."""
    ctx = contextvars.copy_context()

    def bound(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return bound


def __getattr__(name: str) -> Any:
    """``promptless.settings.lm`` reads the setting in force, as ``dspy.settings.lm`` does."""
    if name in _NAMES:
        return getattr(current(), name)
    raise AttributeError(f"module 'promptless.settings' has no attribute {name!r}")
