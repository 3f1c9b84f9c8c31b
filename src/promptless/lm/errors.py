"""The LM errors, re-exported from ``promptless.errors`` where the whole tree lives."""

from __future__ import annotations

from promptless.errors import (
    LMAuthError,
    LMBadRequest,
    LMContextOverflow,
    LMError,
    LMNotFound,
    LMRateLimited,
    LMTimeout,
    LMUnavailable,
    ModelNotInstalled,
)

__all__ = [
    "LMAuthError",
    "LMBadRequest",
    "LMContextOverflow",
    "LMError",
    "LMNotFound",
    "LMRateLimited",
    "LMTimeout",
    "LMUnavailable",
    "ModelNotInstalled",
]
