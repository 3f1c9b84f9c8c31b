"""The pieces of one SIMBA step as plain data and functions: rollouts, buckets by outcome spread,
sampling, and the two strategies that build a candidate (append a demo, append a rule).

Kept apart from the search loop in ``simba.py`` so each piece can be read and tested on its own.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptless.adapters.values import to_jsonable
from promptless.module import Module
from promptless.primitives import Example
from promptless.signature import InputField, OutputField, Signature

NOT_AVAILABLE = "N/A"
TRUNCATED = "\n\t\t... <TRUNCATED FOR BREVITY>"


class OfferFeedback(Signature):
    """Two runs of the same LM program on the same input are shown: one scored better than the other.
    Write advice for each module of the program so that, on similar inputs in the future, it behaves
    like the better run rather than the worse one. A module never sees this history, only your advice,
    so make it concrete yet general: "if the input looks like X, do Y (and avoid Z)". Address each
    module's own sub-task, contrast the two runs to find where the worse one went wrong, and skip
    boilerplate. Use each module name exactly once as a key of the advice."""

    program_code: str = InputField(desc="the program's code, or its structure")
    modules_defn: str = InputField(desc="each module's inputs, outputs and current instructions")
    program_inputs: str = InputField(desc="the input both runs were given")
    oracle_metadata: str = InputField(desc="the labels of this training example, hidden from the program")
    worse_program_trajectory: str = InputField(desc="each module's inputs and outputs in the worse run")
    worse_program_outputs: str = InputField(desc="the worse run's final outputs")
    worse_reward_value: str = InputField(desc="the worse run's score")
    better_program_trajectory: str = InputField(desc="each module's inputs and outputs in the better run")
    better_program_outputs: str = InputField(desc="the better run's final outputs")
    better_reward_value: str = InputField(desc="the better run's score")
    module_names: list[str] = InputField(desc="the modules to advise")
    discussion: str = OutputField(desc="where each module went wrong in the worse run, if it did")
    module_advice: dict[str, str] = OutputField(desc="module name -> advice for that module")


class StrategySkipped(Exception):
    """A strategy had nothing to build from this bucket (no contrast, no usable trajectory, no matching advice)."""


# -- the pieces of one step, as plain data (checkpointed as JSON) --------------------------------------
@dataclass
class Rollout:
    """One sampled run of a pool program on one minibatch example."""

    example: int  # position in the step's minibatch
    program: int  # pool index of the program that ran
    rollout_id: int
    score: float
    trace: list[dict[str, Any]]  # [{"module": name, "inputs": {...}, "outputs": {...}}]
    outputs: dict[str, Any] | None
    error: str | None = None


@dataclass
class Bucket:
    """Every rollout's score on one example, with the best and the worst run kept for the strategies."""

    example: int
    scores: list[float]
    best: Rollout
    worst: Rollout

    @property
    def spread(self) -> float:
        return max(self.scores) - min(self.scores)

    @property
    def max_to_mean(self) -> float:
        return max(self.scores) - sum(self.scores) / len(self.scores)

    def key(self) -> tuple[float, float, float]:
        """Most variable first: max - min, then max - mean (a rare success), then the max itself."""
        return (self.spread, self.max_to_mean, max(self.scores))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bucket:
        return cls(data["example"], list(data["scores"]), Rollout(**data["best"]), Rollout(**data["worst"]))


