"""LM judges: metrics that are programs too, so their own prompts can be compiled like any other.

``Judge`` asks an LM whether a predicted answer matches the gold one and returns
a score in [0, 1] with a short feedback text; ``SemanticF1`` is DSPy's metric (an
LM estimates recall and precision of the response's key ideas; the score is
their F1). Both are Modules: ``judge(question=..., gold_answer=..., ...)`` runs
the judge as a program (this is what ``BootstrapFewShot`` compiles), and
``judge(example, prediction, trace=None)`` runs it as a metric.

Error contract (metric mode): a judge output that cannot be parsed scores 0 and
says so in the feedback, so a bad judgement never crashes an evaluation; a field
the judge needs but the example or prediction lacks raises ``JudgeFieldError``
naming it and the keys received; LM errors propagate (``Evaluate`` counts them,
fatal ones end the run). In program mode a ParseError propagates, as from any
``Predict``, so an evaluation *of the judge* counts its parse failures honestly.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from typing import Any, Literal

from promptless.errors import JudgeFieldError, ParseError
from promptless.evaluate.feedback import ScoreWithFeedback
from promptless.fieldtypes import literal_values
from promptless.lm import LM
from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.primitives import Prediction
from promptless.settings import context
from promptless.signature import InputField, OutputField, Signature, ensure_signature

log = logging.getLogger("promptless.evaluate.judge")

PASSING_VERDICTS = frozenset({"correct", "yes", "true", "pass", "right", "good", "acceptable", "equivalent"})
KEY_IDEAS_REASONING = "briefly: the key ideas of each response, and whether each is present in the other"
METRIC_KEYWORDS = frozenset({"example", "gold", "prediction", "pred", "trace", "pred_name", "pred_trace"})
METRIC_ALIASES = {"gold": "example", "pred": "prediction"}  # the names GEPA's feedback metrics use


class UnitFloat(float):
    """A number in [0, 1]: pydantic checks the range and the JSON schema carries it to constrained decoding."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.float_schema(ge=0.0, le=1.0)


# -- signatures ---------------------------------------------------------------------------------
class JudgeAnswer(Signature):
    """Is the predicted answer to the question correct, given the gold answer? Same meaning counts, any wording."""

    question: str = InputField()
    gold_answer: str = InputField()
    predicted_answer: str = InputField()
    verdict: Literal["correct", "incorrect"] = OutputField(
        desc="incorrect if it names a different person, place, number, date or yes/no than the gold answer"
    )
    feedback: str = OutputField(desc="one short sentence saying why")


class RateAnswer(Signature):
    """Rate how well the predicted answer to the question matches the gold answer."""

    question: str = InputField()
    gold_answer: str = InputField()
    predicted_answer: str = InputField()
    rating: Literal[1, 2, 3, 4, 5] = OutputField(desc="5 = same meaning, 3 = partly right, 1 = wrong or unrelated")
    feedback: str = OutputField(desc="one short sentence saying why")


