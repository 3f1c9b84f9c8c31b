"""BootstrapFewShotWithRandomSearch: several demo sets, each scored on the valset, the best kept.

Candidates, as in DSPy: zero-shot, labelled demos only, one unshuffled bootstrap,
then bootstraps of shuffled trainsets with a random number of demos. Every
candidate's score (with its CI) goes into the report.
"""

from __future__ import annotations

import copy
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
    """``num_candidate_programs`` bootstraps (the first unshuffled), plus zero-shot and labelled-only.

    Every other keyword argument is a BootstrapFewShot setting, used for each bootstrap.
    """

    def __init__(self, metric: Metric, *, num_candidate_programs: int = 16, seed: int = 0, **bootstrap: Any) -> None:
        self.metric = metric
        self.num_candidate_programs = num_candidate_programs
        self.seed = seed
        self.bootstrap = BootstrapFewShot(metric, seed=seed, **bootstrap)  # the template every candidate varies

    def candidates(self, student: Module, trainset: list[Example], teacher: Module | None) -> list[tuple[str, Module]]:
        """The candidate programs, in a fixed order for a given seed."""
        template = self.bootstrap
        out: list[tuple[str, Module]] = [("zero-shot", student.reset_copy())]
        if template.max_labeled_demos:
            labeled = LabeledFewShot(k=template.max_labeled_demos, seed=self.seed)
            out.append((f"labelled k={template.max_labeled_demos}", labeled.compile(student, trainset=trainset)))
        for i in range(self.num_candidate_programs):
            rng = random.Random(self.seed + i)
            shuffled = list(trainset)
            bootstrap = copy.copy(template)
            bootstrap.seed = self.seed + i
            if i > 0:
                rng.shuffle(shuffled)
                bootstrap.max_bootstrapped_demos = rng.randint(1, max(1, template.max_bootstrapped_demos))
            name = (
                "bootstrap"
                if i == 0
                else f"bootstrap shuffled seed={bootstrap.seed} demos={bootstrap.max_bootstrapped_demos}"
            )
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
        threads, max_errors = self.bootstrap.num_threads, self.bootstrap.max_errors
        evaluate = Evaluate(devset=val, metric=self.metric, num_threads=threads, max_errors=max_errors)
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
