"""Ctrl-C during a compile ends the process at once, without waiting for the LM calls in flight.

Python turns SIGINT into a KeyboardInterrupt in the main thread; the compile's thread pools
then wait, while unwinding, for every call already sent (a minute with slow embedded-model
calls). Nothing needs that wait: each finished step is already in the checkpoint (rewritten
atomically after every step) and each answer in the LM cache (sqlite, each write its own
transaction, in WAL mode). A process that ends in the middle of a write leaves the previous
checkpoint, or an uncommitted transaction that sqlite rolls back on the next open, never half
a file. So during a compile the CLI handles SIGINT itself: it stops the live display, prints
the stop line (the phase and the command that resumes), flushes, and ends with exit code 130.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from promptless.cli.errors import INTERRUPTED, say_error


@contextmanager
def exit_on_interrupt(message: Callable[[], str], *, before_exit: Callable[[], Any] | None = None) -> Iterator[None]:
    """Inside the block, SIGINT prints ``error: {message()}`` and ends the process with 130 at once.

    ``before_exit`` runs first (stop a live display, so the terminal gets its cursor back).
    Outside the main thread (where no signal handler can be set) the block runs unchanged,
    and a KeyboardInterrupt raised by other means (not a signal) still propagates as usual.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        try:
            if before_exit is not None:
                before_exit()
            text = message()
        except Exception:  # the process ends either way; say at least what happened
            text = "interrupted"
        try:
            say_error(text)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(INTERRUPTED)  # not sys.exit: that would wait for the worker threads

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
