"""Metrics: plain callables ``(example, prediction, trace=None) -> float | bool``."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """SQuAD-style: lower case, no punctuation or articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCT)).split())


def exact_match(gold: str, predicted: str) -> bool:
    return normalize_text(gold) == normalize_text(predicted)


def f1_score(gold: str, predicted: str) -> float:
    gold_tokens, pred_tokens = normalize_text(gold).split(), normalize_text(predicted).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _golds(example: Any) -> list[str]:
    gold = example.answer
    return [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]


def answer_exact_match(example: Any, prediction: Any, trace: Any = None, frac: float = 1.0) -> bool:
    """``prediction.answer`` matches ``example.answer`` (any of them, if a list) after normalising."""
    if frac < 1.0:
        return max(f1_score(g, str(prediction.answer)) for g in _golds(example)) >= frac
    return any(exact_match(g, str(prediction.answer)) for g in _golds(example))


def answer_f1(example: Any, prediction: Any, trace: Any = None) -> float:
    """Token F1 of ``prediction.answer`` against the best of ``example.answer``."""
    return max(f1_score(g, str(prediction.answer)) for g in _golds(example))
