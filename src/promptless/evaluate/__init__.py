"""Evaluation: run a program over a dev set and score it honestly."""

from promptless.evaluate.evaluate import Evaluate, EvaluationResult, TooManyErrors
from promptless.evaluate.feedback import FeedbackMetric, ScoreWithFeedback, call_metric, split_score
from promptless.evaluate.judge import Judge, SemanticF1
from promptless.evaluate.metrics import answer_exact_match, answer_f1, exact_match, f1_score, normalize_text
from promptless.evaluate.stats import bootstrap_ci, paired_bootstrap_ci

__all__ = [
    "Evaluate",
    "EvaluationResult",
    "FeedbackMetric",
    "Judge",
    "ScoreWithFeedback",
    "SemanticF1",
    "TooManyErrors",
    "answer_exact_match",
    "answer_f1",
    "bootstrap_ci",
    "call_metric",
    "exact_match",
    "f1_score",
    "normalize_text",
    "paired_bootstrap_ci",
    "split_score",
]
