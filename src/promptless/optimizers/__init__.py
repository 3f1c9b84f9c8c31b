"""Optimizers ("teleprompters"): compile a program against a metric."""

from promptless.optimizers.base import CandidateScore, CompileReport, Optimizer
from promptless.optimizers.better_together import BetterTogether
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.copro import COPRO
from promptless.optimizers.ensemble import Ensemble, majority
from promptless.optimizers.finetune import BootstrapFinetune
from promptless.optimizers.knn import KNNFewShot
from promptless.optimizers.labeled import LabeledFewShot
from promptless.optimizers.mipro import MIPROv2
from promptless.optimizers.plan import Plan
from promptless.optimizers.random_search import BootstrapFewShotWithRandomSearch
from promptless.optimizers.reflective import GEPA, Reflective
from promptless.optimizers.search import SearchSettings
from promptless.optimizers.simba import SIMBA

__all__ = [
    "COPRO",
    "GEPA",
    "SIMBA",
    "BetterTogether",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "BootstrapFinetune",
    "CandidateScore",
    "CompileReport",
    "Ensemble",
    "KNNFewShot",
    "LabeledFewShot",
    "MIPROv2",
    "Optimizer",
    "Plan",
    "Reflective",
    "SearchSettings",
    "majority",
]
