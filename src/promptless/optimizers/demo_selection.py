"""Which demos a predictor gets, and in what order, so that the demos do not teach a bias.

DSPy takes the first passing traces in trainset order and labelled examples at random. On a
small model that is a bias lesson: when the first four passing SST-2 traces were all
"positive", SmolLM2-135M answered "positive" to everything. Here, for a predictor whose
output has a finite set of values, demos are chosen round-robin over the labels (every label
as often as the pool allows) and ordered so that consecutive demos differ in label and the
prompt does not end on a run of one label; for free-text outputs, demos are chosen to differ
from each other (farthest-first by word overlap of their inputs) instead of by position.
``demo_selection="first"`` on the optimizers restores DSPy's choice.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from promptless.fieldtypes import literal_values
from promptless.signature import Signature

DemoSelection = Literal["balanced", "first"]
SELECTIONS: tuple[DemoSelection, ...] = ("balanced", "first")
_WORD = re.compile(r"\w+")


def finite_outputs(signature: Signature) -> list[str]:
    """The output fields with a finite set of values (Literal, Enum, bool)."""
    return [
        name
        for name, field in signature.output_fields.items()
        if field.annotation is bool or literal_values(field.annotation) is not None
    ]


def label_of(signature: Signature, demo: Mapping[str, Any]) -> str | None:
    """The demo's label for this signature (its finite outputs' values), or None when it has none."""
    names = finite_outputs(signature)
    if not names or not all(n in demo for n in names):
        return None
    return "|".join(repr(getattr(demo[n], "value", demo[n])) for n in names)


def balanced(demos: Sequence[Any], labels: Sequence[str], k: int, rng: random.Random) -> list[Any]:
    """Up to ``k`` demos, round-robin over the labels (in a seeded order), each label's demos in pool order.

    The result is already interleaved: label A, B, C, A, B, C... so no label dominates the end.
    """
    groups: dict[str, list[Any]] = {}
    for demo, label in zip(demos, labels, strict=True):
        groups.setdefault(label, []).append(demo)
    order = list(groups)
    rng.shuffle(order)
    chosen: list[Any] = []
    while len(chosen) < k and any(groups.values()):
        for label in order:
            if groups[label] and len(chosen) < k:
                chosen.append(groups[label].pop(0))
    return chosen


def interleave(demos: Sequence[Any], labels: Sequence[str | None]) -> list[Any]:
    """The same demos reordered so runs of one label are as short as possible (stable within a label)."""
    groups: dict[str | None, list[Any]] = {}
    for demo, label in zip(demos, labels, strict=True):
        groups.setdefault(label, []).append(demo)
    out: list[Any] = []
    previous: object = object()
    while any(groups.values()):
        candidates = [label for label, items in groups.items() if items and label != previous]
        if not candidates:  # only the previous label has demos left
            candidates = [label for label, items in groups.items() if items]
        label = max(candidates, key=lambda lab: len(groups[lab]))  # the largest group first keeps runs short
        out.append(groups[label].pop(0))
        previous = label
    return out


def _words(signature: Signature, demo: Mapping[str, Any]) -> frozenset[str]:
    text = " ".join(str(demo.get(n, "")) for n in signature.input_fields)
    return frozenset(w.lower() for w in _WORD.findall(text))


def diverse(signature: Signature, demos: Sequence[Any], k: int, rng: random.Random) -> list[Any]:
    """Up to ``k`` demos that differ from each other: farthest-first by Jaccard distance of their input words."""
    if len(demos) <= k:
        return list(demos)
    words = [_words(signature, d) for d in demos]
    chosen = [rng.randrange(len(demos))]
    nearest = [_distance(words[i], words[chosen[0]]) for i in range(len(demos))]
    while len(chosen) < k:
        best = max((i for i in range(len(demos)) if i not in chosen), key=lambda i: (nearest[i], -i))
        chosen.append(best)
        nearest = [min(nearest[i], _distance(words[i], words[best])) for i in range(len(demos))]
    return [demos[i] for i in chosen]


def _distance(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return 1.0 - len(a & b) / union if union else 0.0


def select(signature: Signature, pool: Sequence[Any], k: int, rng: random.Random) -> list[Any]:
    """``k`` demos from ``pool`` for a predictor with this signature: balanced over labels, or diverse."""
    if k <= 0 or not pool:
        return []
    labels = [label_of(signature, d) for d in pool]
    if all(label is not None for label in labels):
        return balanced(pool, labels, k, rng)  # type: ignore[arg-type]
    return diverse(signature, pool, k, rng)


def arrange(signature: Signature, demos: Sequence[Any]) -> list[Any]:
    """Demos in prompt order: interleaved by label when they have labels, else as given."""
    labels = [label_of(signature, d) for d in demos]
    return interleave(demos, labels) if any(label is not None for label in labels) else list(demos)


def labels_covered(signature: Signature, demos: Sequence[Any]) -> int:
    """How many distinct labels ``demos`` show (0 for a free-text predictor)."""
    return len({label for d in demos if (label := label_of(signature, d)) is not None})


def label_count(signature: Signature) -> int:
    """How many labels the signature's finite outputs allow (0 when it has none; capped for products)."""
    total = 0
    for name in finite_outputs(signature):
        annotation = signature.output_fields[name].annotation
        n = 2 if annotation is bool else len(literal_values(annotation) or ())
        total = n if total == 0 else min(total * n, 10_000)
    return total
