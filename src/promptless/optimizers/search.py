"""The machinery every searching optimizer shares: scoring with a checkpoint, a budget, and an honest choice.

``SearchRun`` is used as a context manager around the search::

    run = SearchRun("MIPROv2", student, metric, valset, settings)
    with run:
        run.score_baseline()
        for ...:
            run.score(name, candidate)              # full valset: eligible to be chosen
            run.score(name, candidate, subset=idx)  # a minibatch: guides the search only
    return run.finish()

Inside the block the budget is in force; ``BudgetExhausted`` ends the block
quietly and ``finish`` returns the best program scored so far. Scores are written
to the checkpoint as they finish, so a restarted compile skips them.

Selection: every fully scored candidate gets a 95 % paired-bootstrap interval of
its gain over the baseline on the same examples; the best by mean is returned only
if that interval lies above zero (``fallback_to_baseline=False`` returns it anyway).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from typing_extensions import TypedDict

from promptless.budget import Budget, BudgetExhausted
from promptless.callbacks import begin, end
from promptless.evaluate.evaluate import Evaluate
from promptless.module import Module
from promptless.optimizers.base import CandidateScore, CompileReport, Metric, attach_report, check_int, check_trainset
from promptless.optimizers.checkpoint import Checkpoint, fingerprint
from promptless.primitives import Example
from promptless.settings import context, current
from promptless.trace import track_usage

log = logging.getLogger("promptless.optimizers")

BASELINE = "baseline"


class SearchOptions(TypedDict, total=False):
    """The keyword arguments every searching optimizer takes besides its own (``**search``): see SearchSettings."""

    num_threads: int | None
    max_errors: int | None
    max_lm_calls: int | None
    max_tokens: int | None
    checkpoint: str | os.PathLike[str] | None
    fallback_to_baseline: bool
    display_progress: bool
    seed: int


@dataclass
class SearchSettings:
    """What every searching optimizer accepts besides its own knobs."""

    num_threads: int | None = None
    max_errors: int | None = None
    max_lm_calls: int | None = None
    max_tokens: int | None = None
    checkpoint: str | Path | None = None
    fallback_to_baseline: bool = True
    display_progress: bool = False
    seed: int = 0


_MINIMUMS = {"num_threads": 1, "max_errors": 0, "max_lm_calls": 0, "max_tokens": 0}


def search_settings(owner: str, options: Mapping[str, Any]) -> SearchSettings:
    """Checked SearchSettings from an optimizer's ``**search`` keywords; errors name ``owner(arg=)`` and the value."""
    unknown = sorted(set(options) - set(SearchOptions.__annotations__))
    if unknown:
        raise TypeError(f"{owner}() got unexpected keyword argument(s) {unknown}")
    for name, minimum in _MINIMUMS.items():
        check_int(owner, name, options.get(name), minimum, optional=True)
    checkpoint = options.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"{owner}(checkpoint=) must be a path or None, got {checkpoint!r}")
    for name in ("fallback_to_baseline", "display_progress"):
        if name in options and not isinstance(options[name], bool):
            raise TypeError(f"{owner}({name}=) must be True or False, got {options[name]!r}")
    check_int(owner, "seed", options.get("seed", 0))
    return SearchSettings(**options)  # type: ignore[arg-type]


@dataclass
class Scored:
    scores: list[float]
    errors: int

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


