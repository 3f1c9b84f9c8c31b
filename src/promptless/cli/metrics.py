"""The metrics of ``--metric``: exact, f1 and contains on the first answer field, or an LM judge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from promptless.cli.errors import CLIError
from promptless.cli.programs import task_fields

if TYPE_CHECKING:
    from promptless.signature import Signature


class MetricKind(StrEnum):
    exact = "exact"
    f1 = "f1"
    contains = "contains"
    judge = "judge"


@dataclass(frozen=True)
class FieldMetric:
    """exact, f1 or contains on one output field, after SQuAD-style normalisation; a gold list means any of them.

    A frozen dataclass, so its repr (and every checkpoint key made from it) is the same in the next process.
    """

    kind: str
    field: str

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float | bool:
        from promptless.evaluate.metrics import exact_match, f1_score, normalize_text

        gold = example[self.field]
        golds = [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]
        predicted = str(prediction[self.field])
        if self.kind == MetricKind.f1:
            return max(f1_score(g, predicted) for g in golds)
        if self.kind == MetricKind.contains:
            text = normalize_text(predicted)
            return any(normalize_text(g) in text if normalize_text(g) else not text for g in golds)
        return any(exact_match(g, predicted) for g in golds)


def build_metric(kind: str, signature: Signature) -> Callable[..., Any]:
    """The metric named by ``--metric``, on the signature's first answer field."""
    inputs, outputs = task_fields(signature)
    if kind in (MetricKind.exact, MetricKind.f1, MetricKind.contains):
        return FieldMetric(str(kind), outputs[0])
    if kind == MetricKind.judge:
        try:
            from promptless.evaluate.judge import Judge
        except ImportError as error:
            raise CLIError(f"--metric judge needs promptless.evaluate.judge, which did not import ({error})") from None
        return Judge(question_field=inputs[0], answer_field=outputs[0])
    raise CLIError(f"unknown metric {kind!r}; choose one of {[k.value for k in MetricKind]}")