class SemanticRecallPrecision(Signature):
    """Compare a system's response to the ground truth to compute its recall and precision of key ideas."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    recall: UnitFloat = OutputField(desc="fraction (0.0 to 1.0) of the ground truth covered by the system response")
    precision: UnitFloat = OutputField(desc="fraction (0.0 to 1.0) of the system response covered by the ground truth")


class DecompositionalSemanticRecallPrecision(Signature):
    """Enumerate the key ideas of the ground truth and the response, discuss their overlap, then rate both."""

    question: str = InputField()
    ground_truth: str = InputField()
    system_response: str = InputField()
    ground_truth_key_ideas: str = OutputField(desc="enumeration of key ideas in the ground truth")
    system_response_key_ideas: str = OutputField(desc="enumeration of key ideas in the system response")
    discussion: str = OutputField(desc="discussion of the overlap between ground truth and system response")
    recall: UnitFloat = OutputField(desc="fraction (0.0 to 1.0) of the ground truth covered by the system response")
    precision: UnitFloat = OutputField(desc="fraction (0.0 to 1.0) of the system response covered by the ground truth")


# -- shared machinery -----------------------------------------------------------------------------
class _LMMetric(Module):
    """What both judges share: argument checks, field mapping, and the metric/program call routing."""

    _gold_inputs: frozenset[str] = frozenset()
    _predicted_inputs: frozenset[str] = frozenset()

    def _setup(self, threshold: float, question_field: str, answer_field: str) -> None:
        name = type(self).__name__
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{name}(threshold=) must be a number in [0, 1], got {threshold!r}")
        for arg, value in (("question_field", question_field), ("answer_field", answer_field)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}({arg}=) must be a non-empty field name, got {value!r}")
        self.threshold = float(threshold)
        self.question_field = question_field
        self.answer_field = answer_field

    def _judge_signature(self) -> Signature:
        raise NotImplementedError

    def _check_inputs(self, signature: Signature) -> None:
        clash = sorted(METRIC_KEYWORDS & set(signature.input_fields))
        if clash:
            raise ValueError(
                f"{type(self).__name__}: input field(s) {clash} of {signature.signature!r} clash with the metric "
                f"call judge(example, prediction, trace); rename them"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``judge(example, prediction, trace=None)`` is the metric; ``judge(**input_fields)`` the program."""
        if args or METRIC_KEYWORDS & kwargs.keys():
            return self.metric(*args, **{METRIC_ALIASES.get(key, key): value for key, value in kwargs.items()})
        return super().__call__(**kwargs)

    def metric(
        self, example: Any, prediction: Any, trace: Any = None, pred_name: str | None = None, pred_trace: Any = None
    ) -> Any:
        raise NotImplementedError

    def inputs_for(self, example: Any, prediction: Any) -> dict[str, Any]:
        """The judge's input values, read from the example and the prediction.

        ``question`` comes from ``example[question_field]``; the gold answer
        (``gold_answer``/``ground_truth``) from ``example[answer_field]``; the
        predicted one (``predicted_answer``/``system_response``) from
        ``prediction[answer_field]``. In a custom signature ``gold_X`` reads
        ``example[X]``, ``predicted_X`` reads ``prediction[X]``, and any other
        input is read from the example, else from the prediction.
        """
        values = {}
        for name in self._judge_signature().input_fields:
            if name == "question":
                values[name] = _field(example, "example", self.question_field, name, "question_field")
            elif name in self._gold_inputs:
                values[name] = _field(example, "example", self.answer_field, name, "answer_field")
            elif name in self._predicted_inputs:
                values[name] = _field(prediction, "prediction", self.answer_field, name, "answer_field")
            elif name.startswith("gold_"):
                values[name] = _field(example, "example", name.removeprefix("gold_"), name)
            elif name.startswith("predicted_"):
                values[name] = _field(prediction, "prediction", name.removeprefix("predicted_"), name)
            elif _has(example, name):
                values[name] = _field(example, "example", name, name)
            else:
                values[name] = _field(prediction, "prediction", name, name)
        return values

    def _run_as_metric(self, example: Any, prediction: Any) -> Prediction | ParseError:
        """Run the judge program on one pair, outside the caller's trace (the judge is not the program judged)."""
        inputs = self.inputs_for(example, prediction)
        try:
            with context(trace=None):
                return super().__call__(**inputs)
        except ParseError as error:
            log.warning("%s: unparsable judge output scored 0: %s", type(self).__name__, error.reason)
            return error


def _has(record: Any, key: str) -> bool:
    if isinstance(record, Mapping) or hasattr(record, "keys"):
        return key in record
    return hasattr(record, key)


def _keys(record: Any) -> list[str]:
    if hasattr(record, "keys"):
        return list(record.keys())
    return sorted(k for k in vars(record) if not k.startswith("_")) if hasattr(record, "__dict__") else []


def _field(record: Any, where: str, key: str, input_name: str, arg: str | None = None) -> Any:
    if record is None or not _has(record, key):
        via = f" (set by {arg}={key!r})" if arg else ""
        got = "None" if record is None else f"a {type(record).__name__} with keys {_keys(record)}"
        raise JudgeFieldError(
            f"the judge's input {input_name!r} reads {where}.{key}{via}, but the {where} has no field {key!r}: "
            f"got {got}"
        )
    return record[key] if hasattr(record, "keys") else getattr(record, key)


