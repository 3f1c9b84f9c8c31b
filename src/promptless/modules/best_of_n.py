"""BestOfN: run a module up to N times with different rollouts and keep the best-rewarded prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptless.errors import cannot_recover
from promptless.module import Module
from promptless.primitives import Prediction

RewardFn = Callable[[dict[str, Any], Prediction], float]


class BestOfN(Module):
    """``BestOfN(module, N=3, reward_fn=lambda args, pred: ..., threshold=1.0)``.

    Attempt ``i`` runs a copy of ``module`` at ``temperature`` with ``rollout_id=i``
    (so each attempt is a distinct sample, and each is cached on its own). It
    stops at the first reward >= ``threshold``, else returns the best attempt.
    An attempt that raises counts against ``fail_count`` (default N); when
    that runs out the last error is raised. Auth errors, a missing model and a
    server that stays down are raised at once.
    """

    def __init__(
        self,
        module: Module,
        N: int,  # noqa: N803 - DSPy's name
        reward_fn: RewardFn,
        threshold: float,
        fail_count: int | None = None,
        *,
        temperature: float = 1.0,
    ) -> None:
        if N < 1:
            raise ValueError(f"{type(self).__name__}(N=) must be at least 1, got {N}")
        if not callable(reward_fn):
            raise TypeError(f"{type(self).__name__}(reward_fn=) must be callable, got {reward_fn!r:.80}")
        self.module = module
        self.N = N
        self.reward_fn = reward_fn
        self.threshold = threshold
        self.fail_count = fail_count if fail_count is not None else N
        self.temperature = temperature

    def attempt_copy(self, index: int) -> Module:
        """A copy of the module whose predictors sample at this attempt's temperature and rollout."""
        copy = self.module.deepcopy()
        for predictor in copy.predictors():
            predictor.config = {**predictor.config, "temperature": self.temperature, "rollout_id": index}
        return copy

    def forward(self, **inputs: Any) -> Prediction:
        best: tuple[float, Prediction] | None = None
        failures = 0
        call: dict[str, Any] = {}  # per-call scratch space for subclasses (a module may run in many threads)
        for index in range(self.N):
            try:
                prediction, reward = self.run_attempt(index, inputs, call)
            except Exception as error:
                if cannot_recover(error):
                    raise
                failures += 1
                if failures >= self.fail_count:
                    raise
                continue
            if best is None or reward > best[0]:
                best = (reward, prediction)
            if reward >= self.threshold:
                break
            self.after_failed_attempt(index, inputs, reward, call)
        if best is None:
            raise RuntimeError(f"{type(self).__name__}: all {self.N} attempts raised")
        return best[1]

    def run_attempt(self, index: int, inputs: dict[str, Any], call: dict[str, Any]) -> tuple[Prediction, float]:
        prediction = self.attempt_copy(index)(**inputs)
        return prediction, float(self.reward_fn(inputs, prediction))

    def after_failed_attempt(self, index: int, inputs: dict[str, Any], reward: float, call: dict[str, Any]) -> None:
        """A hook for Refine; BestOfN just tries again."""
