"""ChainOfThought: the same signature with a ``reasoning`` output written before the answer."""

from __future__ import annotations

from typing import Any

from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.primitives import Prediction
from promptless.signature import OutputField, Signature, ensure_signature

REASONING_DESC = "Think step by step, briefly, before answering."


class ChainOfThought(Module):
    def __init__(self, signature: str | Signature | type[Signature], *, rationale_field: Any = None, **config: Any):
        signature = ensure_signature(signature)
        field = rationale_field or OutputField(desc=REASONING_DESC)
        self.predict = Predict(signature.prepend("reasoning", field, str), **config)

    def forward(self, **kwargs: Any) -> Prediction:
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        return await self.predict.acall(**kwargs)