def _score_field(signature: Signature) -> str:
    """The output the score is read from: the first one that is not free text."""
    for name, field in signature.output_fields.items():
        if field.annotation is not str:
            _to_score(field.annotation, None, check=True, name=name)
            return name
    raise ValueError(
        f"Judge signature {signature.signature!r} has no verdict output: add one typed "
        "Literal['correct', 'incorrect'], Literal[1, 2, 3, 4, 5], bool or a float in [0, 1]"
    )


def _to_score(annotation: Any, value: Any, *, check: bool = False, name: str = "verdict") -> float:
    """A verdict as a score in [0, 1]; with ``check``, only validate that the type can be scored."""
    choices = literal_values(annotation)
    if choices is not None and all(isinstance(c, str) for c in choices):
        if check and not PASSING_VERDICTS & {c.lower() for c in choices}:
            raise ValueError(
                f"Judge output {name!r}: none of its choices {list(choices)} is a passing verdict "
                f"(one of {sorted(PASSING_VERDICTS)})"
            )
        return float(str(value).lower() in PASSING_VERDICTS)
    if choices is not None and all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in choices):
        low, high = min(choices), max(choices)
        if check and low == high:
            raise ValueError(f"Judge output {name!r}: a scale needs at least two values, got {list(choices)}")
        return 0.0 if check else (float(value) - low) / (high - low)
    if annotation is bool:
        return float(bool(value))
    if annotation is float or (isinstance(annotation, type) and issubclass(annotation, float)):
        return 0.0 if check else min(1.0, max(0.0, float(value)))
    raise ValueError(
        f"Judge output {name!r} of type {getattr(annotation, '__name__', annotation)!r} cannot be read as a score: "
        "type it Literal['correct', 'incorrect'], Literal[1, 2, 3, 4, 5], bool or float in [0, 1]"
    )


def harmonic_f1(precision: float, recall: float) -> float:
    """F1 of precision and recall, each clamped to [0, 1] first (as DSPy's SemanticF1 does)."""
    precision, recall = max(0.0, min(1.0, float(precision))), max(0.0, min(1.0, float(recall)))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# -- the judges -----------------------------------------------------------------------------------
class Judge(_LMMetric):
    """An LM judge of answers: a score in [0, 1] plus feedback; its ``predict`` can be compiled.

    ``signature``: default ``JudgeAnswer`` (verdict correct/incorrect); ``RateAnswer``
    gives a 1–5 rating mapped to 0, 0.25, …, 1. The score comes from the first
    non-text output, the feedback from the ``feedback`` output. ``threshold``: the
    score that counts as a pass when an optimizer asks for a yes/no (a ``trace``
    is given), as in DSPy. ``lm``: the judge's own LM (default: the one in force).
    """

    _gold_inputs = frozenset({"gold_answer"})
    _predicted_inputs = frozenset({"predicted_answer"})

    def __init__(
        self,
        signature: str | Signature | type[Signature] | None = None,
        *,
        threshold: float = 0.5,
        question_field: str = "question",
        answer_field: str = "answer",
        lm: LM | None = None,
    ) -> None:
        self._setup(threshold, question_field, answer_field)
        self.predict = Predict(ensure_signature(signature if signature is not None else JudgeAnswer), lm=lm)
        self._check_inputs(self.predict.signature)
        self.score_field = _score_field(self.predict.signature)

    def _judge_signature(self) -> Signature:
        return self.predict.signature

    def forward(self, **inputs: Any) -> Prediction:
        """The judgement of one (question, gold, predicted) triple: its outputs plus ``score`` and ``feedback``."""
        judged = self.predict(**inputs)
        annotation = self.predict.signature.output_fields[self.score_field].annotation
        value = judged[self.score_field]
        feedback = str(judged.get("feedback") or f"{self.score_field}: {value}")
        return Prediction({**judged.toDict(), "score": _to_score(annotation, value), "feedback": feedback})

    def metric(
        self, example: Any, prediction: Any, trace: Any = None, pred_name: str | None = None, pred_trace: Any = None
    ) -> ScoreWithFeedback | bool:
        """Score ``prediction`` against ``example``.

        Returns a ``ScoreWithFeedback``; when an optimizer passes a ``trace`` (and
        no ``pred_name``, which feedback-reading optimizers send) it returns
        ``score >= threshold`` instead, DSPy's convention for bootstrapping.
        """
        judged = self._run_as_metric(example, prediction)
        if isinstance(judged, ParseError):
            result = ScoreWithFeedback(0.0, f"the judge's output could not be parsed ({judged.reason}); scored 0")
        else:
            result = ScoreWithFeedback(float(judged.score), str(judged.feedback))
        if trace is not None and pred_name is None and pred_trace is None:
            return float(result) >= self.threshold
        return result


