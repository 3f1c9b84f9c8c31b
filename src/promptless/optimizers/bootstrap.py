"""BootstrapFewShot: run a teacher program, keep the traces that pass the metric, turn each step into a demo.

Only the final output needs a label: a trace that passes gives every predictor
it went through one demo of its own inputs and outputs, however deeply nested.
Examples are run in parallel threads, in fixed-size waves, and the pool of
passing traces is kept in trainset order, so the result does not depend on thread timing.

Which demos of that pool a predictor gets (``demo_selection``): by default they are
balanced over its output's labels and interleaved by label (promptless.optimizers.
demo_selection explains why); for that the teacher keeps running past the first
``max_bootstrapped_demos`` passes until the pool shows enough labels (at most
``POOL_FACTOR`` times as many passes). ``"first"`` is DSPy's rule: the first passing traces.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from promptless.callbacks import callback_scope
from promptless.errors import MetricError, TooManyErrors, cannot_recover
from promptless.module import Module
from promptless.optimizers import demo_selection as selection
from promptless.optimizers.base import (
    CompileReport,
    Metric,
    Optimizer,
    attach_report,
    check_trainset,
    one_line,
    passes,
    split_holdout,
)
from promptless.optimizers.labeled import LabeledFewShot
from promptless.optimizers.plan import Plan, bootstrap_runs, probe
from promptless.optimizers.search import SearchRun, SearchSettings
from promptless.primitives import Example
from promptless.settings import context, current, run_in_context
from promptless.trace import track_usage

log = logging.getLogger("promptless.optimizers")
POOL_FACTOR = 3  # with balanced selection, the teacher stops after at most this many times the demos asked for


@dataclass
class Attempt:
    """One teacher run on one example: the demos it yields per predictor name, or why it gave none."""

    index: int
    demos: dict[str, list[Example]] = field(default_factory=dict)
    passed: bool = False
    error: BaseException | None = None  # the program raised
    metric_error: BaseException | None = None  # the metric raised (e.g. the example has no label)


class BootstrapFewShot(Optimizer):
    """Up to ``max_bootstrapped_demos`` traced demos, topped up with labelled ones to ``max_labeled_demos``.

    ``metric_threshold``: without it a trace passes when the metric is truthy;
    with it, when the metric's value is at least the threshold.
    ``max_rounds``: rounds after the first resample the teacher at temperature
    1.0 with a fresh ``rollout_id``, so the cache does not return the same failure.
    ``teacher_settings``: settings the teacher runs under, e.g. ``{"lm": LM(...)}``.
    With a ``valset``, the result is scored beside the uncompiled program and returned
    only if significantly better (``fallback_to_baseline=False`` returns it regardless).
    ``checkpoint`` (with a ``valset``): a file where the baseline's score, the bootstrapped
    demos and the result's score are kept as each finishes, so a restarted compile skips them.
    ``holdout``: without a ``valset``, this fraction of the trainset (10 to 200 examples, when
    there are at least 20) is held out and used as one, so a compile that made the program
    worse says so instead of returning it silently; ``holdout=0`` is DSPy's behaviour.
    """

    def __init__(
        self,
        metric: Metric,
        metric_threshold: float | None = None,
        teacher_settings: dict[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
        num_threads: int | None = None,
        seed: int = 0,
        fallback_to_baseline: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        demo_selection: str = "balanced",
        holdout: float = 0.3,
    ) -> None:
        if not callable(metric):
            raise TypeError(f"BootstrapFewShot(metric=) must be callable, got {metric!r}")
        if demo_selection not in _selections():
            raise ValueError(f"BootstrapFewShot(demo_selection=) is one of {_selections()}, got {demo_selection!r}")
        self.demo_selection = demo_selection
        split_holdout([], holdout, seed, "BootstrapFewShot")  # checks the value now, before any LM call
        self.holdout = holdout
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.teacher_settings = dict(teacher_settings or {})
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.max_rounds = max_rounds
        self.max_errors = max_errors
        self.num_threads = num_threads
        self.seed = seed
        self.fallback_to_baseline = fallback_to_baseline
        self.checkpoint = checkpoint

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        """Bootstrap demos; with a ``valset``, also score baseline and result and keep the result only if better."""
        started = time.perf_counter()
        examples = check_trainset(trainset)
        holdout_note = None
        if valset is None:
            examples, valset, holdout_note = split_holdout(examples, self.holdout, self.seed, "BootstrapFewShot")
        program = student.reset_copy()
        teacher = self._prepare_teacher(teacher if teacher is not None else student, examples)
        names = [name for name, _ in program.named_predictors()]
        if [name for name, _ in teacher.named_predictors()] != names:
            raise ValueError(
                f"teacher and student differ in structure: {[n for n, _ in teacher.named_predictors()]} vs {names}"
            )
        if valset is not None:
            notes = [holdout_note] if holdout_note else []
            return self._compile_and_compare(student, program, teacher, examples, valset, testset, notes)
        report = CompileReport("BootstrapFewShot")
        inputs = {"optimizer": "BootstrapFewShot", "student": student, "trainset": examples}
        with callback_scope("compile", self, inputs) as scope:  # with a valset, SearchRun reports the compile
            with track_usage() as usage:
                attempts = self._bootstrap(teacher, examples)
                self._assign_demos(program, examples, attempts, report.notes)
            unchecked = "no valset given: the result was not compared with the uncompiled program"
            report.notes.append(holdout_note or unchecked)
            report.record_usage(usage, started)
            scope.outputs = attach_report(program, report)
        return scope.outputs

    def _compile_and_compare(
        self,
        student: Module,
        program: Module,
        teacher: Module,
        examples: list[Example],
        valset: Sequence[Example],
        testset: Sequence[Example] | None,
        first_notes: Sequence[str] = (),
    ) -> Module:
        settings = SearchSettings(
            num_threads=self.num_threads,
            max_errors=self.max_errors,
            fallback_to_baseline=self.fallback_to_baseline,
            checkpoint=self.checkpoint,
            seed=self.seed,
        )
        identity = {  # what must match for a checkpoint to be resumed (SearchRun adds student, valset, seed)
            "settings": [self.metric, self.metric_threshold, self.teacher_settings, self.max_bootstrapped_demos,
                         self.max_labeled_demos, self.max_rounds, self.demo_selection],
            "trainset": [ex.toDict() for ex in examples],
            "teacher": teacher.dump_state(),
        }
        run = SearchRun("BootstrapFewShot", student, self.metric, valset, settings, testset=testset, identity=identity)
        notes: list[str] = list(first_notes)
        with run:
            run.score_baseline()
            stored = run.recall("bootstrapped")
            if stored is not None:  # a restarted compile: the demos (and their notes) as the first run chose them
                program.load_state(stored["program"])
                notes = [*first_notes, *stored["notes"]]
            else:
                attempts = self._bootstrap(teacher, examples)
                self._assign_demos(program, examples, attempts, notes)
                run.remember("bootstrapped", {"program": program.dump_state(), "notes": notes[len(first_notes) :]})
            run.score("compiled", program)
        return run.finish(notes)

    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """Forecast: teacher runs until enough traces pass (at the probed pass rate), plus the valset scoring."""
        examples = check_trainset(trainset)
        if valset is None:
            examples, valset, _ = split_holdout(examples, self.holdout, self.seed, "BootstrapFewShot")
        teacher = self._prepare_teacher(student, examples)
        measured = probe(teacher, examples, self.metric)
        threads = max(1, self.num_threads or current().num_threads)
        runs = bootstrap_runs(len(examples), self.max_bootstrapped_demos, measured.pass_rate, threads, self.max_rounds)
        phases = {"probe": measured.runs, "bootstrap": runs}
        if valset is not None:
            phases["baseline"] = phases["compiled"] = len(check_trainset(valset, "valset"))
        return Plan.from_probe("BootstrapFewShot", phases, measured)

    # -- steps ------------------------------------------------------------------------------------
    def _prepare_teacher(self, teacher: Module, examples: list[Example]) -> Module:
        """A private copy; an uncompiled teacher first gets labelled demos, as in DSPy."""
        teacher = teacher.deepcopy()
        if self.max_labeled_demos and not any(p.demos for p in teacher.predictors()):
            labeled = LabeledFewShot(k=self.max_labeled_demos, seed=self.seed, demo_selection=self.demo_selection)
            teacher = labeled.compile(teacher, trainset=examples)
        return teacher

    def _bootstrap(self, teacher: Module, examples: list[Example]) -> dict[int, Attempt]:
        """Run the teacher round by round until enough examples passed; returns the passing attempts."""
        passed: dict[int, Attempt] = {}
        self._failures: list[Attempt] = []
        errors = 0
        threads = max(1, self.num_threads or current().num_threads)
        signatures = {name: p.signature for name, p in teacher.named_predictors()}
        with ThreadPoolExecutor(max_workers=threads) as pool:  # one pool for every wave of every round
            for round_index in range(self.max_rounds):
                run = run_in_context(functools.partial(self._attempt, teacher, examples, round_index=round_index))
                todo = [i for i in range(len(examples)) if i not in passed]
                for start in range(0, len(todo), threads):
                    if self._enough(passed, signatures):
                        return passed
                    for attempt in pool.map(run, todo[start : start + threads]):
                        failure = attempt.error or attempt.metric_error
                        if failure is None:
                            if attempt.passed:
                                passed[attempt.index] = attempt
                            continue
                        if cannot_recover(failure):
                            raise failure
                        self._failures.append(attempt)
                        errors += 1
                        if self.max_errors is not None and errors > self.max_errors:
                            raise TooManyErrors(
                                f"{errors} examples raised while bootstrapping (max_errors={self.max_errors})"
                            ) from failure
        return passed

    def _enough(self, passed: dict[int, Attempt], signatures: dict[str, Any]) -> bool:
        """Whether the pool of passing traces is complete: the demos asked for and, when balancing, enough labels."""
        wanted = self.max_bootstrapped_demos
        if len(passed) < wanted:
            return False
        if self.demo_selection == "first" or len(passed) >= POOL_FACTOR * wanted:
            return True
        for name, signature in signatures.items():
            labels = selection.label_count(signature)
            if labels:
                pool = [demo for attempt in passed.values() for demo in attempt.demos.get(name, [])]
                if selection.labels_covered(signature, pool) < min(wanted, labels):
                    return False
        return True

    def _attempt(self, teacher: Module, examples: list[Example], index: int, *, round_index: int) -> Attempt:
        example = examples[index]
        attempt = Attempt(index)
        own = teacher.deepcopy()  # per thread: demos are filtered and sampling changed without races
        for predictor in own.predictors():
            predictor.demos = [d for d in predictor.demos if d != example]
            if round_index > 0:
                predictor.config = {**predictor.config, "temperature": 1.0, "rollout_id": round_index}
        names = {id(p): name for name, p in own.named_predictors()}
        trace: list = []
        try:
            with context(**{**self.teacher_settings, "trace": trace}):
                prediction = own(**example.inputs())
        except Exception as error:
            attempt.error = error
            log.debug("bootstrap example %d raised %r", index, error)
            return attempt
        try:  # outside the trace: a metric that calls an LM (a judge) adds no steps to the teacher's trace
            with context(**self.teacher_settings):
                attempt.passed = passes(self.metric, example, prediction, list(trace), self.metric_threshold)
        except MetricError:
            raise
        except Exception as error:
            attempt.metric_error = error
            log.info("bootstrap: the metric raised on example %d: %r", index, error)
            return attempt
        for step in trace:
            name = names.get(id(step.predictor))
            if name is not None:
                demo = Example({**step.inputs, **step.outputs.toDict()})
                attempt.demos.setdefault(name, []).append(demo)
        return attempt

    def _assign_demos(
        self, program: Module, examples: list[Example], passed: dict[int, Attempt], notes: list[str]
    ) -> None:
        if self.demo_selection == "first":
            self._assign_first(program, examples, passed, notes)
        else:
            self._assign_balanced(program, examples, passed, notes)
        notes.append(f"{len(passed)} of the examples tried passed the metric")
        for kind, failed in (
            ("the program raised on", [a.error for a in self._failures if a.error is not None]),
            ("the metric raised on", [a.metric_error for a in self._failures if a.metric_error is not None]),
        ):
            if failed:
                first = failed[0]
                notes.append(f"{kind} {len(failed)} example(s) while bootstrapping (first: {type(first).__name__}: "
                             f"{one_line(str(first), 120)})")

    def _assign_first(
        self, program: Module, examples: list[Example], passed: dict[int, Attempt], notes: list[str]
    ) -> None:
        """DSPy's rule: the first passing traces in trainset order, then a random sample of the rest."""
        chosen = sorted(passed)[: self.max_bootstrapped_demos]  # the first passing ones, whatever the threads
        rest = [ex for i, ex in enumerate(examples) if i not in chosen]
        rng = random.Random(self.seed)
        for name, predictor in program.named_predictors():
            boot = [demo for i in chosen for demo in passed[i].demos.get(name, [])][: self.max_bootstrapped_demos]
            n_labeled = max(0, self.max_labeled_demos - len(boot))
            labeled = rng.sample(rest, min(n_labeled, len(rest)))
            predictor.demos = boot + labeled
            notes.append(f"{name}: {len(boot)} bootstrapped + {len(labeled)} labelled demos")

    def _assign_balanced(
        self, program: Module, examples: list[Example], passed: dict[int, Attempt], notes: list[str]
    ) -> None:
        """Per predictor: bootstrapped demos balanced by label, labelled ones balanced or diverse; all interleaved."""
        order = sorted(passed)
        rng = random.Random(self.seed)
        for name, predictor in program.named_predictors():
            signature = predictor.signature
            pool = [(i, demo) for i in order for demo in passed[i].demos.get(name, [])]
            demos = [demo for _, demo in pool]
            if selection.label_count(signature):
                boot = selection.select(signature, demos, self.max_bootstrapped_demos, rng)
            else:  # free text: the first passing traces, as their pool is barely larger than the demos asked for
                boot = demos[: self.max_bootstrapped_demos]
            taken = {id(demo) for demo in boot}
            used = {i for i, demo in pool if id(demo) in taken}
            rest = [ex for i, ex in enumerate(examples) if i not in used]
            n_labeled = max(0, self.max_labeled_demos - len(boot))
            labeled = selection.select(signature, rng.sample(rest, len(rest)), n_labeled, rng)
            predictor.demos = selection.arrange(signature, boot + labeled)
            covered = selection.labels_covered(signature, predictor.demos)
            shown = f", {covered} labels" if covered else ""
            notes.append(f"{name}: {len(boot)} bootstrapped + {len(labeled)} labelled demos (balanced{shown})")


def _selections() -> list[str]:
    return list(selection.SELECTIONS)
