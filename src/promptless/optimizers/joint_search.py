"""The joint search space: how many demos, which demos, and how the label is decoded, searched together.

A small model's best prompt is rarely "4 bootstrapped + 16 labelled, greedy": sometimes no
demos and a calibrated choice win, sometimes 8 balanced demos. So a candidate is a point
(number of demos, demo set seed, decoding mode); candidates are sampled without repetition,
scored first on a seeded minibatch of the valset, and only the best few (the finalists)
on the whole valset, which keeps a 100-200 example valset affordable on the embedded
model. The majority vote of the finalists is one more candidate. The honest selection of
``SearchRun`` then chooses among the fully scored candidates and the baseline.

Demo sets come from one pool: the teacher runs over the trainset once (balanced, as
BootstrapFewShot does), and each candidate draws its k demos from the passing traces and
the labelled examples with its own seed, balanced and interleaved by label.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptless.module import Module
from promptless.optimizers import demo_selection as selection
from promptless.optimizers.calibration import choosable, with_label_choice
from promptless.optimizers.ensemble import Ensemble
from promptless.primitives import Example

DEMO_COUNTS = (0, 2, 4, 8, 16)
DECODINGS = ("greedy", "calibrated")


@dataclass(frozen=True)
class Point:
    """One candidate of the joint space."""

    demos: int
    seed: int
    decoding: str

    @property
    def name(self) -> str:
        return f"{self.demos} demos seed={self.seed} {self.decoding}"


def sample_points(rng: random.Random, count: int, demo_counts: Sequence[int], decodings: Sequence[str]) -> list[Point]:
    """``count`` distinct points, never the baseline itself (no demos, greedy); zero-demo points get seed 0."""
    points: list[Point] = []
    seen: set[Point] = set()
    space = [(k, d) for k in demo_counts for d in decodings if (k, d) != (0, "greedy")]
    if not space:
        return []
    attempts = 0
    while len(points) < count and attempts < 50 * count:
        attempts += 1
        if len(points) < len(space):  # every (count, decoding) pair once before any repeats
            k, decoding = space[len(points)]
        else:
            k, decoding = rng.choice(space)
        point = Point(k, 0 if k == 0 else rng.randrange(10_000), decoding)
        if point not in seen:
            seen.add(point)
            points.append(point)
    rng.shuffle(points)
    return points


def minibatch_indices(size: int, minibatch: int, seed: int) -> list[int] | None:
    """A seeded sample of valset indices, or None when the minibatch would be the whole valset."""
    if minibatch <= 0 or minibatch >= size:
        return None
    return sorted(random.Random(seed).sample(range(size), minibatch))


def build(
    student: Module,
    point: Point,
    pools: dict[str, list[Example]],
    train: list[Example],
    *,
    calibration_size: int,
    num_threads: int | None,
) -> Module:
    """The program for one point: k demos per predictor drawn from its pool, then the decoding mode."""
    program = student.reset_copy()
    rng = random.Random(point.seed)
    for name, predictor in program.named_predictors():
        pool = list(pools.get(name, []))
        rng.shuffle(pool)
        predictor.demos = selection.arrange(
            predictor.signature, selection.select(predictor.signature, pool, point.demos, rng)
        )
    if point.decoding == "greedy" or not choosable(program):
        return program
    return with_label_choice(program, point.decoding, train, limit=calibration_size, num_threads=num_threads)  # type: ignore[arg-type]


def demo_pools(program: Module, passed: dict[int, Any], train: list[Example]) -> dict[str, list[Example]]:
    """Per predictor: the demos of the passing traces (trainset order), then the labelled examples not among them."""
    pools: dict[str, list[Example]] = {}
    for name, predictor in program.named_predictors():
        traced = [demo for i in sorted(passed) for demo in passed[i].demos.get(name, [])]
        outputs = set(predictor.signature.output_fields)
        labelled = [ex for i, ex in enumerate(train) if i not in passed and outputs <= set(ex.keys())]
        pools[name] = traced + labelled
    return pools


def ensemble_of(programs: Sequence[Module]) -> Module:
    """The majority vote of ``programs`` (a candidate like any other)."""
    return Ensemble().compile(list(programs))


def decoding_notes(program: Module) -> list[str]:
    """What the chosen program's label choice is, per predictor that has one (for the report)."""
    notes = []
    for name, predictor in program.named_predictors():
        choice = predictor.choice
        if choice is None:
            continue
        if choice.mode == "calibrated" and choice.prior:
            prior = ", ".join(f"{label} {math.exp(lp):.2f}" for label, lp in sorted(choice.prior.items()))
            notes.append(
                f"{name}: label chosen by calibrated likelihood; the model's prior, divided out, was {prior} "
                f"(measured on {choice.calibrated_on} inputs)"
            )
        else:
            notes.append(f"{name}: label chosen by {choice.mode}")
    return notes