class F1Score(float):
    """SemanticF1's metric result: a float that also reads as DSPy 3.x's ``Prediction(score=...)``.

    DSPy's ``SemanticF1()(example, pred)`` returns ``Prediction(score=f1)``; this is the f1 itself,
    so ``float()``, comparisons, sums and ``f"{score:.2f}"`` work, and so do DSPy's ``.score``
    and ``["score"]``.
    """

    @property
    def score(self) -> float:
        return float(self)

    def __getitem__(self, key: str) -> float:
        if key != "score":
            raise KeyError(key)
        return float(self)


class SemanticF1(_LMMetric):
    """DSPy's SemanticF1: an LM estimates recall and precision of the key ideas; the metric is their F1.

    Reads ``example[answer_field]`` as the ground truth and ``prediction[answer_field]``
    as the response (default ``"response"``, DSPy's field). The metric
    (``metric(example, pred)``) returns the F1 as an ``F1Score`` (a float with DSPy's
    ``.score``), or ``f1 >= threshold`` (a bool) when a ``trace`` is given (DSPy's
    convention, where DSPy returns ``Prediction(score=True/False)``); with ``pred_name`` it
    returns a ``ScoreWithFeedback`` naming recall and precision. Called with the judge's
    inputs (``metric(question=..., ground_truth=..., system_response=...)``) it is the
    program: a Prediction with ``recall``, ``precision``, ``score`` and ``feedback``.
    """

    _gold_inputs = frozenset({"ground_truth"})
    _predicted_inputs = frozenset({"system_response"})

    def __init__(
        self,
        threshold: float = 0.66,
        decompositional: bool = False,
        *,
        question_field: str = "question",
        answer_field: str = "response",
        lm: LM | None = None,
    ) -> None:
        self._setup(threshold, question_field, answer_field)
        if not isinstance(decompositional, bool):
            raise ValueError(f"SemanticF1(decompositional=) must be True or False, got {decompositional!r}")
        self.decompositional = decompositional
        if decompositional:  # its key-idea and discussion fields are the reasoning
            signature = ensure_signature(DecompositionalSemanticRecallPrecision)
        else:  # DSPy's ChainOfThought, flat: one predictor either way
            signature = SemanticRecallPrecision.prepend("reasoning", OutputField(desc=KEY_IDEAS_REASONING))
        self.predict = Predict(signature, lm=lm)

    def _judge_signature(self) -> Signature:
        return self.predict.signature

    def forward(self, **inputs: Any) -> Prediction:
        """Recall and precision of one response (plus the reasoning fields), and their F1 as ``score``."""
        judged = self.predict(**inputs)
        score = harmonic_f1(judged.precision, judged.recall)
        feedback = f"recall {float(judged.recall):.2f}, precision {float(judged.precision):.2f}"
        return Prediction({**judged.toDict(), "score": score, "feedback": feedback})

    def metric(
        self, example: Any, prediction: Any, trace: Any = None, pred_name: str | None = None, pred_trace: Any = None
    ) -> float | bool | ScoreWithFeedback:
        judged = self._run_as_metric(example, prediction)
        if isinstance(judged, ParseError):
            score, feedback = 0.0, f"the judge's output could not be parsed ({judged.reason}); scored 0"
        else:
            score, feedback = float(judged.score), str(judged.feedback)
        if pred_name is not None or pred_trace is not None:
            return ScoreWithFeedback(score, feedback)
        return F1Score(score) if trace is None else score >= self.threshold


__all__ = [
    "DecompositionalSemanticRecallPrecision",
    "F1Score",
    "Judge",
    "JudgeAnswer",
    "JudgeFieldError",
    "RateAnswer",
    "ScoreWithFeedback",
    "SemanticF1",
    "SemanticRecallPrecision",
    "UnitFloat",
    "harmonic_f1",
]
