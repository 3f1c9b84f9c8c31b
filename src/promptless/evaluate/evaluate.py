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
from promptless.distributed import resolve_executor
from promptless.errors import RunGuard, TooManyErrors
from promptless.evaluate.feedback import call_metric, split_score
from promptless.evaluate.stats import bootstrap_ci
from promptless.evaluate.table import as_table, metric_name, result_rows, show
from promptless.executor import Outcome
from promptless.primitives import Example, Prediction
from promptless.settings import current
from promptless.trace import UsageTracker, track_usage

__all__ = ["Evaluate", "EvaluationResult", "TooManyErrors"]

log = logging.getLogger("promptless.evaluate")

Metric = Callable[..., Any]


@dataclass
class EvaluationResult:
    """``score`` is the mean metric in percent (as DSPy reports it), with a 95 % bootstrap CI.

    DSPy's fields and constructor: ``EvaluationResult(score, results)``, ``result.score``,
    ``result.results`` (``(example, prediction, score)`` per example), ``result["score"]``.
    ``table`` holds the per-example rows when ``display_table`` was asked for.
    """

    score: float
    results: list[tuple[Example, Prediction | None, float]] = field(default_factory=list)
    ci: tuple[float, float] = (0.0, 0.0)
    errors: int = 0
    error_details: dict[int, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    usage: UsageTracker = field(default_factory=UsageTracker)
    table: Any = None

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def scores(self) -> list[float]:
        return [score for _, _, score in self.results]

    def __float__(self) -> float:
        return self.score

    def __getitem__(self, key: str) -> Any:  # DSPy's EvaluationResult is a Prediction: result["score"]
        if key not in ("score", "results"):
            raise KeyError(key)
        return getattr(self, key)

    def toDict(self) -> dict[str, Any]:  # noqa: N802 (DSPy's name)
        return {"score": self.score, "results": self.results}

    def summary(self) -> str:
        per_item = self.wall_time_s / self.n if self.n else 0.0
        return (
            f"{self.score:.1f}% (95% CI {self.ci[0]:.1f}–{self.ci[1]:.1f}), n={self.n}, "
            f"errors={self.errors}, {per_item:.2f} s/item"
        )


class Evaluate:
    """``Evaluate(devset=..., metric=...)(program)``: DSPy's evaluator, returning an ``EvaluationResult``.

    The metric may take ``(example, prediction, trace=None)`` or, as many DSPy programs write
    it, ``(example, prediction)``. ``display_table=True`` (or a number of rows) prints the
    per-example inputs, outputs and scores and keeps them in ``result.table`` (a pandas
    DataFrame when pandas is installed). ``provide_traceback`` logs each failing example's
    traceback. ``return_all_scores``/``return_outputs`` make the call return DSPy 2's tuples
    (``(score, scores)``, ``(score, results)``, or ``(score, results, scores)``).
    ``executor`` runs the examples elsewhere: ``"ray"`` or a ``promptless.RayExecutor(...)`` (Ray
    actors, each with its own LM; results, usage and errors as with threads); default: the
    ``executor`` setting, else this process's threads.
    """

    def __init__(
        self,
        devset: Sequence[Example],
        metric: Metric | None = None,
        *,
        num_threads: int | None = None,
        display_progress: bool = False,
        display_table: bool | int = False,
        max_errors: int | None = None,
        provide_traceback: bool | None = None,
        failure_score: float = 0.0,
        return_all_scores: bool = False,
        return_outputs: bool = False,
        executor: Any = None,
    ) -> None:
        self.devset = list(devset)
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.display_table = display_table
        self.max_errors = max_errors
        self.provide_traceback = provide_traceback
        self.failure_score = failure_score
        self.return_all_scores = return_all_scores
        self.return_outputs = return_outputs
        self.executor = executor  # None: the ``executor`` setting (threads by default); "threads", "ray", an Executor

    @with_callbacks("evaluate")
    def __call__(
        self,
        program: Callable[..., Any],
        metric: Metric | None = None,
        devset: Sequence[Example] | None = None,
        *,
        num_threads: int | None = None,
        display_progress: bool | None = None,
        display_table: bool | int | None = None,
    ) -> Any:
        metric = metric or self.metric
        if metric is None:
            raise TypeError("Evaluate needs a metric: Evaluate(devset=..., metric=fn) or evaluate(program, metric=fn)")
        examples = list(devset if devset is not None else self.devset)
        for i, example in enumerate(examples):
            if not isinstance(example, Example) or not example.input_keys:
                keys = list(example) if hasattr(example, "keys") else type(example).__name__
                raise ValueError(f"devset[{i}] has no inputs marked ({keys}): use Example(...).with_inputs(...)")
        started = time.perf_counter()
        progress = self.display_progress if display_progress is None else display_progress
        with track_usage() as usage:
            run = _Run(program, metric, examples, self.failure_score, self.max_errors, bool(self.provide_traceback))
            threads = num_threads or self.num_threads or current().num_threads
            run.execute(threads, progress, resolve_executor(self.executor))
        if run.error_details:
            log.warning("%d of %d examples failed; see result.error_details", len(run.error_details), len(examples))
        scores = [score for _, _, score in run.results]
        mean = sum(scores) / len(scores) if scores else 0.0
        lo, hi = bootstrap_ci(scores)
        result = EvaluationResult(
            score=100 * mean,
            ci=(100 * lo, 100 * hi),
            results=run.results,
            errors=len(run.error_details),
            error_details=run.error_details,
            wall_time_s=time.perf_counter() - started,
            usage=usage,
        )
        table = self.display_table if display_table is None else display_table
        if table:
            rows = result_rows(run.results, metric_name(metric))
            result.table = as_table(rows)
            show(rows, table)
        if self.return_all_scores and self.return_outputs:
            return round(result.score, 2), result.results, result.scores
        if self.return_all_scores:
            return round(result.score, 2), result.scores
        if self.return_outputs:
            return round(result.score, 2), result.results
        return result


class MetricScore:
    """The metric read as Evaluate reads it (``call_metric`` then ``split_score``); pickles with the metric."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def __call__(self, example: Example, prediction: Any) -> float:
        return split_score(call_metric(self.metric, example, prediction), self.metric)[0]


class _Run:
    """One evaluation's mutable bookkeeping, shared by its worker threads under a lock."""

    def __init__(
        self,
        program: Any,
        metric: Metric,
        examples: list[Example],
        failure: float,
        max_errors: int | None,
        traceback: bool = False,
    ) -> None:
        self.program, self.metric, self.examples, self.traceback = program, metric, examples, traceback
        self.failure, self.max_errors = failure, max_errors
        self.results: list[Any] = [(ex, None, failure) for ex in examples]
        self.error_details: dict[int, str] = {}
        self.fatal: BaseException | None = None
        self.guard = RunGuard()
        self.done = 0
        self.total_score = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def record(self, index: int, outcome: Outcome) -> None:
        """One example's outcome, from whichever thread or worker ran it."""
        example, prediction, score = self.examples[index], outcome.prediction, outcome.score
        if outcome.error is not None:
            if outcome.in_metric:  # the prediction is kept beside the metric's error
                self.results[index] = (example, prediction, self.failure)
            self._record_error(index, outcome.error)
            return
        with self.lock:
            self.results[index] = (example, prediction, score)
            self.guard.succeeded()
            self.done += 1
            self.total_score += score

    def _record_error(self, index: int, error: BaseException) -> None:
        if self.traceback:
            log.error("example %d failed: %r", index, error, exc_info=error)
        else:
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

    def execute(self, num_threads: int, display_progress: bool, executor: Any) -> None:
        progress = _progress(len(self.examples)) if display_progress else None

        def tick() -> None:
            if progress is not None:
                progress.update(self.done, self.total_score, len(self.error_details))

        try:
            executor.map_program(
                self.program,
                self.examples,
                metric=MetricScore(self.metric),
                num_threads=num_threads,
                on_outcome=self.record,
                stop=self.stop,
                on_tick=tick,
            )
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
