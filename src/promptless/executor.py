"""Run one function over many items in threads: a bounded window in flight, settings following the work.

Evaluate, ``Module.batch``, ``Parallel`` and the optimizers' scoring all go through
``run_indexed``. Only ``2 × num_threads`` calls are in flight at once and each new one
is submitted as another completes, so the cost per item stays flat however long the
list (submitting everything up front and re-waiting on all of it made it grow), and a
stop takes effect within one call per thread.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

WINDOW_PER_THREAD = 2
POLL_S = 0.5  # how often ``on_tick`` is called while calls are in flight (for a progress display)


def run_indexed(
    fn: Callable[[int], None],
    count: int,
    num_threads: int,
    *,
    stop: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
) -> None:
    """Call ``fn(i)`` for ``i`` in ``range(count)``, in the caller's context, until done or ``stop`` is set.

    The first exception ``fn`` raises stops further submissions and is raised once the
    calls in flight have finished; so is a KeyboardInterrupt in the waiting thread.
    """
    stop = stop or threading.Event()
    context = contextvars.copy_context()
    workers = max(1, num_threads)
    window = WINDOW_PER_THREAD * workers
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: set[Future[None]] = set()
        next_index = 0
        try:
            while True:
                while not stop.is_set() and failure is None and next_index < count and len(pending) < window:
                    pending.add(pool.submit(context.copy().run, fn, next_index))
                    next_index += 1
                if not pending:
                    break
                finished, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    error = future.exception()
                    if error is not None and failure is None:
                        failure = error
                        stop.set()
                if on_tick is not None:
                    on_tick()
        finally:
            stop.set()  # also on Ctrl-C: the pool's exit waits only for the calls in flight
            for future in pending:
                future.cancel()
    if failure is not None:
        raise failure
