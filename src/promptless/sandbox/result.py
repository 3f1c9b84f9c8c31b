"""What a sandbox run returns. Anything the code does, including trying to escape, is a result, not an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ErrorKind = Literal["exception", "violation", "timeout", "memory", "output_limit", "crashed"]


@dataclass(frozen=True)
class RunError:
    """Why a run failed.

    ``kind`` says what happened: the code raised (``exception``), tried something
    the sandbox denies (``violation``), ran out of wall-clock or CPU time
    (``timeout``), of memory (``memory``), printed more than the cap
    (``output_limit``), or its process ended without a report (``crashed``).
    ``type`` is the exception's class name; ``traceback`` starts at the code's frames.
    """

    kind: ErrorKind
    type: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return self.traceback.strip() or f"{self.type}: {self.message}"


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one ``Sandbox.run``.

    ``value`` is the value of the code's last line when that line is an
    expression (else of a global named ``answer``, else ``result``): the value
    itself when JSON can carry it, otherwise its ``repr``. ``value_repr`` is
    always the ``repr``. ``stdout``/``stderr`` are capped; ``isolation`` names the
    layers that were in force for this run.
    """

    ok: bool
    stdout: str = ""
    stderr: str = ""
    value: Any = None
    value_repr: str | None = None
    error: RunError | None = None
    duration_s: float = 0.0
    violations: tuple[str, ...] = ()
    isolation: tuple[str, ...] = field(default=())

    def output_text(self, limit: int = 4000) -> str:
        """What the code printed and computed, as one text for a language model to read."""
        parts = [self.stdout.rstrip()] if self.stdout.strip() else []
        if self.value_repr is not None:
            shown = self.value if isinstance(self.value, str) else self.value_repr
            parts.append(shown if not parts else f"Result: {shown}")
        text = "\n".join(parts) or "(no output)"
        return text if len(text) <= limit else text[: limit - 15] + "\n...(truncated)"
