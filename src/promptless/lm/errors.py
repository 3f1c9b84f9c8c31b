"""Typed LM errors: callers retry what is transient and stop at once on what is not."""

from __future__ import annotations


class LMError(Exception):
    """Base class of every error raised by an LM backend."""

    transient: bool = False


class LMTimeout(LMError):
    """The backend did not answer within the timeout. Retried."""

    transient = True


class LMUnavailable(LMError):
    """The backend could not be reached or failed on its side (5xx, refused connection). Retried."""

    transient = True


class LMRateLimited(LMError):
    """The backend asked us to slow down (HTTP 429). Retried with backoff."""

    transient = True


class LMAuthError(LMError):
    """The credentials were refused (HTTP 401/403). Never retried."""


class LMNotFound(LMError):
    """The model (or endpoint) does not exist on the backend. Never retried."""


class LMContextOverflow(LMError):
    """The prompt does not fit the model's context window. Never retried."""


class LMBadRequest(LMError):
    """The backend rejected the request as malformed. Never retried."""
