"""Optimizers ("teleprompters"): compile a program against a metric."""

from promptless.optimizers.base import CandidateScore, CompileReport, Optimizer
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.ensemble import Ensemble, majority
from promptless.optimizers.knn import KNNFewShot
from promptless.optimizers.labeled import LabeledFewShot
from promptless.optimizers.random_search import BootstrapFewShotWithRandomSearch

__all__ = [
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CandidateScore",
    "CompileReport",
    "Ensemble",
    "KNNFewShot",
    "LabeledFewShot",
    "Optimizer",
    "majority",
]
