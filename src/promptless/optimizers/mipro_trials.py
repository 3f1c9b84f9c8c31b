"""MIPROv2's trial loop: optuna TPE over (instruction, demo set) per predictor, minibatch or full evaluations.

``MIPROv2`` (mipro.py) resolves the sizes, bootstraps the demo sets and proposes the
instructions; ``run_trials`` here searches them, replaying checkpointed trials into the study.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from promptless.module import Module
from promptless.optimizers.calibration import with_label_choice
from promptless.optimizers.search import BASELINE, SearchRun
from promptless.primitives import Example


@dataclass(frozen=True)
class Shape:
    """The sizes one compile works with, resolved from the settings, the program and the valset."""

    num_candidates: int
    num_trials: int
    minibatch: bool  # False: every trial is a full evaluation
    minibatch_size: int
    full_evals: int  # planned full evaluations besides the baseline (minibatch mode)
    with_demos: bool


@dataclass
class Progress:
    """What the report says about the search; filled as it goes, so a budget stop still reports it."""

    notes: list[str] = field(default_factory=list)
    trial_logs: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    proposals: int = 0
    failed_proposals: int = 0
    duplicates: int = 0
    replayed: int = 0
    instructions: dict[str, list[str]] = field(default_factory=dict)


def run_trials(
    run: SearchRun,
    optuna: Any,
    student: Module,
    instructions: dict[str, list[str]],
    demo_sets: dict[str, list[list[Example]]],
    shape: Shape,
    progress: Progress,
    *,
    seed: int,
    full_eval_every: int,
    decodings: tuple[str, ...] = ("greedy",),
    calibration: list[Example] | None = None,
) -> None:
    """TPE trials with ask/tell; minibatch scores guide, full scores (every few trials) are the candidates."""
    names = list(instructions)
    zero_is_baseline = not any(p.demos for p in student.predictors())  # config 0 is then the student itself
    space = Space(names, instructions, demo_sets, shape.with_demos, zero_is_baseline, decodings, calibration or [])
    distributions = {
        key: optuna.distributions.CategoricalDistribution(list(range(size))) for key, size in space.sizes()
    }
    study = optuna.create_study(direction="maximize", sampler=_sampler(optuna, shape, 0, seed))
    baseline = run.full[BASELINE][0]
    zeros = {key: 0 for key in distributions}
    fully_scored: set[str] = set()
    if zero_is_baseline:  # the study starts knowing the uncompiled program's score, as in DSPy
        study.add_trial(optuna.trial.create_trial(params=zeros, distributions=distributions, value=baseline.mean))
        fully_scored.add(space.name(zeros))
    stored: list[dict[str, Any]] = list(run.recall("trials", []))
    minibatch_means: dict[str, list[float]] = {}
    configs: dict[str, dict[str, int]] = {}
    val_size = len(run.valset)
    for t in range(shape.num_trials):
        if t < len(stored):
            params, value = {k: int(v) for k, v in stored[t]["params"].items()}, float(stored[t]["value"])
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))
            progress.replayed += 1
            if not shape.minibatch:  # registers the full score with the run (from the checkpoint: free)
                _score(run, space, student, params, None, baseline)
        else:
            study.sampler = _sampler(optuna, shape, t + 1, seed)
            trial = study.ask(distributions)
            params = {key: int(trial.params[key]) for key in distributions}
            subset = _minibatch(seed, t, val_size, shape.minibatch_size) if shape.minibatch else None
            value = _score(run, space, student, params, subset, baseline)
            study.tell(trial, value)
            stored.append({"params": params, "value": value})
            run.remember("trials", stored)
        name = space.name(params)
        configs[name] = params
        kind = "minibatch" if shape.minibatch else "full"
        entry: dict[str, Any] = {"trial": t, "params": params, "config": name, "score": value, "kind": kind}
        if shape.minibatch:
            minibatch_means.setdefault(name, []).append(value)
        else:
            fully_scored.add(name)
        last = t + 1 == shape.num_trials
        if shape.minibatch and ((t + 1) % full_eval_every == 0 or last):
            best = _best_unscored(minibatch_means, fully_scored)
            if best is not None:
                scored = _score(run, space, student, configs[best], None, baseline)
                fully_scored.add(best)
                entry["full_eval"] = {"config": best, "score": scored}
        progress.trial_logs.append(entry)


def _score(
    run: SearchRun,
    space: Space,
    student: Module,
    params: dict[str, int],
    subset: list[int] | None,
    baseline: Any,
) -> float:
    """Mean score of one configuration on ``subset`` (None: the full valset, eligible to be chosen)."""
    if subset is None and space.is_baseline(params):
        return float(baseline.mean)  # the uncompiled program itself: already scored as the baseline
    return float(run.score(space.name(params), space.build(student, params), subset=subset).mean)


def _sampler(optuna: Any, shape: Shape, trial: int, seed: int) -> Any:
    """A TPE sampler for one ask, seeded by the seed and the trial number (see the module docstring).

    TPE's random start-up is a third of the trials (at most 10, optuna's default), so TPE
    guides most trials of a light run.
    """
    startup = max(2, min(10, shape.num_trials // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed * 10_007 + trial, multivariate=True, n_startup_trials=startup)


class Space:
    """The search space: parameter names and sizes, candidate names, and the program for a configuration."""

    def __init__(
        self,
        names: list[str],
        instructions: dict[str, list[str]],
        demo_sets: dict[str, list[list[Example]]],
        with_demos: bool,
        zero_is_baseline: bool,
        decodings: tuple[str, ...] = ("greedy",),
        calibration: list[Example] | None = None,
    ) -> None:
        self.names, self.instructions, self.demo_sets = names, instructions, demo_sets
        self.with_demos, self.zero_is_baseline = with_demos, zero_is_baseline
        self.decodings, self.calibration = decodings, list(calibration or [])

    def is_baseline(self, params: dict[str, int]) -> bool:
        return self.zero_is_baseline and not any(params.values())

    def sizes(self) -> Iterator[tuple[str, int]]:
        for i, name in enumerate(self.names):
            yield f"{i}_predictor_instruction", len(self.instructions[name])
            if self.with_demos:
                yield f"{i}_predictor_demos", len(self.demo_sets[name])
        if len(self.decodings) > 1:
            yield "decoding", len(self.decodings)

    def indices(self, params: dict[str, int]) -> tuple[list[int], list[int]]:
        instr = [params[f"{i}_predictor_instruction"] for i in range(len(self.names))]
        demos = [params.get(f"{i}_predictor_demos", 0) for i in range(len(self.names))]
        return instr, demos

    def name(self, params: dict[str, int]) -> str:
        """E.g. ``instr=[2,0] demos=[1,3]``: indices into content fixed for this compile (and its checkpoint)."""
        instr, demos = self.indices(params)
        name = f"instr=[{','.join(map(str, instr))}] demos=[{','.join(map(str, demos))}]"
        decoding = self.decodings[params.get("decoding", 0)]
        return name if decoding == "greedy" else f"{name} {decoding}"

    def build(self, student: Module, params: dict[str, int]) -> Module:
        instr, demos = self.indices(params)
        program = student.deepcopy()
        for i, (name, predictor) in enumerate(program.named_predictors()):
            predictor.signature = predictor.signature.with_instructions(self.instructions[name][instr[i]])
            predictor.demos = list(self.demo_sets[name][demos[i]])  # shared Examples: the adapter memo reuses them
        decoding = self.decodings[params.get("decoding", 0)]
        if decoding != "greedy":  # the label chosen by likelihood; calibrated on the trainset's inputs
            program = with_label_choice(program, decoding, self.calibration, limit=16)  # type: ignore[arg-type]
        return program


def _minibatch(seed: int, trial: int, size: int, k: int) -> list[int]:
    """Trial ``trial``'s minibatch: ``k`` valset indices, seeded, independent of the trials before it."""
    return sorted(random.Random(seed * 1_000_003 + trial).sample(range(size), k))


def _best_unscored(means: dict[str, list[float]], fully_scored: set[str]) -> str | None:
    """The configuration with the best mean minibatch score that has no full score yet (ties: seen first)."""
    best: tuple[float, str] | None = None
    for name, values in means.items():
        mean = sum(values) / len(values)
        if name not in fully_scored and (best is None or mean > best[0]):
            best = (mean, name)
    return best[1] if best is not None else None
