"""What a compile is doing while it runs: the phase, LM calls made of those forecast, the best score so far, an ETA.

On a terminal this is one live rich line. When stdout is not a terminal (a pipe, a log file,
CI), rich's live display would print nothing at all, so a plain line is printed every
``EVERY_S`` seconds instead. The display is a callback (``promptless.callbacks``): it counts
LM calls (cache hits too: the forecast counts them) and reads each evaluation's score.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from promptless.callbacks import BaseCallback
from promptless.cli.render import say

if TYPE_CHECKING:
    from rich.console import Console

EVERY_S = 5.0  # seconds between plain progress lines when stdout is not a terminal


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class CompileProgress(BaseCallback):
    """A context manager and a callback: ``with CompileProgress(console, forecast) as p, context(callbacks=[p])``."""

    def __init__(self, console: Console, total: int | None, *, every_s: float | None = None) -> None:
        self.console = console
        self.total = total or None
        self.every_s = EVERY_S if every_s is None else every_s
        self.calls = 0
        self.evaluations = 0
        self.depth = 0  # evaluations running (nested ones count once)
        self.best: float | None = None
        self.started = time.perf_counter()
        self._last_line = self.started
        self._lock = threading.Lock()
        self._live: Any = None
        self._task: Any = None
        self._failed_in: str | None = None  # the phase an exception (Ctrl-C) left, for the stop message

    # -- what is shown -------------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        if self.depth:
            return "scoring the baseline" if self.evaluations == 1 else f"scoring candidate {self.evaluations - 1}"
        return "building candidates" if self.evaluations else "starting"

    @property
    def stopped_in(self) -> str:
        """The phase a stop happened in, worded to follow "interrupted while"."""
        phase = self._failed_in or self.phase
        return "starting the compile" if phase == "starting" else phase

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        done = f"{self.calls}/{self.total}" if self.total else str(self.calls)
        best = f"{self.best:.1f}%" if self.best is not None else "-"
        eta = "?"
        if self.total and self.calls:
            eta = clock(elapsed / self.calls * max(0, self.total - self.calls)) if self.calls < self.total else "soon"
        return f"{self.phase} · {done} LM calls · best so far {best} · elapsed {clock(elapsed)} · ETA {eta}"

    # -- the context manager ----------------------------------------------------------------------------
    def __enter__(self) -> CompileProgress:
        self.started = self._last_line = time.perf_counter()
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn

            self._live = Progress(
                TextColumn("{task.description}"), BarColumn(), console=self.console, transient=True
            )
            self._task = self._live.add_task(self.line(), total=self.total)
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """End the live line (and give the terminal its cursor back); the plain lines need nothing."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _changed(self) -> None:
        """Called with the lock held, after a count changed."""
        if self._live is not None:
            total = max(self.total or 0, self.calls) or None
            self._live.update(self._task, completed=self.calls, total=total, description=self.line())
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            say(self.console, f"progress: {self.line()}", "dim")

    # -- the callback -------------------------------------------------------------------------------
    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        with self._lock:
            self.calls += 1
            self._changed()

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            if not self.depth:
                self.evaluations += 1
            self.depth += 1
            self._changed()

    def on_evaluate_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        with self._lock:
            if exception is not None and self._failed_in is None:
                self._failed_in = self.phase
            self.depth = max(0, self.depth - 1)
            score = getattr(outputs, "score", None)
            if isinstance(score, (int, float)) and (self.best is None or score > self.best):
                self.best = float(score)
            self._changed()
