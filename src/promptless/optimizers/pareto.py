"""The candidate pool's arithmetic for GEPA: per-example Pareto fronts, parent sampling, and merges.

Pure functions over plain data (per-example score lists, parent lists, instruction
dicts) and a caller-owned ``random.Random``, so the search in ``reflective_loop.py``
stays deterministic for a seed and every rule here is unit-testable on its own.

Candidates are numbered by their position in the pool; candidate 0 is the student.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Scores = Sequence[Sequence[float]]  # scores[candidate][example]


def best_per_example(scores: Scores) -> list[set[int]]:
    """For each example, the candidates with its highest score; ties (also at zero) keep them all."""
    if not scores:
        return []
    fronts: list[set[int]] = []
    for example in range(len(scores[0])):
        top = max(row[example] for row in scores)
        fronts.append({k for k, row in enumerate(scores) if row[example] == top})
    return fronts


def mean(row: Sequence[float]) -> float:
    return sum(row) / len(row) if row else 0.0


def remove_dominated(fronts: list[set[int]], scores: Scores) -> list[set[int]]:
    """Drop candidates whose every best-on example is also won by another surviving candidate.

    As in GEPA, the weakest (lowest mean) is tested first, so of two candidates
    with identical per-example scores the older one survives (the newer is
    tested first). Every example keeps at least one candidate.
    """
    members = sorted({k for front in fronts for k in front}, key=lambda k: (mean(scores[k]), -k))
    dominated: set[int] = set()
    changed = True
    while changed:
        changed = False
        for k in members:
            if k in dominated:
                continue
            others = set(members) - dominated - {k}
            if all(front & others for front in fronts if k in front):
                dominated.add(k)
                changed = True
                break
    return [front - dominated for front in fronts]


def pareto_members(scores: Scores) -> list[int]:
    """The non-dominated candidates, by number."""
    return sorted({k for front in remove_dominated(best_per_example(scores), scores) for k in front})


def win_counts(scores: Scores) -> dict[int, int]:
    """How many examples each non-dominated candidate is best on: its weight when a parent is sampled."""
    counts: dict[int, int] = {}
    for front in remove_dominated(best_per_example(scores), scores):
        for k in front:
            counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items()))


def select_from_front(scores: Scores, rng: random.Random) -> int:
    """A parent drawn from the Pareto front, with probability proportional to its example wins."""
    counts = win_counts(scores)
    if not counts:
        return best_by_mean(scores)
    population = [k for k, n in counts.items() for _ in range(n)]
    return rng.choice(population)


def best_by_mean(scores: Scores) -> int:
    """The candidate with the highest mean score (the oldest on ties)."""
    return max(range(len(scores)), key=lambda k: (mean(scores[k]), -k))


# -- merges ------------------------------------------------------------------------------------------
def ancestors(parents: Sequence[Sequence[int]], k: int) -> set[int]:
    """Every candidate that ``k`` descends from (not ``k`` itself)."""
    found: set[int] = set()
    todo = list(parents[k])
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(parents[p])
    return found


def has_complementary_change(ancestor: dict[str, str], a: dict[str, str], b: dict[str, str]) -> bool:
    """Some predictor was changed by exactly one of ``a`` and ``b``: a merge can take that change."""
    return any((ancestor[n] == a[n] or ancestor[n] == b[n]) and a[n] != b[n] for n in ancestor)


def compose(
    ancestor: dict[str, str], a: dict[str, str], b: dict[str, str], prefer_a: bool
) -> tuple[dict[str, str], tuple[str, ...]]:
    """GEPA's merge: per predictor, the instruction from whichever descendant changed it.

    Changed by both (differently): the one from the better descendant (``prefer_a``).
    Returns the merged instructions and, per predictor, which side it came from.
    """
    merged: dict[str, str] = {}
    sources: list[str] = []
    for name in ancestor:
        if a[name] == b[name]:
            merged[name], source = a[name], "a"
        elif ancestor[name] == a[name]:
            merged[name], source = b[name], "b"
        elif ancestor[name] == b[name]:
            merged[name], source = a[name], "a"
        else:
            merged[name], source = (a[name], "a") if prefer_a else (b[name], "b")
        sources.append(source)
    return merged, tuple(sources)


@dataclass(frozen=True)
class MergePlan:
    """Two candidates to merge through their common ancestor, and the instructions that result."""

    a: int
    b: int
    ancestor: int
    instructions: dict[str, str]
    sources: tuple[str, ...]


def find_merge(
    members: Sequence[int],
    parents: Sequence[Sequence[int]],
    instructions: Sequence[dict[str, str]],
    scores: Scores,
    tried: set[tuple[int, int, int]],
    rng: random.Random,
    attempts: int = 10,
) -> MergePlan | None:
    """A pair of front ``members`` with a common ancestor they both beat and complementary changes.

    Neither may descend from the other; a triple in ``tried`` is not proposed again.
    The ancestor is drawn weighted by its mean score, as in GEPA.
    """
    if len(members) < 2 or len(parents) < 3:
        return None
    means = [mean(row) for row in scores]
    for _ in range(attempts):
        a, b = sorted(rng.sample(list(members), 2))
        up_a, up_b = ancestors(parents, a), ancestors(parents, b)
        if a in up_b or b in up_a:
            continue
        common = [
            c
            for c in sorted(up_a & up_b)
            if (a, b, c) not in tried
            and means[c] <= min(means[a], means[b])
            and has_complementary_change(instructions[c], instructions[a], instructions[b])
        ]
        if not common:
            continue
        weights = [means[c] for c in common]
        ancestor = rng.choices(common, weights=weights)[0] if sum(weights) > 0 else rng.choice(common)
        prefer_a = means[a] > means[b] or (means[a] == means[b] and rng.random() < 0.5)
        merged, sources = compose(instructions[ancestor], instructions[a], instructions[b], prefer_a)
        return MergePlan(a, b, ancestor, merged, sources)
    return None


def merge_subsample(scores_a: Sequence[float], scores_b: Sequence[float], size: int, rng: random.Random) -> list[int]:
    """Valset indices to screen a merge on: some where ``a`` wins, some where ``b`` wins, some ties (GEPA)."""
    n = len(scores_a)
    size = min(size, n)
    a_wins = [i for i in range(n) if scores_a[i] > scores_b[i]]
    b_wins = [i for i in range(n) if scores_b[i] > scores_a[i]]
    ties = [i for i in range(n) if scores_a[i] == scores_b[i]]
    each = max(1, math.ceil(size / 3))
    chosen: list[int] = []
    for bucket in (a_wins, b_wins, ties):
        take = min(len(bucket), each, size - len(chosen))
        if take > 0:
            chosen += rng.sample(bucket, take)
    rest = [i for i in range(n) if i not in chosen]
    chosen += rng.sample(rest, size - len(chosen))
    return sorted(chosen)
