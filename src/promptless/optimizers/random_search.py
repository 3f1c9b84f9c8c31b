"""BootstrapFewShotWithRandomSearch: several demo sets, each scored on the valset, the best kept.

Candidates, as in DSPy: zero-shot, labelled demos only, one unshuffled bootstrap,
then bootstraps of shuffled trainsets with a random number of demos. Every
candidate's score (with its CI) goes into the report.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from promptless.evaluate.evaluate import Evaluate
from promptless.module import Module
from promptless.optimizers.base import (
    CandidateScore,
    CompileReport,
    Metric,
    Optimizer,
    attach_report,
    check_trainset,
)
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.labeled import LabeledFewShot
from promptless.primitives import Example
from promptless.trace import track_usage


class BootstrapFewShotWithRandomSearch(Optimizer):
    def __init__(
        self,
        metric: Metric,
        *,
        num_candidate_programs: int = 16,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        metric_threshold: float | None = None,
        teacher_settings: dict[str, Any] | None = None,
        num_threads: int | None = None,
        max_errors: int | None = None,
        seed: int = 0,
    ) -> None:
        self.metric = metric
        self.num_candidate_programs = num_candidate_programs
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.metric_threshold = metric_threshold
        self.teacher_settings = teacher_settings
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.seed = seed

    def candidates(self, student: Module, trainset: list[Example], teacher: Module | None) -> list[tuple[str, Module]]:
        """The candidate programs, in a fixed order for a given seed."""
        out: list[tuple[str, Module]] = [("zero-shot", student.reset_copy())]
        if self.max_labeled_demos:
            labeled = LabeledFewShot(k=self.max_labeled_demos, seed=self.seed)
            out.append((f"labelled k={self.max_labeled_demos}", labeled.compile(student, trainset=trainset)))
        for i in range(self.num_candidate_programs):
            rng = random.Random(self.seed + i)
            shuffled = list(trainset)
            size = self.max_bootstrapped_demos
            if i > 0:
                rng.shuffle(shuffled)
                size = rng.randint(1, max(1, self.max_bootstrapped_demos))
            bootstrap = BootstrapFewShot(
                self.metric,
                metric_threshold=self.metric_threshold,
                teacher_settings=self.teacher_settings,
                max_bootstrapped_demos=size,
                max_labeled_demos=self.max_labeled_demos,
                max_rounds=self.max_rounds,
                max_errors=self.max_errors,
                num_threads=self.num_threads,
                seed=self.seed + i,
            )
            name = "bootstrap" if i == 0 else f"bootstrap shuffled seed={self.seed + i} demos={size}"
            out.append((name, bootstrap.compile(student, trainset=shuffled, teacher=teacher)))
        return out

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
    ) -> Module:
        started = time.perf_counter()
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        report = CompileReport("BootstrapFewShotWithRandomSearch")
        evaluate = Evaluate(devset=val, metric=self.metric, num_threads=self.num_threads, max_errors=self.max_errors)
        best: tuple[float, str, Module] | None = None
        with track_usage() as usage:
            for name, candidate in self.candidates(student, train, teacher):
                result = evaluate(candidate)
                report.candidates.append(CandidateScore.from_scores(name, result.scores, result.errors))
                if best is None or result.score > best[0]:
                    best = (result.score, name, candidate)
        assert best is not None
        report.chosen = best[1]
        if valset is None:
            report.notes.append("no valset given: candidates were scored on the trainset (optimistic)")
        report.record_usage(usage, started)
        return attach_report(best[2], report)
