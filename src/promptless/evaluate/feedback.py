"""A metric's score with a sentence saying why: what reflective optimizers (GEPA) learn from.

A metric may return a plain number or bool, a ``ScoreWithFeedback``, a dict
``{"score": ..., "feedback": ...}``, or any object with ``.score`` and
``.feedback`` attributes (``Prediction(score=..., feedback=...)``, as in DSPy).
``Evaluate`` calls ``float(metric(...))``, so ``ScoreWithFeedback`` converts to
its score; ``split_score`` reads every one of these forms, and ``FeedbackMetric``
wraps a metric so that every form reads as a float (a dict, too).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoreWithFeedback:
    """``ScoreWithFeedback(0.0, "expected 'yes', got 'no'")``: a score that also says what went wrong."""

    score: float
    feedback: str | None = None

    def __float__(self) -> float:
        return float(self.score)

    def __bool__(self) -> bool:  # "passed" for optimizers that read a metric as a verdict
        return bool(self.score)

    def __getitem__(self, key: str) -> Any:  # dict-style access, as on DSPy's Prediction-based type
        if key not in ("score", "feedback"):
            raise KeyError(key)
        return getattr(self, key)


def split_score(value: Any) -> tuple[float, str | None]:
    """``(score, feedback or None)`` from whatever a metric returned; a clear TypeError for anything else."""
    if value is None:
        return 0.0, None
    if isinstance(value, ScoreWithFeedback):
        return float(value.score), _text(value.feedback)
    if isinstance(value, (bool, int, float)):
        return float(value), None
    if isinstance(value, Mapping):
        if "score" not in value:
            raise TypeError(f"a metric returned a mapping without a 'score' key: {dict(value)!r}")
        return _number(value["score"]), _text(value.get("feedback"))
    score = _attribute(value, "score")
    if score is not None:
        return _number(score), _text(_attribute(value, "feedback"))
    try:
        return float(value), None
    except (TypeError, ValueError):
        raise TypeError(
            f"a metric returned {type(value).__name__} {value!r}: expected a number, a bool, ScoreWithFeedback, "
            "or {'score': ..., 'feedback': ...}"
        ) from None


class FeedbackMetric:
    """A metric read as a float (what ``Evaluate`` needs) or, with ``judge``, as a score with feedback.

    A metric that accepts five arguments ``(gold, pred, trace, pred_name, pred_trace)``
    (DSPy's GEPA form) is called with ``None`` for the last two when only a score is
    wanted, and with them when feedback on one predictor is asked for.
    """

    def __init__(self, metric: Callable[..., Any]) -> None:
        self.metric = metric
        try:
            inspect.signature(metric).bind(None, None, None, None, None)
            self.per_predictor = True
        except (TypeError, ValueError):  # fewer parameters, or a callable without a signature
            self.per_predictor = False

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float:
        return split_score(self._call(example, prediction, trace))[0]

    def judge(
        self, example: Any, prediction: Any, trace: Any, pred_name: str | None, pred_trace: Any
    ) -> tuple[float, str | None]:
        """The program's score (as ``Evaluate`` computes it, without a trace) and the best feedback there is.

        Feedback on ``pred_name`` wins over feedback on the whole program, when the metric gives both.
        """
        score, feedback = split_score(self._call(example, prediction, None))
        if self.per_predictor and pred_name is not None:
            _, own = split_score(self._call(example, prediction, trace, pred_name, pred_trace))
            feedback = own or feedback
        return score, feedback

    def _call(self, example: Any, prediction: Any, trace: Any, *extra: Any) -> Any:
        if self.per_predictor:
            return self.metric(example, prediction, trace, *(extra or (None, None)))
        return self.metric(example, prediction, trace)


def _attribute(value: Any, name: str) -> Any:
    try:
        return getattr(value, name, None)
    except Exception:  # dict-like records may raise something other than AttributeError
        return None


def _number(score: Any) -> float:
    try:
        return float(score or 0.0)
    except (TypeError, ValueError):
        raise TypeError(f"a metric's 'score' must be a number, got {type(score).__name__} {score!r}") from None


def _text(feedback: Any) -> str | None:
    if feedback is None:
        return None
    text = str(feedback).strip()
    return text or None
