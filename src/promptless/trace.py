"""What a run leaves behind: the steps optimizers learn from, and the tokens it spent."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptless.cost import CostSummary, cost_summary
from promptless.settings import context, current
from promptless.types import Usage

if TYPE_CHECKING:
    from promptless.primitives import Prediction
    from promptless.types import Response


class UsageTracker:
    """Sums usage per model over a block of work; safe to share between threads.

    A plain class, not a dataclass: every module call makes one, so its constructor is kept cheap.
    """

    def __init__(
        self,
        by_model: dict[str, Usage] | None = None,
        cache_hits: int = 0,
        parent: UsageTracker | None = None,
        prices: Mapping[str, Any] | None = None,  # None: the ``prices`` setting when read
    ) -> None:
        self.by_model: dict[str, Usage] = {} if by_model is None else by_model
        self.cache_hits = cache_hits
        self.parent = parent
        self.prices = prices
        self._lock = threading.Lock()
        self._sums = [0, 0, 0, 0]  # all models: prompt, completion, cached tokens, calls; kept up to date by ``add``
        for used in self.by_model.values():
            self._sums = [a + b for a, b in zip(self._sums, vars(used).values(), strict=True)]

    def add(self, model: str, response: Response) -> None:
        if self.parent is not None:
            self.parent.add(model, response)
        if response.cached:
            spent = Usage()
        else:
            used = response.usage
            spent = Usage(used.prompt_tokens, used.completion_tokens, used.cached_tokens, 1)
        with self._lock:
            before = self.by_model.get(model)
            self.by_model[model] = spent if before is None else before + spent
            sums = self._sums
            sums[0] += spent.prompt_tokens
            sums[1] += spent.completion_tokens
            sums[2] += spent.cached_tokens
            sums[3] += spent.calls
            self.cache_hits += response.cached

    def add_usage(self, model: str, spent: Usage, cache_hits: int = 0) -> None:
        """Usage counted elsewhere (a Ray worker's calls), added here and to the parents as ``add`` would."""
        if self.parent is not None:
            self.parent.add_usage(model, spent, cache_hits)
        with self._lock:
            before = self.by_model.get(model)
            self.by_model[model] = spent if before is None else before + spent
            sums = self._sums
            sums[0] += spent.prompt_tokens
            sums[1] += spent.completion_tokens
            sums[2] += spent.cached_tokens
            sums[3] += spent.calls
            self.cache_hits += cache_hits

    @property
    def total(self) -> Usage:
        """All models together; read under the lock (other threads may still be adding)."""
        with self._lock:
            return Usage(*self._sums)

    def snapshot(self) -> dict[str, Usage]:
        """Usage per model, copied under the lock (other threads may still be adding)."""
        with self._lock:
            return dict(self.by_model)

    def __repr__(self) -> str:
        return f"UsageTracker(by_model={self.by_model!r}, cache_hits={self.cache_hits!r})"

    @property
    def cost(self) -> float | None:
        """Dollars spent (see ``promptless.cost``); None when a call went to a model with no price."""
        return self.cost_summary().total

    def cost_summary(self) -> CostSummary:
        """The priced part of the cost, and how many calls (on which models) had no price."""
        return cost_summary(self.snapshot(), self.prices)


@contextmanager
def track_usage() -> Iterator[UsageTracker]:
    """``with track_usage() as usage: program(...)`` then read ``usage.total``."""
    settings = current()
    tracker = UsageTracker(parent=settings.usage_tracker, prices=settings.prices)  # priced as when the run began
    with context(usage_tracker=tracker):
        yield tracker


@dataclass(frozen=True)
class TraceStep:
    """One predictor call: who ran, on what, and what came out."""

    predictor: Any
    inputs: dict[str, Any]
    outputs: Prediction

    def __iter__(self) -> Iterator[Any]:  # unpacks as (predictor, inputs, outputs), as in DSPy
        return iter((self.predictor, self.inputs, self.outputs))