class SearchRun:
    """One compile's scoring, budget, checkpoint and final choice (see the module docstring)."""

    def __init__(
        self,
        optimizer: str,
        student: Module,
        metric: Metric,
        valset: Sequence[Example],
        settings: SearchSettings,
        *,
        testset: Sequence[Example] | None = None,
        identity: Any = None,
    ) -> None:
        self.student = student
        self.metric = metric
        self.valset = check_trainset(valset, "valset")
        self.testset = check_trainset(testset, "testset") if testset is not None else None
        self.settings = settings
        self.report = CompileReport(optimizer)
        self.report.baseline = BASELINE
        key = fingerprint(
            optimizer,
            identity,
            student.dump_state(),
            [ex.toDict() for ex in self.valset],
            settings.seed,
        )
        self.checkpoint = Checkpoint(settings.checkpoint, optimizer=optimizer, key=key)
        self.report.resumed_steps = self.checkpoint.resumed
        self.budget = Budget(settings.max_lm_calls, settings.max_tokens)
        self.full: dict[str, tuple[Scored, Module]] = {}
        self._evaluate = Evaluate(
            self.valset,
            metric,
            num_threads=settings.num_threads,
            max_errors=settings.max_errors,
            display_progress=settings.display_progress,
        )
        self._stack: list[Any] = []
        self._started = time.perf_counter()
        self._usage: Any = None
        self._compile_call: Any = None  # the on_compile_start/end pair (promptless.callbacks)

    # -- the block the search runs in --------------------------------------------------------------
    def __enter__(self) -> SearchRun:
        inputs = {"optimizer": self.report.optimizer, "student": self.student, "valset": self.valset}
        self._compile_call = begin("compile", self, inputs)
        usage_cm = track_usage()
        self._usage = usage_cm.__enter__()
        self.budget.parent = current().budget  # a budget the caller put in force still counts
        budget_cm = context(budget=self.budget)
        budget_cm.__enter__()
        self._stack = [budget_cm, usage_cm]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> bool:
        for cm in self._stack:
            cm.__exit__(kind, error, tb)
        self._stack = []
        if isinstance(error, BudgetExhausted):
            self.report.stopped_by_budget = str(error)
            log.info("%s: %s; keeping the best program found so far", self.report.optimizer, error)
            return True
        if error is not None:
            end(self._compile_call, None, error)
            self._compile_call = None
        return False

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, name: str, program: Module, subset: Sequence[int] | None = None) -> Scored:
        """Per-example scores of ``program`` on the valset (or the ``subset`` of its indices); checkpointed.

        A stored score belongs to the candidate's content (instructions, demos, decoding
        settings: its whole state) on these valset examples, never to its name alone: a
        restarted run that rebuilds a candidate with other demos scores it again.
        """
        indices = list(range(len(self.valset))) if subset is None else list(subset)
        content = fingerprint(program.dump_state())
        key = f"score:{name}:{content}:" + (fingerprint(indices) if subset is not None else "full")
        stored = self.checkpoint.get(key)
        if stored is not None:
            scored = Scored(list(stored["scores"]), int(stored["errors"]))
        else:
            result = self._evaluate(program, devset=[self.valset[i] for i in indices])
            scored = Scored(result.scores, result.errors)
            self.checkpoint.put(key, {"scores": scored.scores, "errors": scored.errors})
        if subset is None:
            self.full[name] = (scored, program)
        return scored

    def score_baseline(self) -> Scored:
        """The uncompiled student on the full valset: what every candidate is compared with."""
        return self.score(BASELINE, self.student)

    def remember(self, name: str, value: Any) -> None:
        """Keep a JSON-able step result (e.g. proposed instructions) in the checkpoint."""
        self.checkpoint.put(f"value:{name}", value)

    def recall(self, name: str, default: Any = None) -> Any:
        return self.checkpoint.get(f"value:{name}", default)

    def best(self) -> tuple[str, Scored, Module] | None:
        """The best fully scored candidate other than the baseline (ties: the first scored)."""
        best: tuple[str, Scored, Module] | None = None
        for name, (scored, program) in self.full.items():
            if name != BASELINE and (best is None or scored.mean > best[1].mean):
                best = (name, scored, program)
        return best

    # -- the choice --------------------------------------------------------------------------------
    def finish(self, extra_notes: Sequence[str] = ()) -> Module:
        """Choose honestly among the fully scored candidates, score the choice on the testset, attach the report."""
        report = self.report
        baseline = self.full.get(BASELINE)
        for name, (scored, _) in self.full.items():
            candidate = CandidateScore.from_scores(name, scored.scores, scored.errors)
            if baseline is not None and name != BASELINE:
                candidate.against(baseline[0].scores, scored.scores)
            report.candidates.append(candidate)
        chosen_name, chosen = self._choose(baseline)
        report.chosen = chosen_name
        report.notes.extend(extra_notes)
        try:
            if self.testset is not None:
                self._score_on_testset(chosen)
        except BaseException as error:
            end(self._compile_call, None, error)
            raise
        if self._usage is not None:
            report.record_usage(self._usage, self._started)
        program = attach_report(chosen, report)
        end(self._compile_call, program)
        self._compile_call = None
        return program

    def _choose(self, baseline: tuple[Scored, Module] | None) -> tuple[str, Module]:
        report = self.report
        best = self.best()
        if best is None:
            report.significant = False
            report.notes.append("no candidate was scored on the full valset; returning the uncompiled program")
            return BASELINE, self.student.deepcopy()
        name, _, program = best
        if baseline is None:
            report.significant = None
            report.notes.append("the baseline could not be scored (budget); returning the best candidate unchecked")
            return name, program
        entry = next(c for c in report.candidates if c.name == name)
        report.significant = entry.significant
        assert entry.delta is not None and entry.delta_ci is not None
        gain = f"{entry.delta:+.1f} points, 95% CI {entry.delta_ci[0]:+.1f}..{entry.delta_ci[1]:+.1f}"
        if entry.significant:
            report.notes.append(f"{name} beats the baseline: {gain}")
            return name, program
        if self.settings.fallback_to_baseline:
            report.notes.append(
                f"no candidate is significantly better than the baseline (best: {name}, {gain}); "
                "returning the baseline (fallback_to_baseline=False returns the best candidate)"
            )
            return BASELINE, baseline[1].deepcopy()
        report.notes.append(f"{name} is not significantly better than the baseline ({gain}); returned as asked")
        return name, program

    def _score_on_testset(self, program: Module) -> None:
        """Once, on examples no choice was made on; outside the budget so the report always has it."""
        assert self.testset is not None
        evaluate = Evaluate(self.testset, self.metric, num_threads=self.settings.num_threads)
        with context(budget=None):
            result = evaluate(program)
        self.report.test = CandidateScore.from_scores(f"{self.report.chosen} (test)", result.scores, result.errors)
