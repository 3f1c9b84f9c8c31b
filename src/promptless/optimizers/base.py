"""What every optimizer shares: the compile contract, its report, and the errors that end a run.

Contract: ``compile(student, *, trainset, valset=None, teacher=None)`` returns a
*new* program (the student is never mutated) with ``program.compile_report``
attached. An example that raises while the optimizer runs the program scores as
a failure and the run goes on (up to ``max_errors``); an error that will not go
away (``promptless.errors.cannot_recover``: fatal ones, and a server still down or
hanging after the LM's retries) ends the run at once with that error.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptless.callbacks import callback_scope
from promptless.evaluate.feedback import call_metric, split_score
from promptless.evaluate.stats import bootstrap_ci, paired_bootstrap_ci
from promptless.module import Module
from promptless.primitives import Example
from promptless.trace import UsageTracker

Metric = Callable[..., Any]


@dataclass
class CandidateScore:
    """One program the optimizer considered, and how it scored (percent, with a 95 % CI)."""

    name: str
    score: float | None = None
    ci: tuple[float, float] | None = None
    n: int = 0
    errors: int = 0
    notes: str = ""
    delta: float | None = None  # points above the baseline, on the same examples
    delta_ci: tuple[float, float] | None = None  # 95 % paired-bootstrap interval of ``delta``

    @classmethod
    def from_scores(cls, name: str, scores: Sequence[float], errors: int = 0, notes: str = "") -> CandidateScore:
        mean = sum(scores) / len(scores) if scores else 0.0
        lo, hi = bootstrap_ci(list(scores))
        return cls(name, 100 * mean, (100 * lo, 100 * hi), len(scores), errors, notes)

    def against(self, baseline: Sequence[float], scores: Sequence[float]) -> CandidateScore:
        """Fill ``delta`` and its paired CI from per-example scores of this candidate and the baseline."""
        lo, hi = paired_bootstrap_ci(baseline, scores)
        self.delta = 100 * (sum(scores) - sum(baseline)) / len(scores) if scores else 0.0
        self.delta_ci = (100 * lo, 100 * hi)
        return self

    @property
    def significant(self) -> bool:
        """Better than the baseline: the whole 95 % paired interval lies above zero."""
        return self.delta_ci is not None and self.delta_ci[0] > 0


@dataclass
class CompileReport:
    """What a compile found and what it cost."""

    optimizer: str
    candidates: list[CandidateScore] = field(default_factory=list)
    chosen: str | None = None
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    wall_time_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    baseline: str | None = None  # the candidate every delta is measured against
    significant: bool | None = None  # did the chosen candidate beat the baseline significantly?
    test: CandidateScore | None = None  # the chosen program on the held-out testset, scored once
    forecast: Any = None  # the optimizer's Plan, made before the search
    stopped_by_budget: str | None = None
    resumed_steps: int = 0  # steps taken from a checkpoint instead of being run again
    cost: float | None = None  # dollars, from the price table (promptless.cost); None: a model has no price

    @property
    def total_calls(self) -> int:
        """LM calls made, answered by the backend or the cache: what a forecast predicts."""
        return self.lm_calls + self.cache_hits

    def record_usage(self, usage: UsageTracker, started: float) -> None:
        total = usage.total
        self.lm_calls, self.prompt_tokens, self.completion_tokens = (
            total.calls,
            total.prompt_tokens,
            total.completion_tokens,
        )
        self.cache_hits = usage.cache_hits
        self.cost = usage.cost
        self.wall_time_s = time.perf_counter() - started

    def summary(self) -> str:
        lines = [
            f"{self.optimizer}: {self.lm_calls} LM calls ({self.cache_hits} cache hits), "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, {self.wall_time_s:.1f} s"
            + (f", ${self.cost:.4f}" if self.cost is not None else "")
        ]
        if self.forecast is not None:
            lines.append(f"   forecast {self.forecast.lm_calls} LM calls, made {self.total_calls}")
        for c in self.candidates:
            mark = "*" if c.name == self.chosen else " "
            score = f"{c.score:.1f}% ({c.ci[0]:.1f}–{c.ci[1]:.1f})" if c.score is not None and c.ci else "-"
            delta = ""
            if c.delta is not None and c.delta_ci is not None:
                delta = f" {c.delta:+.1f} pts vs {self.baseline} ({c.delta_ci[0]:+.1f}..{c.delta_ci[1]:+.1f})"
            lines.append(f" {mark} {c.name}: {score}{delta} n={c.n} errors={c.errors} {c.notes}".rstrip())
        if self.test is not None and self.test.score is not None and self.test.ci is not None:
            t = self.test
            lines.append(f"   held-out test: {t.score:.1f}% ({t.ci[0]:.1f}–{t.ci[1]:.1f}) n={t.n} errors={t.errors}")
        if self.stopped_by_budget:
            lines.append(f"   stopped by budget: {self.stopped_by_budget}")
        lines += [f"   note: {note}" for note in self.notes]
        return "\n".join(lines)


class Optimizer:
    """Base class (DSPy's ``Teleprompter``): subclasses implement ``compile``.

    The ``compile`` of an optimizer written outside promptless is observed as it is for the built-in ones:
    callbacks get ``on_compile_start``/``on_compile_end`` around it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("compile")
        if own is not None and not cls.__module__.startswith("promptless."):
            cls.compile = _observed_compile(own)  # type: ignore[method-assign]

    def get_params(self) -> dict[str, Any]:
        """DSPy's ``Teleprompter.get_params``: the optimizer's settings."""
        return dict(vars(self))

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
    ) -> Module:
        raise NotImplementedError


