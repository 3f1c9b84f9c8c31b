"""DSPy's import path ``dspy.predict``: the modules, re-exported."""

from promptless.modules.best_of_n import BestOfN
from promptless.modules.chain_of_thought import ChainOfThought
from promptless.modules.multi_chain import MultiChainComparison
from promptless.modules.parallel import Parallel
from promptless.modules.predict import Predict
from promptless.modules.program_of_thought import ProgramOfThought
from promptless.modules.react import ReAct
from promptless.modules.refine import Refine
from promptless.modules.retrieve import Retrieve
from promptless.optimizers.ensemble import majority
from promptless.tool import Tool

__all__ = [
    "BestOfN",
    "ChainOfThought",
    "MultiChainComparison",
    "Parallel",
    "Predict",
    "ProgramOfThought",
    "ReAct",
    "Refine",
    "Retrieve",
    "Tool",
    "majority",
]
