"""Forecast what a compile will spend before it runs.

An optimizer knows how many times it will run the program (per phase) and how
many proposer calls it will make; what it cannot know is how many LM calls one
run of the program makes, or how long its prompts are. ``probe`` measures that on
a few training examples (real calls, cached, so the compile gets them back free).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptless.errors import cannot_recover
from promptless.evaluate.feedback import call_metric
from promptless.settings import context, current
from promptless.trace import UsageTracker

if TYPE_CHECKING:
    from promptless.lm.base import Response
    from promptless.module import Module
    from promptless.primitives import Example


@dataclass
class Probe:
    """Per-run costs measured on a few examples: LM calls, tokens, and how often the metric passed."""

    runs: int = 0
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    passed: int = 0
    errors: int = 0

    @property
    def calls_per_run(self) -> float:
        return self.lm_calls / self.runs if self.runs else 1.0

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 1.0

    def tokens_per_call(self) -> tuple[float, float]:
        if not self.lm_calls:
            return (0.0, 0.0)
        return (self.prompt_tokens / self.lm_calls, self.completion_tokens / self.lm_calls)


class _CountEverything(UsageTracker):
    """Counts cache hits as calls with their recorded tokens: a forecast is about work, not cost."""

    def __init__(self, probe: Probe, parent: UsageTracker | None = None) -> None:
        super().__init__(parent=parent)
        self.probe = probe

    def add(self, model: str, response: Response) -> None:
        if self.parent is not None:  # a compile's report counts the probe's calls too
            self.parent.add(model, response)
        with self._lock:
            self.probe.lm_calls += 1
            self.probe.prompt_tokens += response.usage.prompt_tokens
            self.probe.completion_tokens += response.usage.completion_tokens


def probe(program: Module, examples: Sequence[Example], metric: Any = None, *, size: int = 3) -> Probe:
    """Run ``program`` on up to ``size`` examples, counting LM calls and tokens; errors are counted, not raised."""
    result = Probe()

    tracker = _CountEverything(result, parent=current().usage_tracker)
    for example in list(examples)[:size]:
        result.runs += 1
        try:
            with context(usage_tracker=tracker, trace=[]):
                prediction = program(**example.inputs())
            if metric is None or call_metric(metric, example, prediction):
                result.passed += 1
        except Exception as error:  # a forecast must not fail on an example the compile would score as a failure
            if cannot_recover(error):
                raise
            result.errors += 1
    return result


@dataclass
class Plan:
    """What a compile is forecast to spend: program runs and proposer calls per phase, LM calls and tokens."""

    optimizer: str
    phases: dict[str, int] = field(default_factory=dict)  # phase -> program runs
    proposer_calls: int = 0
    calls_per_run: float = 1.0
    tokens_per_call: tuple[float, float] = (0.0, 0.0)
    probe: Probe | None = None
    note: str = ""  # what the count assumes, e.g. "an upper bound: every proposal accepted"

    @classmethod
    def from_probe(
        cls, optimizer: str, phases: dict[str, int], measured: Probe, proposer_calls: int = 0, note: str = ""
    ) -> Plan:
        """Program runs per phase priced at what the probe measured per run and per call."""
        return cls(
            optimizer, phases, proposer_calls, measured.calls_per_run, measured.tokens_per_call(), measured, note
        )

    @property
    def program_runs(self) -> int:
        return sum(self.phases.values())

    @property
    def lm_calls(self) -> int:
        return math.ceil(self.program_runs * self.calls_per_run) + self.proposer_calls

    @property
    def tokens(self) -> int:
        prompt, completion = self.tokens_per_call
        return round(self.lm_calls * (prompt + completion))

    def summary(self) -> str:
        phases = ", ".join(f"{name} {runs}" for name, runs in self.phases.items())
        text = (
            f"{self.optimizer} plan: ~{self.lm_calls} LM calls (~{self.tokens} tokens): program runs [{phases}] "
            f"x {self.calls_per_run:.2f} calls/run + {self.proposer_calls} proposer calls"
        )
        return f"{text}; {self.note}" if self.note else text


def bootstrap_runs(train_size: int, max_demos: int, pass_rate: float, threads: int, rounds: int = 1) -> int:
    """Expected teacher runs of BootstrapFewShot: waves of ``threads`` until ``max_demos`` examples passed."""
    if max_demos <= 0:
        return 0
    if pass_rate <= 0:
        return train_size * rounds
    needed = math.ceil(max_demos / pass_rate)
    waves = math.ceil(min(needed, train_size) / max(1, threads))
    return min(train_size, waves * max(1, threads))