def _observed_compile(compile_fn: Any) -> Any:
    @functools.wraps(compile_fn)
    def compile(self: Any, student: Any, *args: Any, **kwargs: Any) -> Any:
        inputs = {"optimizer": type(self).__name__, "student": student, **kwargs}
        with callback_scope("compile", self, inputs) as scope:
            scope.outputs = compile_fn(self, student, *args, **kwargs)
        return scope.outputs

    return compile


def check_trainset(trainset: Sequence[Example], name: str = "trainset") -> list[Example]:
    """Examples with inputs marked; a clear error otherwise (before any LM call is spent)."""
    examples = list(trainset)
    if not examples:
        raise ValueError(f"{name} is empty")
    for i, example in enumerate(examples):
        if not isinstance(example, Example):
            raise TypeError(f"{name}[{i}] is a {type(example).__name__}, not an Example")
        if not example.input_keys:
            raise ValueError(f"{name}[{i}] has no inputs marked ({list(example)}): use .with_inputs(...)")
    return examples


HOLDOUT_MIN_TRAIN = 20  # below this many examples nothing is held out (the report says the result is unchecked)
HOLDOUT_RANGE = (10, 200)


def split_holdout(
    train: list[Example], fraction: float, seed: int, owner: str
) -> tuple[list[Example], list[Example] | None, str]:
    """Without a valset: (examples to compile on, examples held out to compare on, a note for the report).

    The held-out examples are a seeded sample; both parts keep the trainset's order.
    """
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction < 1:
        raise ValueError(f"{owner}(holdout=) is a fraction from 0 to below 1, got {fraction!r}")
    if fraction == 0:
        return train, None, "no valset given (holdout=0): the result was not compared with the uncompiled program"
    if len(train) < HOLDOUT_MIN_TRAIN:
        return train, None, (
            f"no valset given and only {len(train)} training examples (fewer than {HOLDOUT_MIN_TRAIN}): nothing was "
            "held out, so the result was not compared with the uncompiled program"
        )
    low, high = HOLDOUT_RANGE
    size = min(high, max(low, round(fraction * len(train))))
    held = set(random.Random(seed).sample(range(len(train)), size))
    kept = [ex for i, ex in enumerate(train) if i not in held]
    holdout = [ex for i, ex in enumerate(train) if i in held]
    note = (
        f"no valset given: {size} of the {len(train)} training examples were held out (seeded) to compare the result "
        "with the uncompiled program; pass valset= to choose on your own examples, or holdout=0 to use them all"
    )
    return kept, holdout, note


def check_int(
    owner: str, name: str, value: Any, minimum: int | None = None, *, optional: bool = False, why: str = ""
) -> None:
    """A clear ``ValueError`` naming ``owner(name=)`` and the value received unless ``value`` is a fitting int."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        wanted = "an int" + (f" >= {minimum}" if minimum is not None else "") + (" or None" if optional else "")
        raise ValueError(f"{owner}({name}=) must be {wanted}, got {value!r}" + (f" ({why})" if why else ""))


def one_line(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis: for report notes."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def passes(metric: Metric, example: Example, prediction: Any, trace: Any, threshold: float | None) -> bool:
    """The metric's verdict: a non-zero score without a threshold, ``>= threshold`` with one.

    The score is read by the same rule as Evaluate's (``split_score``): a metric returning
    ``"no"`` or None is a ``MetricError``, never a pass.
    """
    score = split_score(call_metric(metric, example, prediction, trace), metric)[0]
    return score >= threshold if threshold is not None else bool(score)


def attach_report(program: Module, report: CompileReport) -> Module:
    program.compile_report = report  # type: ignore[attr-defined]
    program._compiled = True
    return program
