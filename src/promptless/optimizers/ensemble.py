"""Ensemble: run several programs and reduce their answers, by default to the majority answer."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from promptless.evaluate.metrics import normalize_text
from promptless.module import Module
from promptless.primitives import Completions, Prediction


def majority(
    predictions: Prediction | Completions | Sequence[Any],
    *,
    normalize: Callable[[str], str] | None = normalize_text,
    field: str | None = None,
) -> Prediction:
    """The prediction whose ``field`` (default: the last output field) is most common; ties go to the first seen."""
    if isinstance(predictions, Prediction):
        predictions = predictions.completions
    items = [p if isinstance(p, Prediction) else Prediction(dict(p)) for p in predictions]
    if not items:
        raise ValueError("majority() needs at least one prediction")
    field = field or list(items[0].keys())[-1]

    def key(p: Prediction) -> Any:
        value = p.get(field)
        return normalize(str(value)) if normalize is not None else repr(value)

    counts = Counter(key(p) for p in items)
    best = max(counts.values())
    winner = next(p for p in items if counts[key(p)] == best)
    return Prediction.from_completions([winner.toDict(), *(p.toDict() for p in items if p is not winner)])


class EnsembleProgram(Module):
    def __init__(
        self, programs: list[Module], reduce_fn: Callable[[list[Any]], Any] | None, size: int | None, seed: int
    ):
        self.programs = programs
        self._reduce_fn, self._size, self._seed, self._rng = reduce_fn, size, seed, random.Random(seed)

    def rebuild_parts(self) -> tuple[Callable[..., Module], list[Module], dict[str, Any]]:
        """How another process rebuilds this shape: ``build(fresh members, **settings)``, then ``load_state``.

        A Ray worker cannot call ``EnsembleProgram()`` without its members, so it builds each
        member as it would build that program alone and passes them here.
        """
        return EnsembleProgram, self.programs, {"reduce_fn": self._reduce_fn, "size": self._size, "seed": self._seed}

    def forward(self, **inputs: Any) -> Any:
        chosen = self._rng.sample(self.programs, self._size) if self._size else self.programs
        outputs = [program(**inputs) for program in chosen]
        return self._reduce_fn(outputs) if self._reduce_fn else outputs


class Ensemble:
    """``Ensemble(reduce_fn=majority).compile([program_a, program_b, ...])``."""

    def __init__(
        self, *, reduce_fn: Callable[[list[Any]], Any] | None = majority, size: int | None = None, seed: int = 0
    ) -> None:
        self.reduce_fn, self.size, self.seed = reduce_fn, size, seed

    def compile(self, programs: Sequence[Module]) -> Module:
        programs = list(programs)
        if not programs:
            raise ValueError("Ensemble.compile() needs at least one program")
        if self.size is not None and not 1 <= self.size <= len(programs):
            raise ValueError(f"Ensemble(size={self.size}) must be between 1 and the {len(programs)} programs given")
        return EnsembleProgram([p.deepcopy() for p in programs], self.reduce_fn, self.size, self.seed)
