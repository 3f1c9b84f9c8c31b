"""DSPy's import path ``dspy.teleprompt``: the optimizers, re-exported (``Teleprompter`` is ``Optimizer``)."""

from promptless.optimizers import (
    COPRO,
    GEPA,
    SIMBA,
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    Ensemble,
    KNNFewShot,
    LabeledFewShot,
    MIPROv2,
    Optimizer,
)

Teleprompter = Optimizer  # DSPy's name for the base class of optimizers

__all__ = [
    "COPRO",
    "GEPA",
    "SIMBA",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "Ensemble",
    "KNNFewShot",
    "LabeledFewShot",
    "MIPROv2",
    "Optimizer",
    "Teleprompter",
]
