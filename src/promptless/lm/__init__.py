"""The LM seam and its backends."""

from __future__ import annotations

import functools

from promptless.lm.base import LM, Request, Response, Usage
from promptless.lm.errors import (
    LMAuthError,
    LMBadRequest,
    LMContextOverflow,
    LMError,
    LMNotFound,
    LMRateLimited,
    LMTimeout,
    LMUnavailable,
)

DEFAULT_MODEL = "local/gemma-3-270m"

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
    """The embedded Gemma-3-270M, used when nothing is configured; one per process."""
    return LM(DEFAULT_MODEL)


def resolve_lm(lm: LM | None = None) -> LM:
    """The LM to use: the one given, else the configured one, else the embedded default."""
    from promptless.settings import current

    return lm or current().lm or default_lm()
