"""Evaluate a program on a dev set: in threads, with a progress bar, errors kept apart from wrong answers.

Error contract: an example whose program or metric raises scores ``failure_score``
and is counted in ``errors``; the run goes on until ``max_errors`` is passed.
Errors that will not go away (bad credentials, a missing model, a server still
down after its retries on several examples in a row) stop the run at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptless.callbacks import with_callbacks
from promptless.errors import RunGuard, TooManyErrors
from promptless.evaluate.feedback import split_score
from promptless.evaluate.stats import bootstrap_ci
from promptless.executor import run_indexed
from promptless.primitives import Example, Prediction
from promptless.settings import current
from promptless.trace import UsageTracker, track_usage

__all__ = ["Evaluate", "EvaluationResult", "TooManyErrors"]

log = logging.getLogger("promptless.evaluate")

Metric = Callable[..., Any]


@dataclass
class EvaluationResult:
    """``score`` is the mean metric in percent (as DSPy reports it), with a 95 % bootstrap CI."""

    score: float
    ci: tuple[float, float]
    results: list[tuple[Example, Prediction | None, float]]
    errors: int = 0
    error_details: dict[int, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    usage: UsageTracker = field(default_factory=UsageTracker)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def scores(self) -> list[float]:
        return [score for _, _, score in self.results]

    def __float__(self) -> float:
        return self.score

    def summary(self) -> str:
        per_item = self.wall_time_s / self.n if self.n else 0.0
        return (
            f"{self.score:.1f}% (95% CI {self.ci[0]:.1f}–{self.ci[1]:.1f}), n={self.n}, "
            f"errors={self.errors}, {per_item:.2f} s/item"
        )


class Evaluate:
    """``Evaluate(devset=..., metric=...)(program)``: DSPy's evaluator, returning an ``EvaluationResult``."""

    def __init__(
        self,
        devset: Sequence[Example],
        metric: Metric | None = None,
        *,
        num_threads: int | None = None,
        display_progress: bool = False,
        max_errors: int | None = None,
        failure_score: float = 0.0,
    ) -> None:
        self.devset = list(devset)
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.max_errors = max_errors
        self.failure_score = failure_score

    @with_callbacks("evaluate")
    def __call__(
        self, program: Callable[..., Any], metric: Metric | None = None, devset: Sequence[Example] | None = None
    ) -> EvaluationResult:
        metric = metric or self.metric
        if metric is None:
            raise TypeError("Evaluate needs a metric: Evaluate(devset=..., metric=fn) or evaluate(program, metric=fn)")
        examples = list(devset if devset is not None else self.devset)
        for i, example in enumerate(examples):
            if not isinstance(example, Example) or not example.input_keys:
                keys = list(example) if hasattr(example, "keys") else type(example).__name__
                raise ValueError(f"devset[{i}] has no inputs marked ({keys}): use Example(...).with_inputs(...)")
        started = time.perf_counter()
        with track_usage() as usage:
            run = _Run(program, metric, examples, self.failure_score, self.max_errors)
            run.execute(self.num_threads or current().num_threads, self.display_progress)
        if run.error_details:
            log.warning("%d of %d examples failed; see result.error_details", len(run.error_details), len(examples))
        scores = [score for _, _, score in run.results]
        mean = sum(scores) / len(scores) if scores else 0.0
        lo, hi = bootstrap_ci(scores)
        return EvaluationResult(
            score=100 * mean,
            ci=(100 * lo, 100 * hi),
            results=run.results,
            errors=len(run.error_details),
            error_details=run.error_details,
            wall_time_s=time.perf_counter() - started,
            usage=usage,
        )


class _Run:
    """One evaluation's mutable bookkeeping, shared by its worker threads under a lock."""

    def __init__(self, program: Any, metric: Metric, examples: list[Example], failure: float, max_errors: int | None):
        self.program, self.metric, self.examples = program, metric, examples
        self.failure, self.max_errors = failure, max_errors
        self.results: list[Any] = [(ex, None, failure) for ex in examples]
        self.error_details: dict[int, str] = {}
        self.fatal: BaseException | None = None
        self.guard = RunGuard()
        self.done = 0
        self.total_score = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def one(self, index: int) -> None:
        if self.stop.is_set():
            return
        example = self.examples[index]
        try:
            prediction = self.program(**example.inputs())
        except Exception as error:
            self._record_error(index, error)
            return
        try:
            score = split_score(self.metric(example, prediction, None), self.metric)[0]
        except Exception as error:  # the prediction is kept beside the metric's error
            self.results[index] = (example, prediction, self.failure)
            self._record_error(index, error)
            return
        with self.lock:
            self.results[index] = (example, prediction, score)
            self.guard.succeeded()
            self.done += 1
            self.total_score += score

    def _record_error(self, index: int, error: Exception) -> None:
        log.debug("example %d failed: %r", index, error)
        with self.lock:
            try:
                self.guard.failed(error)
            except Exception:  # fatal, or an outage in a row: the run stops with this error
                self._stop_with(error)
                return
            self.error_details[index] = f"{type(error).__name__}: {error}"
            self.done += 1
            self.total_score += self.failure
            if self.max_errors is not None and len(self.error_details) > self.max_errors:
                message = f"{len(self.error_details)} examples failed (max_errors={self.max_errors}); last: {error!r}"
                self._stop_with(TooManyErrors(message), cause=error)

    def _stop_with(self, error: BaseException, cause: BaseException | None = None) -> None:
        """Remember the first reason to stop (caller holds the lock); workers skip what is left."""
        if cause is not None:
            error.__cause__ = cause
        self.fatal = self.fatal or error
        self.stop.set()

    def execute(self, num_threads: int, display_progress: bool) -> None:
        progress = _progress(len(self.examples)) if display_progress else None

        def tick() -> None:
            if progress is not None:
                progress.update(self.done, self.total_score, len(self.error_details))

        try:
            run_indexed(self.one, len(self.examples), num_threads, stop=self.stop, on_tick=tick)
        finally:
            if progress is not None:
                tick()
                progress.close()
        if self.fatal is not None:
            raise self.fatal


class _progress:  # noqa: N801 - a small private helper, used like a function
    """A rich progress bar with the running score; rich is imported only when shown."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        self.task = self.bar.add_task("evaluating", total=total)
        self.bar.start()

    def update(self, done: int, total_score: float, errors: int) -> None:
        mean = 100 * total_score / done if done else 0.0
        self.bar.update(self.task, completed=done, description=f"score {mean:.1f}% · errors {errors}")

    def close(self) -> None:
        self.bar.stop()
