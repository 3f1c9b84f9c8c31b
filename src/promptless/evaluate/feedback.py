"""A metric's score with a sentence saying why: what reflective optimizers (GEPA) learn from.

A metric may return a plain number or bool, a ``ScoreWithFeedback``, a dict
``{"score": ..., "feedback": ...}``, or any object with ``.score`` and
``.feedback`` attributes (``Prediction(score=..., feedback=...)``, as in DSPy).
``Evaluate`` calls ``float(metric(...))``, so ``ScoreWithFeedback`` converts to
its score; ``split_score`` reads every one of these forms, and ``FeedbackMetric``
wraps a metric so that every form reads as a float (a dict, too).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promptless.errors import MetricError


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


def split_score(value: Any, metric: Any = None) -> tuple[float, str | None]:
    """``(score, feedback or None)`` from what a metric returned: the one rule, for Evaluate and every optimizer.

    Numbers and bools are scores; so is the ``score`` of a ScoreWithFeedback, a
    ``{"score", "feedback"}`` mapping or an object with ``.score`` (DSPy's
    ``Prediction(score=...)``). Anything else, None and NaN included, is a
    ``MetricError`` naming the metric and showing the value: ``"no"`` is not a verdict.
    """
    if isinstance(value, ScoreWithFeedback):
        return _number(value.score, metric, value), _text(value.feedback)
    if isinstance(value, Mapping):
        if "score" not in value:
            raise MetricError(f"{_name(metric)} returned a mapping without a 'score' key: {dict(value)!r:.200}")
        return _number(value["score"], metric, value), _text(value.get("feedback"))
    if not isinstance(value, (numbers.Real, str)) and value is not None:
        score = _attribute(value, "score")
        if score is not None:
            return _number(score, metric, value), _text(_attribute(value, "feedback"))
    return _number(value, metric, value), None


def _number(score: Any, metric: Any, returned: Any) -> float:
    if isinstance(score, numbers.Real) and not math.isnan(float(score)):
        return float(score)
    raise MetricError(
        f"{_name(metric)} returned {type(returned).__name__} {returned!r:.120}: a metric must return a number or a "
        "bool (or ScoreWithFeedback / {'score': ..., 'feedback': ...})"
        + ("; NaN is not a score" if isinstance(score, numbers.Real) else "")
    )


def _name(metric: Any) -> str:
    if metric is None:
        return "the metric"
    name = getattr(metric, "__qualname__", None) or getattr(metric, "__name__", None) or type(metric).__name__
    return f"metric {name!r}"


_TAKES_TRACE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def takes_trace(metric: Any) -> bool:
    """Whether ``metric`` accepts a third argument (``trace``); DSPy's metrics may take only ``(example, pred)``.

    Read from the signature once per metric (remembered while the metric lives), never per call.
    """
    try:
        return _TAKES_TRACE[metric]
    except (KeyError, TypeError):
        pass
    try:
        inspect.signature(metric).bind(None, None, None)
        answer = True
    except TypeError:
        answer = False
    except ValueError:  # a callable without a signature (a builtin): assume DSPy's three arguments
        answer = True
    with contextlib.suppress(TypeError):  # not weak-referenceable: asked again next time
        _TAKES_TRACE[metric] = answer
    return answer


def call_metric(metric: Any, example: Any, prediction: Any, trace: Any = None) -> Any:
    """``metric(example, prediction, trace)``, or ``metric(example, prediction)`` for a two-parameter metric."""
    if takes_trace(metric):
        return metric(example, prediction, trace)
    return metric(example, prediction)


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
        return split_score(self._call(example, prediction, trace), self.metric)[0]

    def judge(
        self, example: Any, prediction: Any, trace: Any, pred_name: str | None, pred_trace: Any
    ) -> tuple[float, str | None]:
        """The program's score (as ``Evaluate`` computes it, without a trace) and the best feedback there is.

        Feedback on ``pred_name`` wins over feedback on the whole program, when the metric gives both.
        """
        score, feedback = split_score(self._call(example, prediction, None), self.metric)
        if self.per_predictor and pred_name is not None:
            _, own = split_score(self._call(example, prediction, trace, pred_name, pred_trace), self.metric)
            feedback = own or feedback
        return score, feedback

    def _call(self, example: Any, prediction: Any, trace: Any, *extra: Any) -> Any:
        if self.per_predictor:
            return self.metric(example, prediction, trace, *(extra or (None, None)))
        return call_metric(self.metric, example, prediction, trace)


def _attribute(value: Any, name: str) -> Any:
    try:
        return getattr(value, name, None)
    except Exception:  # dict-like records may raise something other than AttributeError
        return None


def _text(feedback: Any) -> str | None:
    if feedback is None:
        return None
    text = str(feedback).strip()
    return text or None
