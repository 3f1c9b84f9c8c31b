"""LabeledFewShot: demos straight from labelled examples, no LM calls.

By default the demos are balanced over a finite output's labels and interleaved by label
(or, for free text, chosen to differ from each other): see ``demo_selection``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from promptless.module import Module
from promptless.optimizers import demo_selection as selection
from promptless.optimizers.base import CompileReport, Optimizer, attach_report, check_trainset
from promptless.primitives import Example


class LabeledFewShot(Optimizer):
    """Give every predictor up to ``k`` training examples as demos (a seeded sample, or the first k).

    ``demo_selection="balanced"`` (the default) picks the k over the shuffled trainset
    round-robin by label and interleaves them; ``"first"`` is DSPy's plain sample.
    """

    def __init__(self, k: int = 16, *, sample: bool = True, seed: int = 0, demo_selection: str = "balanced") -> None:
        if k < 0:
            raise ValueError(f"LabeledFewShot(k=) must be >= 0, got {k}")
        if demo_selection not in list(selection.SELECTIONS):
            raise ValueError(
                f"LabeledFewShot(demo_selection=) is one of {list(selection.SELECTIONS)}, got {demo_selection!r}"
            )
        self.k, self.sample, self.seed, self.demo_selection = k, sample, seed, demo_selection

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
    ) -> Module:
        started = time.perf_counter()
        examples = check_trainset(trainset)
        program = student.reset_copy()
        k = min(self.k, len(examples))
        for predictor in program.predictors():
            predictor.demos = self.choose(predictor.signature, examples, k)
        report = CompileReport("LabeledFewShot", notes=[f"{k} labelled demos per predictor ({self.demo_selection})"])
        report.wall_time_s = time.perf_counter() - started
        return attach_report(program, report)

    def choose(self, signature: Any, examples: list[Example], k: int) -> list[Example]:
        """The k demos for one predictor."""
        rng = random.Random(self.seed)
        if self.demo_selection == "first":
            return rng.sample(examples, k) if self.sample else examples[:k]
        if not self.sample:  # the first k, as asked; only their order changes
            return selection.arrange(signature, examples[:k])
        pool = rng.sample(examples, len(examples))
        return selection.arrange(signature, selection.select(signature, pool, k, rng))
