"""BootstrapFewShotWithRandomSearch: several demo sets, each scored on the valset, the best kept.

Candidates, as in DSPy: zero-shot, labelled demos only, one unshuffled bootstrap,
then bootstraps of shuffled trainsets with a random number of demos. Every
candidate's score, with its CI and its paired gain over the uncompiled baseline,
goes into the report; the zero-shot candidate is the baseline itself unless the
student came with demos.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from promptless.module import Module
from promptless.optimizers.base import Metric, Optimizer, check_trainset
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.labeled import LabeledFewShot
from promptless.optimizers.plan import Plan, bootstrap_runs, probe
from promptless.optimizers.search import SearchRun, SearchSettings
from promptless.primitives import Example
from promptless.settings import current


class BootstrapFewShotWithRandomSearch(Optimizer):
    """``num_candidate_programs`` bootstraps (the first unshuffled), plus labelled-only, against the baseline.

    Every other keyword argument is a BootstrapFewShot setting, used for each bootstrap.
    The search settings (budget, checkpoint, ``fallback_to_baseline``) are those of
    ``SearchSettings``: the best candidate is returned only if it beats the uncompiled
    program significantly on the valset.
    """

    def __init__(
        self,
        metric: Metric,
        *,
        num_candidate_programs: int = 16,
        seed: int = 0,
        max_lm_calls: int | None = None,
        max_tokens: int | None = None,
        checkpoint: str | Path | None = None,
        fallback_to_baseline: bool = True,
        display_progress: bool = False,
        **bootstrap: Any,
    ) -> None:
        if not isinstance(num_candidate_programs, int) or num_candidate_programs < 0:
            raise ValueError(f"num_candidate_programs must be an int >= 0, got {num_candidate_programs!r}")
        self.metric = metric
        self.num_candidate_programs = num_candidate_programs
        self.seed = seed
        self.bootstrap = BootstrapFewShot(metric, seed=seed, **bootstrap)  # the template every candidate varies
        self.settings = SearchSettings(
            num_threads=self.bootstrap.num_threads,
            max_errors=self.bootstrap.max_errors,
            max_lm_calls=max_lm_calls,
            max_tokens=max_tokens,
            checkpoint=checkpoint,
            fallback_to_baseline=fallback_to_baseline,
            display_progress=display_progress,
            seed=seed,
        )

    def _bootstraps(self) -> list[tuple[str, BootstrapFewShot, bool]]:
        """(name, bootstrap settings, shuffle?) per candidate, in a fixed order for a given seed."""
        template = self.bootstrap
        out = []
        for i in range(self.num_candidate_programs):
            bootstrap = copy.copy(template)
            bootstrap.seed = self.seed + i
            if i == 0:
                out.append(("bootstrap", bootstrap, False))
                continue
            bootstrap.max_bootstrapped_demos = random.Random(self.seed + i).randint(
                1, max(1, template.max_bootstrapped_demos)
            )
            out.append(
                (f"bootstrap shuffled seed={bootstrap.seed} demos={bootstrap.max_bootstrapped_demos}", bootstrap, True)
            )
        return out

    def candidates(
        self, student: Module, trainset: list[Example], teacher: Module | None
    ) -> Iterator[tuple[str, Module]]:
        """The candidate programs, built one at a time (a budget can stop between them)."""
        if any(p.demos for p in student.predictors()):
            yield "zero-shot", student.reset_copy()  # differs from the baseline only when the student has demos
        template = self.bootstrap
        if template.max_labeled_demos:
            labeled = LabeledFewShot(k=template.max_labeled_demos, seed=self.seed)
            yield f"labelled k={template.max_labeled_demos}", labeled.compile(student, trainset=trainset)
        for name, bootstrap, shuffle in self._bootstraps():
            shuffled = list(trainset)
            if shuffle:
                random.Random(bootstrap.seed).shuffle(shuffled)
            yield name, bootstrap.compile(student, trainset=shuffled, teacher=teacher)

    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """Forecast: a probe, the baseline and each candidate on the valset, and each bootstrap's teacher runs."""
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        measured = probe(student, train, self.metric)
        threads = max(1, self.bootstrap.num_threads or current().num_threads)
        phases = {"probe": measured.runs, "baseline": len(val)}
        evaluations = int(any(p.demos for p in student.predictors())) + int(bool(self.bootstrap.max_labeled_demos))
        teacher_runs = 0
        for _, bootstrap, _ in self._bootstraps():
            evaluations += 1
            teacher_runs += bootstrap_runs(
                len(train), bootstrap.max_bootstrapped_demos, measured.pass_rate, threads, bootstrap.max_rounds
            )
        phases["bootstrap"] = teacher_runs
        phases["candidates"] = evaluations * len(val)
        return Plan.from_probe("BootstrapFewShotWithRandomSearch", phases, measured)

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        identity = {"candidates": self.num_candidate_programs, "bootstrap": vars(self.bootstrap)}
        run = SearchRun(
            "BootstrapFewShotWithRandomSearch",
            student,
            self.metric,
            val,
            self.settings,
            testset=testset,
            identity=identity,
        )
        with run:
            run.report.forecast = self.plan(student, train, val)
            run.score_baseline()
            for name, candidate in self.candidates(student, train, teacher):
                run.score(name, candidate)
        notes = ["no valset given: candidates were scored on the trainset (optimistic)"] if valset is None else []
        return run.finish(notes)
