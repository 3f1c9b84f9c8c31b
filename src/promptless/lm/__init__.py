"""The LM seam and its backends."""

from __future__ import annotations

import functools

from promptless.errors import (
    LMAuthError,
    LMBadRequest,
    LMContextOverflow,
    LMError,
    LMNotFound,
    LMRateLimited,
    LMTimeout,
    LMUnavailable,
)
from promptless.lm.base import LM
from promptless.settings import current
from promptless.types import DEFAULT_MODEL, Request, Response, Usage

__all__ = [
    "DEFAULT_MODEL",
    "LM",
    "LMAuthError",
    "LMBadRequest",
    "LMContextOverflow",
    "LMError",
    "LMNotFound",
    "LMRateLimited",
    "LMTimeout",
    "LMUnavailable",
    "Request",
    "Response",
    "Usage",
    "default_lm",
    "resolve_lm",
]


@functools.lru_cache(maxsize=1)
def default_lm() -> LM:
    """The embedded Gemma-3-270M, used when nothing is configured; one per process (a process-wide device)."""
    return LM(DEFAULT_MODEL)


def resolve_lm(lm: LM | None = None) -> LM:
    """The LM to use: the one given, else the configured one, else the embedded default."""
    return lm or current().lm or default_lm()
