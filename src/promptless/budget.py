"""A spending limit on LM calls and tokens, enforced at the LM seam so no optimizer can overrun it.

Only calls that reach a backend are charged: a cache hit is free, which is what
lets a resumed compile replay its finished work without spending the budget again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from promptless.errors import BudgetExhausted

if TYPE_CHECKING:
    from promptless.types import Response

__all__ = ["Budget", "BudgetExhausted"]


@dataclass
class Budget:
    """``Budget(max_lm_calls=200)``; put it in force with ``context(budget=...)``. Thread-safe."""

    max_lm_calls: int | None = None
    max_tokens: int | None = None
    lm_calls: int = 0
    tokens: int = 0
    parent: Budget | None = field(default=None, repr=False, compare=False)  # an outer budget, charged too
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_lm_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"Budget({name}=) must be a non-negative int or None, got {value!r}")

    def charge_call(self) -> None:
        """Reserve one LM call here and in every outer budget, or raise ``BudgetExhausted`` if none is left.

        This budget is checked before the outer one is charged, so a call refused here costs no outer budget.
        """
        with self._lock:
            self._check()
            if self.parent is not None:
                self.parent.charge_call()  # raises before this budget is charged, too
            self.lm_calls += 1

    def _check(self) -> None:
        if self.max_lm_calls is not None and self.lm_calls >= self.max_lm_calls:
            raise BudgetExhausted(f"LM call budget spent: {self.lm_calls} of max_lm_calls={self.max_lm_calls}")
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetExhausted(f"token budget spent: {self.tokens} of max_tokens={self.max_tokens}")

    def remaining(self) -> tuple[int | None, int | None]:
        """(LM calls, tokens) still allowed here and by every outer budget; None where there is no limit."""
        with self._lock:
            calls = None if self.max_lm_calls is None else max(0, self.max_lm_calls - self.lm_calls)
            tokens = None if self.max_tokens is None else max(0, self.max_tokens - self.tokens)
        if self.parent is not None:
            outer_calls, outer_tokens = self.parent.remaining()
            calls = outer_calls if calls is None else calls if outer_calls is None else min(calls, outer_calls)
            tokens = outer_tokens if tokens is None else tokens if outer_tokens is None else min(tokens, outer_tokens)
        return calls, tokens

    def absorb(self, lm_calls: int, tokens: int) -> None:
        """Count spending that was checked elsewhere (Ray workers charge a budget keeper), here and outward."""
        if self.parent is not None:
            self.parent.absorb(lm_calls, tokens)
        with self._lock:
            self.lm_calls += lm_calls
            self.tokens += tokens

    def spend(self, response: Response) -> None:
        if self.parent is not None:
            self.parent.spend(response)
        with self._lock:
            self.tokens += response.usage.prompt_tokens + response.usage.completion_tokens
