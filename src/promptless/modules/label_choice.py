"""Choosing a label by likelihood: score every allowed value, optionally divided by the model's own prior.

A small model decoding greedily often favours one label whatever the input (the label its
demos end with, the most frequent one in pretraining). Scoring each allowed reply and taking
the likeliest removes parse failures and sampling quirks; dividing by the model's prior over
the labels, measured at compile time on inputs without labels ("Calibrate Before Use", Zhao et
al. 2021; batch calibration, Zhou et al. 2024), removes the bias itself. The prior belongs to a
prompt (instructions and demos), so it is learned after the demos are chosen and saved with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from promptless.errors import ArtifactError

ChoiceMode = Literal["likelihood", "calibrated"]
MODES: tuple[ChoiceMode, ...] = ("likelihood", "calibrated")


def value_key(value: Any) -> str:
    """A label as the text a prior is keyed by (JSON, so 1, "1" and true stay apart)."""
    return json.dumps(getattr(value, "value", value), ensure_ascii=False)


def normalized(logprobs: Sequence[float]) -> list[float]:
    """Log-probabilities renormalised over the choices (a log-softmax), so priors of different prompts compare."""
    peak = max(logprobs)
    total = peak + math.log(sum(math.exp(x - peak) for x in logprobs))
    return [x - total for x in logprobs]


@dataclass
class LabelChoice:
    """A predictor's way of picking its label: the likeliest allowed value, or that after calibration.

    ``prior`` maps each value (``value_key``) to the log of its mean probability on the
    calibration inputs; an empty prior calibrates nothing.
    """

    mode: ChoiceMode = "likelihood"
    prior: dict[str, float] = field(default_factory=dict)
    calibrated_on: int = 0  # how many inputs the prior was measured on (for reports)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"LabelChoice(mode=) is one of {list(MODES)}, got {self.mode!r}")

    def pick(self, values: Sequence[Any], logprobs: Sequence[float]) -> int:
        """The index of the chosen value."""
        scores = list(logprobs)
        if self.mode == "calibrated" and self.prior:
            scores = [s - self.prior.get(value_key(v), 0.0) for s, v in zip(normalized(scores), values, strict=True)]
        return max(range(len(scores)), key=scores.__getitem__)

    @staticmethod
    def learn_prior(values: Sequence[Any], runs: Sequence[Sequence[float]]) -> dict[str, float]:
        """Log of each value's mean probability over ``runs`` (one list of log-probabilities per input)."""
        if not runs:
            return {}
        means = [0.0] * len(values)
        for logprobs in runs:
            for i, lp in enumerate(normalized(logprobs)):
                means[i] += math.exp(lp) / len(runs)
        return {value_key(v): math.log(max(m, 1e-12)) for v, m in zip(values, means, strict=True)}

    def to_state(self) -> dict[str, Any]:
        return {"mode": self.mode, "prior": dict(self.prior), "calibrated_on": self.calibrated_on}

    @classmethod
    def from_state(cls, state: Any, *, name: str) -> LabelChoice:
        """Read back a saved choice, refusing anything but the shape ``to_state`` writes."""
        if not isinstance(state, Mapping) or state.get("mode") not in MODES:
            raise ArtifactError(f"predictor {name!r}: 'choice' must be an object with mode one of {list(MODES)}")
        prior = state.get("prior") or {}
        good = isinstance(prior, Mapping) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in prior.items()
        )
        if not good:
            raise ArtifactError(f"predictor {name!r}: choice 'prior' must map labels to finite numbers")
        count = state.get("calibrated_on", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ArtifactError(f"predictor {name!r}: choice 'calibrated_on' must be a whole number >= 0")
        return cls(state["mode"], {k: float(v) for k, v in prior.items()}, count)
