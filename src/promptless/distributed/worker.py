"""The code that runs inside a Ray actor: a plain class here, made remote by the driver (``ray_executor``).

A ``Worker`` holds its own LMs (the embedded model is loaded once per process and kept
while the actor lives) and the programs of the jobs it was sent, rebuilt from their
recipes. It runs one example per call under the job's settings, with a usage tracker
and history of its own, and sends back the Outcome, the usage per model and the
history entries, so the driver sums them. An error that cannot be pickled comes back
as ``WorkerError`` with the original's flags (a fatal error still stops the run).

``BudgetKeeper`` is the one budget of a run that has one: every worker charges it
before each LM call (``RemoteBudget``), so the limit holds across the whole run.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from promptless.budget import Budget
from promptless.callbacks import BaseCallback
from promptless.distributed.recipes import digest, pickled, unpickled
from promptless.errors import BudgetExhausted, WorkerError
from promptless.executor import Outcome, run_example
from promptless.settings import context
from promptless.trace import UsageTracker
from promptless.types import HistoryEntry, Usage

JOBS_KEPT = 4  # programs a worker keeps built (an optimizer scores candidates one after another)


@dataclass
class Result:
    """One example's result as it crosses back to the driver."""

    index: int
    outcome: Outcome
    usage: dict[str, Usage]
    cache_hits: int
    history: list[HistoryEntry] = field(default_factory=list)
    pid: int = 0


class _History(BaseCallback):
    """A callback that keeps the history entries of one example's LM calls."""

    def __init__(self) -> None:
        self.entries: list[HistoryEntry] = []

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        entry = getattr(outputs, "history", None)
        if entry is not None:
            self.entries.append(entry)


@dataclass
class _Built:
    program: Any
    metric: Any
    settings: dict[str, Any]


class Worker:
    """One actor: ``prepare(job_id, job_bytes, keeper)`` once per map call, then ``run(job_id, index, example)``."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, _Built] = OrderedDict()
        self._lms: dict[str, Any] = {}  # recipe digest -> LM, so a worker keeps its model and cache across jobs

    def ping(self) -> int:
        return os.getpid()

    def prepare(self, job_id: str, blob: bytes, keeper: Any = None) -> int:
        job = unpickled(blob)
        for path in job.sys_path:  # the driver's import path: metrics and factories named by reference import here
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
        lms = []
        for recipe in job.lms:
            key = digest(pickled(recipe))
            if key not in self._lms:
                self._lms[key] = recipe.build()
            lms.append(self._lms[key])
        described = job.settings
        settings = {
            "lm": lms[described.lm] if described.lm is not None else None,
            "adapter": described.adapter,
            "callbacks": described.callbacks,
            "max_parse_retries": described.max_parse_retries,
            "rm": described.rm,
            "prices": described.prices,
            "budget": RemoteBudget(keeper) if keeper is not None else None,
            "executor": None,  # a program that batches inside a worker uses that worker's threads
        }
        self._jobs[job_id] = _Built(job.program.build(lms), job.metric, settings)
        while len(self._jobs) > JOBS_KEPT:
            self._jobs.popitem(last=False)
        return os.getpid()

    def run(self, job_id: str, index: int, example: Any) -> Result:
        built = self._jobs[job_id]
        tracker = UsageTracker(prices=built.settings["prices"])
        history = _History()
        callbacks = (*built.settings["callbacks"], history)
        with context(**{**built.settings, "callbacks": callbacks, "usage_tracker": tracker}):
            outcome = run_example(built.program, example, built.metric)
        outcome.error = portable(outcome.error)
        if outcome.prediction is not None:
            outcome.prediction = portable_value(outcome.prediction)
        return Result(index, outcome, tracker.snapshot(), tracker.cache_hits, history.entries, os.getpid())


def portable(error: BaseException | None) -> Any:
    """An error as it can cross back: itself when it pickles, else its parts, else a ``WorkerError``.

    An exception whose ``__init__`` takes other arguments than its ``args`` (``ParseError``'s
    keyword ``raw``) does not unpickle as itself; its ``ErrorParts`` (class, ``args``, attributes)
    do, and ``ErrorParts.rebuild`` makes the same exception in the driver without calling ``__init__``.
    """
    if error is None:
        return None
    for candidate in (error, ErrorParts(type(error), error.args, dict(vars(error)))):
        try:
            restored = pickle.loads(pickle.dumps(candidate))
            if isinstance(restored, ErrorParts):
                restored.rebuild()
            return candidate
        except Exception:
            continue
    return WorkerError(
        type(error).__name__,
        str(error),
        transient=bool(getattr(error, "transient", False)),
        fatal=bool(getattr(error, "fatal", False)),
        outage=bool(getattr(error, "outage", False)),
    )


@dataclass
class ErrorParts:
    """An exception as its class, ``args`` and ``__dict__``."""

    cls: type[BaseException]
    args: tuple
    state: dict[str, Any]

    def rebuild(self) -> BaseException:
        error = self.cls.__new__(self.cls)
        error.args = self.args
        error.__dict__.update(self.state)
        return error


def restored(error: Any) -> BaseException | None:
    """In the driver: the exception ``portable`` sent."""
    return error.rebuild() if isinstance(error, ErrorParts) else error


def portable_value(value: Any) -> Any:
    """A prediction that cannot be pickled (it holds a live object) comes back as its text."""
    try:
        pickle.dumps(value)
        return value
    except Exception:
        return repr(value)


class RemoteBudget:
    """What a worker's LM charges: the run's one ``BudgetKeeper``, asked before each call."""

    def __init__(self, keeper: Any) -> None:
        self.keeper = keeper
        self.parent = None

    def charge_call(self) -> None:
        import ray  # lazy: Ray is an optional extra; this runs only inside a Ray worker

        refused = ray.get(self.keeper.charge_call.remote())
        if refused:
            raise BudgetExhausted(refused)

    def spend(self, response: Any) -> None:
        """Waited for: the driver reads the keeper's totals at the end, and calls from two callers are not ordered."""
        import ray  # lazy: Ray is an optional extra; this runs only inside a Ray worker

        ray.get(self.keeper.spend.remote(response.usage.prompt_tokens + response.usage.completion_tokens))


class BudgetKeeper:
    """The run's allowance (what the driver's budgets had left); workers charge it, the driver reads what was spent."""

    def __init__(self, max_lm_calls: int | None, max_tokens: int | None) -> None:
        self.budget = Budget(max_lm_calls, max_tokens)

    def charge_call(self) -> str | None:
        """None when a call may go ahead (and is counted), else the reason it may not."""
        try:
            self.budget.charge_call()
        except BudgetExhausted as error:
            return f"{error} (what was left of the budget for this Ray run)"
        return None

    def spend(self, tokens: int) -> None:
        with self.budget._lock:
            self.budget.tokens += tokens

    def spent(self) -> tuple[int, int]:
        return self.budget.lm_calls, self.budget.tokens