@dataclass
class Candidate:
    """A program in the pool: its checkpointable state and its minibatch scores (none for the baseline)."""

    name: str
    program: Module
    digest: str
    scores: list[float] = field(default_factory=list)

    @property
    def average(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


def make_buckets(rollouts: Sequence[Rollout]) -> list[Bucket]:
    """Group rollouts by example (in minibatch order); best = first highest score, worst = last lowest."""
    by_example: dict[int, list[Rollout]] = {}
    for rollout in rollouts:
        by_example.setdefault(rollout.example, []).append(rollout)
    buckets = []
    for example in sorted(by_example):
        runs = sorted(by_example[example], key=lambda r: r.score, reverse=True)  # stable: ties keep rollout order
        buckets.append(Bucket(example, [r.score for r in by_example[example]], runs[0], runs[-1]))
    return buckets


def order_buckets(buckets: Sequence[Bucket]) -> list[Bucket]:
    """Most variable outcomes first (see ``Bucket.key``); ties keep minibatch order."""
    return sorted(buckets, key=Bucket.key, reverse=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation (numpy's default), without numpy."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def softmax_sample(rng: random.Random, indices: Sequence[int], averages: Sequence[float], temperature: float) -> int:
    """One of ``indices``, drawn with probability proportional to exp(average / temperature)."""
    if not indices:
        raise ValueError("softmax_sample needs at least one program to choose from")
    top = max(averages[i] for i in indices)
    weights = [math.exp((averages[i] - top) / temperature) for i in indices]  # shifted: no overflow
    return rng.choices(list(indices), weights=weights, k=1)[0]


def top_k_plus_baseline(averages: Sequence[float], k: int) -> list[int]:
    """The ``k`` best pool indices by average (ties: older first), always including the baseline (0)."""
    ranked = sorted(range(len(averages)), key=lambda i: averages[i], reverse=True)[:k]
    if 0 not in ranked:
        ranked[-1] = 0
    return list(dict.fromkeys(ranked))


def minibatches(size: int, bsize: int, steps: int, seed: int) -> list[list[int]]:
    """Trainset indices per step: consecutive windows of one seeded shuffle, reshuffled when used up."""
    rng = random.Random(seed)
    order = list(range(size))
    rng.shuffle(order)
    position, out = 0, []
    for _ in range(steps):
        if position + bsize > size:
            rng.shuffle(order)
            position = 0
        out.append(order[position : position + bsize])
        position += bsize
    return out


# -- the two strategies -------------------------------------------------------------------------------
def append_a_demo(program: Module, bucket: Bucket, *, max_demos: int, maxlen: int | None, p10: float) -> str:
    """Add the best trajectory's last step per predictor as a demo, keeping at most ``max_demos`` (oldest go)."""
    good = bucket.best
    if good.score < p10:
        raise StrategySkipped(f"best score {good.score:g} is below the minibatch's 10th percentile {p10:g}")
    if good.score <= p10 and good.score == bucket.worst.score:
        raise StrategySkipped(f"every run scored {good.score:g}, at the 10th percentile: nothing good to copy")
    if good.error is not None:
        raise StrategySkipped(f"the best run raised ({good.error}): its trajectory is incomplete")
    predictors = dict(program.named_predictors())
    demos: dict[str, Example] = {}
    for step in good.trace:
        if step["module"] in predictors:
            inputs = {k: _truncated(v, maxlen) for k, v in step["inputs"].items()}
            demos[step["module"]] = Example({**inputs, **step["outputs"]})
    if not demos:
        raise StrategySkipped("the best trajectory has no predictor steps")
    for name, demo in demos.items():
        predictor = predictors[name]
        predictor.demos = [*predictor.demos, demo][-max_demos:]
    return f"demo for {', '.join(demos)}"


def append_a_rule(
    program: Module,
    bucket: Bucket,
    *,
    advisor: Callable[..., Any],
    program_code: str,
    example: Example,
    p10: float,
    p90: float,
) -> str:
    """Ask ``advisor`` (a Predict of ``OfferFeedback``) for advice per module; append it to the instructions."""
    good, bad = bucket.best, bucket.worst
    if good.score < p10 or bad.score > p90:
        raise StrategySkipped(f"no contrast: best {good.score:g} < p10 {p10:g} or worst {bad.score:g} > p90 {p90:g}")
    better: Rollout | None = good
    worse: Rollout | None = bad
    if good.score <= bad.score:  # every run scored the same: show only the side that says something
        if good.score > p90:
            worse = None
        else:
            better = None
    names = [name for name, _ in program.named_predictors()]
    prediction = advisor(
        program_code=program_code,
        modules_defn=describe_modules(program),
        program_inputs=_json(example.inputs().toDict()),
        oracle_metadata=_json(example.labels().toDict()),
        worse_program_trajectory=_trajectory(worse),
        worse_program_outputs=_json(worse.outputs) if worse is not None else NOT_AVAILABLE,
        worse_reward_value=f"{worse.score:g}" if worse is not None else NOT_AVAILABLE,
        better_program_trajectory=_trajectory(better),
        better_program_outputs=_json(better.outputs) if better is not None else NOT_AVAILABLE,
        better_reward_value=f"{better.score:g}" if better is not None else NOT_AVAILABLE,
        module_names=names,
    )
    advice = {str(k): str(v).strip() for k, v in dict(prediction.module_advice or {}).items() if str(v).strip()}
    if len(names) == 1 and len(advice) == 1 and names[0] not in advice:
        advice = {names[0]: next(iter(advice.values()))}  # one module: the advice can only be meant for it
    applied = []
    for name, predictor in program.named_predictors():
        if name in advice:
            predictor.signature = predictor.signature.with_instructions(
                predictor.signature.instructions + "\n\n" + advice[name]
            )
            applied.append(name)
    if not applied:
        raise StrategySkipped(f"the advice names no module of the program ({sorted(advice)} vs {names})")
    return f"rule for {', '.join(applied)}"


def describe_modules(program: Module) -> str:
    """Each predictor's name, fields and instructions: what the advisor must know to address it."""
    parts = []
    for name, predictor in program.named_predictors():
        signature = predictor.signature
        parts.append(f"Module {name}: {signature.signature}\n  Instructions: {signature.instructions}")
    return "\n".join(parts)


def program_source(program: Module) -> str:
    """The program's class source; a built-in module (e.g. a bare Predict) is described by its structure."""
    cls = type(program)
    if cls.__module__.startswith("promptless."):
        return f"a promptless built-in module: {program!r}"
    try:
        return textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return repr(program)


def _truncated(value: Any, maxlen: int | None) -> Any:
    if maxlen and isinstance(value, str) and len(value) > maxlen:
        return value[:maxlen] + TRUNCATED
    return value


def plain(value: Any) -> Any:
    """JSON data for the checkpoint and the advisor; what cannot be converted becomes its repr."""
    try:
        return to_jsonable(value)
    except TypeError:
        return repr(value)


def _json(value: Any) -> str:
    return json.dumps(plain(value), indent=2, ensure_ascii=False)


def _trajectory(rollout: Rollout | None) -> str:
    if rollout is None:
        return NOT_AVAILABLE
    return _json([{"module_name": s["module"], "inputs": s["inputs"], "outputs": s["outputs"]} for s in rollout.trace])


# -- the optimizer ------------------------------------------------------------------------------------
