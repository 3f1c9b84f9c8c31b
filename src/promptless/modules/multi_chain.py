"""MultiChainComparison: read M attempts (reasoning + answer) at a question and write one corrected answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.primitives import Prediction
from promptless.signature import InputField, OutputField, Signature, ensure_signature


class MultiChainComparison(Module):
    """``MultiChainComparison("question -> answer", M=3)(completions, question=...)``.

    ``completions`` are M earlier attempts (Predictions or dicts with the output
    fields and, when there is one, ``reasoning``), e.g. from ``ChainOfThought(..., n=M)``.
    """

    def __init__(self, signature: str | Signature | type[Signature], M: int = 3, **config: Any) -> None:  # noqa: N803
        if M < 1:
            raise ValueError(f"MultiChainComparison(M=) must be at least 1, got {M}")
        self.M = M
        base = ensure_signature(signature)
        self.output_names = list(base.output_fields)
        for i in range(1, M + 1):
            base = base.append(f"attempt_{i}", InputField(desc=f"attempt {i}: its reasoning and answer"), str)
        base = base.prepend("rationale", OutputField(desc="compare the attempts, then reason to the answer"), str)
        instructions = f"{base.instructions}\nYou are given {M} attempts; they may be wrong. Compare them first."
        self.predict = Predict(base.with_instructions(instructions), **config)

    def forward(self, completions: Sequence[Mapping[str, Any] | Prediction], **inputs: Any) -> Prediction:
        attempts = list(completions)
        if len(attempts) != self.M:
            raise ValueError(f"MultiChainComparison(M={self.M}) needs {self.M} completions, got {len(attempts)}")
        for i, attempt in enumerate(attempts, start=1):
            inputs[f"attempt_{i}"] = self._render(attempt)
        return self.predict(**inputs)

    def _render(self, attempt: Mapping[str, Any] | Prediction) -> str:
        values = dict(attempt.items()) if hasattr(attempt, "items") else {}
        reasoning = str(values.get("reasoning") or values.get("rationale") or "").strip()
        answer = "; ".join(f"{name}: {values.get(name)}" for name in self.output_names)
        thinking = f"I reasoned: {reasoning} " if reasoning else ""
        return f"{thinking}My answer: {answer}"
