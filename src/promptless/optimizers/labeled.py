"""LabeledFewShot: demos straight from labelled examples, no LM calls."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from promptless.module import Module
from promptless.optimizers.base import CompileReport, Optimizer, attach_report, check_trainset
from promptless.primitives import Example


class LabeledFewShot(Optimizer):
    """Give every predictor up to ``k`` training examples as demos (a seeded sample, or the first k)."""

    def __init__(self, k: int = 16, *, sample: bool = True, seed: int = 0) -> None:
        if k < 0:
            raise ValueError(f"LabeledFewShot(k=) must be >= 0, got {k}")
        self.k, self.sample, self.seed = k, sample, seed

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
            predictor.demos = random.Random(self.seed).sample(examples, k) if self.sample else examples[:k]
        report = CompileReport("LabeledFewShot", notes=[f"{k} labelled demos per predictor"])
        report.wall_time_s = time.perf_counter() - started
        return attach_report(program, report)
