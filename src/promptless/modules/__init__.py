"""The library of modules, each built from Predict."""

from promptless.modules.chain_of_thought import ChainOfThought
from promptless.modules.predict import Predict

__all__ = ["ChainOfThought", "Predict"]
