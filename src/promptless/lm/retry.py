"""How long to wait before retrying a transient LM error: exponential backoff with jitter, or what the server asked.

The sleep functions are injectable so tests (and callers with their own clocks) never patch ``time.sleep``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from promptless.errors import LMError, LMTimeout

MAX_RETRY_AFTER_S = 60.0  # a server asking for longer than this is not waited for past this


async def _asyncio_sleep(seconds: float) -> None:
    import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Backoff:
    """``retries`` attempts after the first; delay ``base * 2**attempt`` (capped at ``cap``), ±25 % jitter.

    A ``Retry-After`` from the server (``error.retry_after``) replaces the computed delay, up to
    ``MAX_RETRY_AFTER_S``. A timeout is retried at most ``timeout_retries`` times: a server that
    hung for a whole timeout rarely answers the next one, and each try costs that timeout again.
    """

    retries: int = 3
    base: float = 0.5
    cap: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    asleep: Callable[[float], Awaitable[None]] = field(default=_asyncio_sleep, repr=False)
    timeout_retries: int = 1

    def delay(self, error: LMError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when ``error`` must be raised."""
        if not error.transient or attempt >= self.retries:
            return None
        if isinstance(error, LMTimeout) and attempt >= self.timeout_retries:
            return None
        if error.retry_after is not None and error.retry_after >= 0:
            return min(MAX_RETRY_AFTER_S, error.retry_after)
        return min(self.cap, self.base * 2**attempt) * (0.75 + random.random() / 2)
