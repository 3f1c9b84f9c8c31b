"""BetterTogether: alternate prompt optimization and weight optimization, as DSPy's BetterTogether does.

A strategy such as ``"p -> w -> p"`` runs a prompt optimizer (BootstrapFewShot by default) and
``BootstrapFinetune`` in turn, each starting from the program the step before returned; with a
valset the result is kept only if it beats the uncompiled program (the honest selection of SearchRun).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from promptless.module import Module
from promptless.optimizers.base import CompileReport, Metric, Optimizer, attach_report, check_trainset
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.finetune import BootstrapFinetune
from promptless.optimizers.search import SearchRun, SearchSettings
from promptless.primitives import Example
from promptless.trace import track_usage


class BetterTogether(Optimizer):
    """Alternate prompt and weight optimization (DSPy's BetterTogether): ``strategy="p -> w -> p"``.

    ``p``: ``prompt_optimizer`` (default ``BootstrapFewShot(metric)``); ``w``: ``weight_optimizer``
    (default ``BootstrapFinetune(metric)``). Each step compiles the previous step's program;
    a ``w`` step learns from the traces of the program the previous step produced. With a
    ``valset`` every step's program is scored and the best is kept only if significantly better
    than the uncompiled one.
    """

    def __init__(
        self,
        metric: Metric,
        *,
        prompt_optimizer: Optimizer | None = None,
        weight_optimizer: Optimizer | None = None,
        strategy: str = "p -> w -> p",
        seed: int = 0,
        num_threads: int | None = None,
        fallback_to_baseline: bool = True,
    ) -> None:
        steps = [part.strip() for part in strategy.split("->")]
        if not steps or any(step not in ("p", "w") for step in steps):
            raise ValueError(f"BetterTogether(strategy=) must be steps 'p' and 'w' joined by '->', got {strategy!r}")
        self.metric = metric
        if prompt_optimizer is None:
            prompt_optimizer = BootstrapFewShot(metric, seed=seed, holdout=0)  # the comparison is this run's
        self.prompt_optimizer = prompt_optimizer
        if weight_optimizer is None:
            weight_optimizer = BootstrapFinetune(metric, seed=seed)
        self.weight_optimizer = weight_optimizer
        self.steps = steps
        self.strategy = " -> ".join(steps)
        self.seed, self.num_threads, self.fallback_to_baseline = seed, num_threads, fallback_to_baseline

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        examples = check_trainset(trainset)
        if valset is None:
            started = time.perf_counter()
            report = CompileReport("BetterTogether")
            with track_usage() as usage:
                program = self._steps(student, examples, teacher, report, None)
            report.notes.append("no valset given: the result was not compared with the uncompiled program")
            report.record_usage(usage, started)
            return attach_report(program, report)
        search = SearchSettings(
            num_threads=self.num_threads, fallback_to_baseline=self.fallback_to_baseline, seed=self.seed
        )
        run = SearchRun("BetterTogether", student, self.metric, valset, search, testset=testset)
        with run:
            run.score_baseline()
            self._steps(student, examples, teacher, run.report, run)
        return run.finish()

    def _steps(
        self,
        student: Module,
        examples: list[Example],
        teacher: Module | None,
        report: CompileReport,
        run: SearchRun | None,
    ) -> Module:
        program = student
        done: list[str] = []
        for step in self.steps:
            done.append(step)
            if step == "p":
                program = self.prompt_optimizer.compile(program, trainset=examples)
            else:
                program = self.weight_optimizer.compile(
                    program, trainset=examples, teacher=teacher if len(done) == 1 else None
                )
            inner = getattr(program, "compile_report", None)
            if inner is not None:
                report.notes.extend(f"[{' -> '.join(done)}] {note}" for note in inner.notes)
                report.lm_calls += inner.lm_calls
                # every w step's adapters (examples, steps, losses, wall time), in order
                report.training = [*getattr(report, "training", []), *getattr(inner, "training", [])]  # type: ignore[attr-defined]
            if run is not None:
                run.score(" -> ".join(done), program)
        return program


# -- helpers --------------------------------------------------------------------------------------
