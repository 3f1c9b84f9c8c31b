"""Refine: BestOfN where, after a failed attempt, the LM writes advice that the next attempt reads."""

from __future__ import annotations

import json
from typing import Any

from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from promptless.errors import ParseError
from promptless.module import Module
from promptless.modules.best_of_n import BestOfN, RewardFn
from promptless.modules.predict import Predict
from promptless.primitives import Prediction
from promptless.settings import context
from promptless.signature import InputField, OutputField, Signature

ADVICE_INSTRUCTIONS = (
    "A program ran on the inputs below and its result scored under the target. Read what each of its steps "
    "received and wrote, then give each step one or two sentences of concrete advice for the next attempt."
)


class Refine(BestOfN):
    """``Refine(module, N=3, reward_fn=..., threshold=1.0)``.

    After an attempt scores under the threshold, an advisor predictor reads that
    attempt's trace (every step's inputs and outputs), its reward and the target,
    and writes advice per step; the next attempt runs with that advice added to
    each step's instructions. The advisor is not a parameter of the program (it
    is not compiled or saved).
    """

    def __init__(
        self,
        module: Module,
        N: int,  # noqa: N803
        reward_fn: RewardFn,
        threshold: float,
        fail_count: int | None = None,
        *,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(module, N, reward_fn, threshold, fail_count, temperature=temperature)
        names = [name for name, _ in module.named_predictors()]
        advice_type = TypedDict("Advice", {name: str for name in names})  # type: ignore[misc]
        signature = Signature(
            {
                "program_inputs": (str, InputField()),
                "program_trace": (str, InputField(desc="each step's inputs and outputs, in order")),
                "reward": (float, InputField(desc="the score the result got")),
                "target": (float, InputField(desc="the score to reach")),
                "advice": (advice_type, OutputField(desc="advice for each step, by step name")),
            },
            ADVICE_INSTRUCTIONS,
        )
        self._advisor = Predict(signature)

    def run_attempt(self, index: int, inputs: dict[str, Any], call: dict[str, Any]) -> tuple[Prediction, float]:
        attempt = self.attempt_copy(index)
        advice = call.get("advice", {})
        for name, predictor in attempt.named_predictors():
            if advice.get(name):
                note = f"\n\nAdvice from an earlier attempt: {advice[name].strip()}"
                predictor.signature = predictor.signature.with_instructions(predictor.signature.instructions + note)
        trace: list[Any] = []
        with context(trace=trace):
            prediction = attempt(**inputs)
        names = {id(p): name for name, p in attempt.named_predictors()}
        call["trace"] = [(names.get(id(step.predictor), "?"), step) for step in trace]
        return prediction, float(self.reward_fn(inputs, prediction))

    def after_failed_attempt(self, index: int, inputs: dict[str, Any], reward: float, call: dict[str, Any]) -> None:
        if index + 1 >= self.N:
            return
        steps = [
            f"[{name}] inputs: {_compact(step.inputs)}\n[{name}] outputs: {_compact(dict(step.outputs.items()))}"
            for name, step in call.get("trace", [])
        ]
        try:
            advice = self._advisor(
                program_inputs=_compact(inputs), program_trace="\n".join(steps) or "(no steps recorded)",
                reward=reward, target=self.threshold,
            ).advice  # fmt: skip
        except ParseError:  # no advice this time; the next attempt is a plain resample
            call["advice"] = {}
            return
        call["advice"] = {k: v for k, v in dict(advice).items() if isinstance(v, str)}


def _compact(values: dict[str, Any]) -> str:
    return json.dumps(values, ensure_ascii=False, default=str)[:2000]
