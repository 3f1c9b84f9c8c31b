"""What a LoRA training run shows while it runs: a rich bar when asked for, else a log line every 10 steps.

``finetune.train`` reports ``(step, total, loss)``; this turns that into the bar or the
lines, with the loss and an ETA. rich is imported only when the bar is shown.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["TrainingProgress"]

log = logging.getLogger("promptless.optimizers")


class TrainingProgress:
    """A context manager: ``with TrainingProgress(label, display) as update: train(..., progress=update)``."""

    def __init__(self, label: str, display: bool) -> None:
        self.label, self.display = label, display
        self._bar: Any = None
        self._task: Any = None
        self._started = time.perf_counter()

    def __enter__(self) -> Any:
        if self.display:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]}"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
        return self.update

    def update(self, step: int, total: int, loss: float) -> None:
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(self.label, total=total, loss="-")
            self._bar.update(self._task, completed=step, loss=f"{loss:.3f}")
            return
        if step == 1 or step % 10 == 0 or step == total:
            elapsed = time.perf_counter() - self._started
            eta = elapsed / step * (total - step)
            log.info("%s: step %d/%d loss %.3f (%.0f s, ETA %.0f s)", self.label, step, total, loss, elapsed, eta)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
