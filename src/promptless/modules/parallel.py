"""Parallel: run many (module, inputs) pairs in threads, settings following, results in input order."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from promptless.errors import RunGuard, TooManyErrors
from promptless.executor import run_indexed
from promptless.module import Module
from promptless.primitives import Example
from promptless.settings import current

TooManyFailures = TooManyErrors  # the name this module used to raise; one class for every run


class Parallel:
    """``Parallel(num_threads=4)([(qa, example), (summarize, {"text": ...}), ...])``.

    A pair's inputs are an Example (its inputs), a dict of keyword arguments or
    a tuple of positional ones. A pair that raises yields None in its place;
    more than ``max_errors`` failures raise TooManyFailures; an auth error, a
    missing model or a server that stays down is raised at once.
    """

    def __init__(
        self,
        num_threads: int | None = None,
        max_errors: int | None = None,
        access_examples: bool = True,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float | None = None,
        straggler_limit: int = 3,
    ) -> None:
        """DSPy's keywords. ``timeout`` (seconds) with ``straggler_limit``: once that many pairs or fewer are
        unfinished, a pair running ``timeout`` seconds or more is started once more and the first copy to finish
        counts (DSPy's stragglers). Off unless ``timeout`` is given (DSPy's default is 120 s): on an embedded
        model a second copy competes for the same cores; each LM call is bounded by its LM's ``timeout`` anyway."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
            raise ValueError(f"Parallel(timeout=) must be a number of seconds (0 or None: off), got {timeout!r}")
        if isinstance(straggler_limit, bool) or not isinstance(straggler_limit, int) or straggler_limit < 0:
            raise ValueError(f"Parallel(straggler_limit=) must be a whole number >= 0, got {straggler_limit!r}")
        self.num_threads = num_threads
        self.access_examples = access_examples
        self.provide_traceback = provide_traceback
        self.disable_progress_bar = disable_progress_bar
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        self.max_errors = max_errors
        self.return_failed_examples = return_failed_examples

    def __call__(self, exec_pairs: Sequence[tuple[Module, Any]], num_threads: int | None = None) -> Any:
        pairs = list(exec_pairs)
        for i, pair in enumerate(pairs):
            if not (isinstance(pair, tuple) and len(pair) == 2 and callable(pair[0])):
                raise TypeError(f"Parallel: pair {i} must be (module, inputs), got {pair!r:.120}")

        guard = RunGuard()
        outcomes: list[tuple[Any, BaseException | None]] = [(None, None)] * len(pairs)
        settled = [False] * len(pairs)  # a straggler runs twice: the first copy to finish counts, once
        lock = threading.Lock()

        def run(index: int) -> None:
            module, inputs = pairs[index]
            try:
                if isinstance(inputs, Example):
                    result = module(**(inputs.inputs() if inputs.input_keys else dict(inputs)))
                elif isinstance(inputs, Mapping):
                    result = module(**inputs)
                elif isinstance(inputs, tuple):
                    result = module(*inputs)
                else:
                    result = module(inputs)
            except Exception as error:
                if _settle(index, (None, error)):
                    guard.failed(error)
                return
            if _settle(index, (result, None)):
                guard.succeeded()

        def _settle(index: int, outcome: tuple[Any, BaseException | None]) -> bool:
            with lock:
                if settled[index]:
                    return False
                settled[index] = True
                outcomes[index] = outcome
                return True

        run_indexed(
            run,
            len(pairs),
            max(1, num_threads or self.num_threads or current().num_threads),
            timeout=self.timeout,
            straggler_limit=self.straggler_limit,
        )
        errors = [error for _, error in outcomes if error is not None]
        if self.max_errors is not None and len(errors) > self.max_errors:
            raise TooManyErrors(
                f"Parallel: {len(errors)} of {len(pairs)} pairs failed (max_errors={self.max_errors}); "
                f"first: {type(errors[0]).__name__}: {errors[0]}",
                errors,
            )
        results = [result for result, _ in outcomes]
        if not self.return_failed_examples:
            return results
        failed = [pair[1] for pair, (_, error) in zip(pairs, outcomes, strict=True) if error is not None]
        return results, failed, errors
