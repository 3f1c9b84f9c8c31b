"""Run one function over many items in threads, and the seam that maps a program over examples.

``Executor.map_program`` is that seam: Evaluate (so the optimizers' scoring), ``Module.batch``
and ``promptless run --jsonl`` go through it. ``ThreadExecutor`` is this process's threads;
``promptless.distributed.RayExecutor`` is Ray actors. ``Parallel`` calls ``run_indexed`` itself.

``run_indexed``: Only ``2 × num_threads`` calls are in flight at once and each new one
is submitted as another completes, so the cost per item stays flat however long the
list (submitting everything up front and re-waiting on all of it made it grow), and a
stop takes effect within one call per thread.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from promptless.primitives import Example
from promptless.settings import current

WINDOW_PER_THREAD = 2
POLL_S = 0.5  # how often ``on_tick`` is called while calls are in flight (for a progress display)


def run_indexed(
    fn: Callable[[int], None],
    count: int,
    num_threads: int,
    *,
    stop: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
    timeout: float | None = None,
    straggler_limit: int = 3,
) -> None:
    """Call ``fn(i)`` for ``i`` in ``range(count)``, in the caller's context, until done or ``stop`` is set.

    The first exception ``fn`` raises stops further submissions and is raised once the
    calls in flight have finished; so is a KeyboardInterrupt in the waiting thread.

    Stragglers (DSPy's ``timeout``/``straggler_limit``): with a ``timeout`` in seconds, once
    ``straggler_limit`` or fewer items are unfinished, an item whose call has run ``timeout``
    seconds or more is started once more, in a thread of its own. An item is finished when
    either copy returns; the other copy is left to end in the background (nothing waits for
    it, what it raises is dropped), so ``fn`` must keep only the first result for an index.
    """
    stop = stop or threading.Event()
    context = contextvars.copy_context()
    workers = max(1, num_threads)
    window = WINDOW_PER_THREAD * workers
    failure: BaseException | None = None
    limit_s = float(timeout or 0.0)
    watch = limit_s > 0
    poll = min(POLL_S, max(limit_s / 4, 0.01)) if watch else POLL_S
    started: dict[int, float] = {}  # when each item's first copy began running (watched runs only)
    index_of: dict[Future[None], int] = {}
    finished: set[int] = set()
    resubmitted: set[int] = set()
    abandoned: list[Future[None]] = []  # the slower copies of stragglers: not waited for

    def timed(index: int) -> None:
        started.setdefault(index, time.monotonic())
        fn(index)

    def submit(pool: ThreadPoolExecutor, index: int) -> Future[None]:
        future = pool.submit(context.copy().run, timed if watch else fn, index)
        index_of[future] = index
        return future

    pool = ThreadPoolExecutor(max_workers=workers)
    spare: ThreadPoolExecutor | None = None  # stragglers' second copies: a thread each, never queued behind others
    pending: set[Future[None]] = set()
    try:
        next_index = 0
        while True:
            while not stop.is_set() and failure is None and next_index < count and len(pending) < window:
                pending.add(submit(pool, next_index))
                next_index += 1
            if not pending:
                break
            done, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
            for future in done:
                index = index_of.pop(future)
                if index in finished:  # the other copy of a straggler came first
                    continue
                finished.add(index)
                error = future.exception()
                if error is not None and failure is None:
                    failure = error
                    stop.set()
            if resubmitted:
                losers = {f for f in pending if index_of[f] in finished}
                abandoned.extend(losers)
                pending -= losers
            if watch and failure is None and not stop.is_set() and count - len(finished) <= straggler_limit:
                now = time.monotonic()
                for future in list(pending):
                    index = index_of[future]
                    began = started.get(index)
                    if index not in resubmitted and began is not None and now - began >= limit_s:
                        resubmitted.add(index)
                        spare = spare or ThreadPoolExecutor(max_workers=max(1, straggler_limit))
                        pending.add(submit(spare, index))
            if on_tick is not None:
                on_tick()
    finally:
        stop.set()  # also on Ctrl-C: only the calls in flight are waited for
        for future in pending:
            future.cancel()
        wait([f for f in pending if index_of.get(f) not in finished])
        for executor in (pool, spare):
            if executor is not None:
                executor.shutdown(wait=not abandoned)
    if failure is not None:
        raise failure


# -- the seam: map a program over examples ------------------------------------------------------------
@dataclass
class Outcome:
    """What one example gave: the program's prediction, the metric's score, or the error that stopped it.

    ``in_metric`` tells an error the metric raised (the prediction is kept) from one the program raised.
    """

    prediction: Any = None
    score: Any = None
    error: BaseException | None = None
    in_metric: bool = False


OnOutcome = Callable[[int, Outcome], None]


@runtime_checkable
class Executor(Protocol):
    """Runs ``program`` on every example (and ``metric(example, prediction)`` when given).

    ``on_outcome(index, outcome)`` is called exactly once for each example that ran, in any
    order; once ``stop`` is set no further example starts. An exception ``on_outcome`` raises
    stops the run and is raised (``Module.batch`` stops on a fatal error that way); Evaluate
    sets ``stop`` instead. ``on_tick`` is called now and then from the caller's thread, for a
    progress display. Implementations: ``ThreadExecutor`` (threads in this process, the
    default) and ``promptless.distributed.RayExecutor`` (Ray actors, each with its own LM).
    """

    def map_program(
        self,
        program: Any,
        examples: Sequence[Any],
        *,
        metric: Callable[[Any, Any], Any] | None = None,
        num_threads: int | None = None,
        on_outcome: OnOutcome,
        stop: threading.Event | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None: ...


def example_inputs(example: Any) -> dict[str, Any]:
    """The keyword arguments a program is called with: an Example's inputs, or a plain mapping as it is."""
    if isinstance(example, Example) and example.input_keys:
        return example.inputs()
    return dict(example)


def run_example(program: Callable[..., Any], example: Any, metric: Callable[[Any, Any], Any] | None) -> Outcome:
    """One example, as every executor runs it: the program, then the metric; errors become the Outcome's."""
    try:
        prediction = program(**example_inputs(example))
    except Exception as error:
        return Outcome(error=error)
    if metric is None:
        return Outcome(prediction)
    try:
        return Outcome(prediction, metric(example, prediction))
    except Exception as error:
        return Outcome(prediction, error=error, in_metric=True)


@dataclass
class ThreadExecutor:
    """Today's behaviour: ``run_indexed`` in this process, the program and metric called as they are."""

    num_threads: int | None = None

    def map_program(
        self,
        program: Any,
        examples: Sequence[Any],
        *,
        metric: Callable[[Any, Any], Any] | None = None,
        num_threads: int | None = None,
        on_outcome: OnOutcome,
        stop: threading.Event | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        items = list(examples)

        def one(index: int) -> None:
            if stop is not None and stop.is_set():
                return
            on_outcome(index, run_example(program, items[index], metric))

        threads = self.num_threads or num_threads or current().num_threads
        run_indexed(one, len(items), threads, stop=stop, on_tick=on_tick)

    def close(self) -> None:
        """Nothing to release (the pool lives for one call); here so every executor can be closed alike."""


def executor_in_force(executor: Any = None) -> Any:
    """``executor``, else the ``executor`` setting, else a ``ThreadExecutor``; the name ``"threads"`` is one too."""
    chosen = executor if executor is not None else current().executor
    if chosen is None or chosen == "threads":
        return ThreadExecutor()
    if isinstance(chosen, str):
        raise ValueError(
            f"executor={chosen!r}: here an executor is 'threads' or an Executor object "
            "(promptless.RayExecutor(...)); Evaluate and the CLI also take the name 'ray'"
        )
    if not isinstance(chosen, Executor):
        raise TypeError(f"executor= takes an Executor (with a map_program method), got {type(chosen).__name__}")
    return chosen
