"""promptless: program language models with typed signatures, composable modules and optimizers.

Names mirror DSPy's so that ``import promptless as dspy`` ports most programs.
Everything is imported on first use, keeping ``import promptless`` fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptless._version import __version__

_LAZY: dict[str, str] = {
    # signatures and data
    "Signature": "promptless.signature",
    "InputField": "promptless.signature",
    "OutputField": "promptless.signature",
    "SignatureError": "promptless.errors",
    "PromptlessError": "promptless.errors",
    "TooManyErrors": "promptless.errors",
    "MetricError": "promptless.errors",
    "ModelNotInstalled": "promptless.errors",
    "ensure_signature": "promptless.signature",
    "make_signature": "promptless.signature",
    "Completions": "promptless.primitives",
    "Example": "promptless.primitives",
    "Prediction": "promptless.primitives",
    # modules
    "Module": "promptless.module",
    "ArtifactError": "promptless.errors",
    "Predict": "promptless.modules.predict",
    "ChainOfThought": "promptless.modules.chain_of_thought",
    "ReAct": "promptless.modules.react",
    "MultiChainComparison": "promptless.modules.multi_chain",
    "BestOfN": "promptless.modules.best_of_n",
    "Refine": "promptless.modules.refine",
    "Parallel": "promptless.modules.parallel",
    "ProgramOfThought": "promptless.modules.program_of_thought",
    "ProgramOfThoughtError": "promptless.errors",
    "Sandbox": "promptless.sandbox",
    "Retrieve": "promptless.modules.retrieve",
    "BM25Retriever": "promptless.retrieve",
    "EmbeddingsRetriever": "promptless.retrieve",
    "ColBERTv2": "promptless.retrieve",
    "Passage": "promptless.retrieve",
    "RetrievalError": "promptless.errors",
    "SandboxResult": "promptless.sandbox",
    "Tool": "promptless.tool",
    "stream": "promptless.streaming",
    "streamify": "promptless.streaming",
    "asyncify": "promptless.streaming",
    "StreamListener": "promptless.streaming",
    "StreamResponse": "promptless.streaming",
    "FieldChunk": "promptless.streaming",
    "FieldValue": "promptless.streaming",
    "ToolArgumentError": "promptless.errors",
    # settings and tracing
    "configure": "promptless.settings",
    "context": "promptless.settings",
    "settings": "promptless.settings",
    "track_usage": "promptless.trace",
    "inspect_prompt": "promptless.inspection",
    "inspect_history": "promptless.inspection",
    "BaseCallback": "promptless.callbacks",
    "Price": "promptless.cost",
    "OpenTelemetryCallback": "promptless.telemetry",
    # LMs and adapters
    "LM": "promptless.lm.base",
    "BaseLM": "promptless.lm.custom_lm",
    "Request": "promptless.types",
    "Response": "promptless.types",
    "Usage": "promptless.types",
    "History": "promptless.types",
    "Adapter": "promptless.adapters",
    "ChatAdapter": "promptless.adapters",
    "JSONAdapter": "promptless.adapters",
    "CompletionAdapter": "promptless.adapters",
    "ParseError": "promptless.errors",
    # optimizers
    "Optimizer": "promptless.optimizers",
    "CompileReport": "promptless.optimizers",
    "LabeledFewShot": "promptless.optimizers",
    "BootstrapFewShot": "promptless.optimizers",
    "BootstrapFewShotWithRandomSearch": "promptless.optimizers",
    "KNNFewShot": "promptless.optimizers",
    "Ensemble": "promptless.optimizers",
    "majority": "promptless.optimizers",
    "COPRO": "promptless.optimizers.copro",
    "MIPROv2": "promptless.optimizers.mipro",
    "GEPA": "promptless.optimizers.reflective",
    "SIMBA": "promptless.optimizers.simba",
    "BootstrapFinetune": "promptless.optimizers.finetune",
    "BetterTogether": "promptless.optimizers.better_together",
    "Plan": "promptless.optimizers.plan",
    "LabelChoice": "promptless.modules.label_choice",
    "with_label_choice": "promptless.optimizers.calibration",
    "Budget": "promptless.budget",
    "BudgetExhausted": "promptless.errors",
    # evaluation
    "Evaluate": "promptless.evaluate",
    "EvaluationResult": "promptless.evaluate",
    "answer_exact_match": "promptless.evaluate",
    "answer_f1": "promptless.evaluate",
    "Judge": "promptless.evaluate.judge",
    "SemanticF1": "promptless.evaluate.judge",
    "ScoreWithFeedback": "promptless.evaluate.feedback",
    # where the examples run
    "ThreadExecutor": "promptless.executor",
    "RayExecutor": "promptless.distributed",
}
_LAZY.update(
    {
        name: "promptless.errors"
        for name in (
            "LMError",
            "LMTimeout",
            "LMUnavailable",
            "LMRateLimited",
            "LMAuthError",
            "LMNotFound",
            "LMContextOverflow",
            "LMBadRequest",
            # DSPy 3.3's names, aliases of the classes above (promptless.errors.DSPY_NAMES)
            "DSPyError",
            "LMProviderError",
            "LMUnexpectedError",
            "LMTransportError",
            "LMServerError",
            "LMTimeoutError",
            "LMRateLimitError",
            "LMInvalidRequestError",
            "ContextWindowExceededError",
            "LMUnsupportedModelError",
            "AdapterParseError",
            "is_retryable_lm_error",
        )
    }
)

# DSPy's submodules, reachable as attributes (``dspy.evaluate.answer_exact_match``, ``dspy.teleprompt.COPRO``).
_SUBMODULES = ("evaluate", "teleprompt", "predict", "signatures", "primitives", "adapters", "utils", "streaming")
_LAZY.update({name: f"promptless.{name}" for name in _SUBMODULES})

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'promptless' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name == "settings" or name in _SUBMODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


if TYPE_CHECKING:
    from promptless.adapters import Adapter, ChatAdapter, CompletionAdapter, JSONAdapter
    from promptless.budget import Budget
    from promptless.callbacks import BaseCallback
    from promptless.cost import Price
    from promptless.distributed import RayExecutor
    from promptless.errors import (
        AdapterParseError,
        ArtifactError,
        BudgetExhausted,
        ContextWindowExceededError,
        DSPyError,
        LMAuthError,
        LMBadRequest,
        LMContextOverflow,
        LMError,
        LMInvalidRequestError,
        LMNotFound,
        LMProviderError,
        LMRateLimited,
        LMRateLimitError,
        LMServerError,
        LMTimeout,
        LMTimeoutError,
        LMTransportError,
        LMUnavailable,
        LMUnexpectedError,
        LMUnsupportedModelError,
        MetricError,
        ModelNotInstalled,
        ParseError,
        ProgramOfThoughtError,
        PromptlessError,
        RetrievalError,
        SignatureError,
        ToolArgumentError,
        TooManyErrors,
        is_retryable_lm_error,
    )
    from promptless.evaluate import Evaluate, EvaluationResult, answer_exact_match, answer_f1
    from promptless.evaluate.feedback import ScoreWithFeedback
    from promptless.evaluate.judge import Judge, SemanticF1
    from promptless.executor import ThreadExecutor
    from promptless.inspection import inspect_history, inspect_prompt
    from promptless.lm.base import LM
    from promptless.lm.custom_lm import BaseLM
    from promptless.module import Module
    from promptless.modules.best_of_n import BestOfN
    from promptless.modules.chain_of_thought import ChainOfThought
    from promptless.modules.label_choice import LabelChoice
    from promptless.modules.multi_chain import MultiChainComparison
    from promptless.modules.parallel import Parallel
    from promptless.modules.predict import Predict
    from promptless.modules.program_of_thought import ProgramOfThought
    from promptless.modules.react import ReAct
    from promptless.modules.refine import Refine
    from promptless.modules.retrieve import Retrieve
    from promptless.optimizers import (
        BootstrapFewShot,
        BootstrapFewShotWithRandomSearch,
        CompileReport,
        Ensemble,
        KNNFewShot,
        LabeledFewShot,
        Optimizer,
        majority,
    )
    from promptless.optimizers.better_together import BetterTogether
    from promptless.optimizers.calibration import with_label_choice
    from promptless.optimizers.copro import COPRO
    from promptless.optimizers.finetune import BootstrapFinetune
    from promptless.optimizers.mipro import MIPROv2
    from promptless.optimizers.plan import Plan
    from promptless.optimizers.reflective import GEPA
    from promptless.optimizers.simba import SIMBA
    from promptless.primitives import Completions, Example, Prediction
    from promptless.retrieve import BM25Retriever, ColBERTv2, EmbeddingsRetriever, Passage
    from promptless.sandbox import Sandbox, SandboxResult
    from promptless.settings import configure, context
    from promptless.signature import InputField, OutputField, Signature, ensure_signature, make_signature
    from promptless.streaming import (
        FieldChunk,
        FieldValue,
        StreamListener,
        StreamResponse,
        asyncify,
        stream,
        streamify,
    )
    from promptless.telemetry import OpenTelemetryCallback
    from promptless.tool import Tool
    from promptless.trace import track_usage
    from promptless.types import History, Request, Response, Usage
