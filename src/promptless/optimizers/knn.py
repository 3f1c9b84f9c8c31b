"""KNNFewShot: at call time, the k training examples most similar to the inputs become the demos.

Similarity is BM25 (``bm25s``) over the input fields by default; pass
``embedder=`` (a function from a list of texts to a list of vectors) to use
embeddings and cosine similarity instead. The compiled program keeps its pool
in memory; its saved artifact holds the program's instructions, and a program
rebuilt with ``KNNFewShot(...).compile(...)`` gets the pool back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from promptless.module import Module
from promptless.optimizers import demo_selection as selection
from promptless.optimizers.base import CompileReport, Optimizer, attach_report, check_trainset
from promptless.primitives import Example

Embedder = Callable[[list[str]], Sequence[Sequence[float]]]


def example_text(values: dict[str, Any], keys: Sequence[str]) -> str:
    return "\n".join(f"{key}: {values[key]}" for key in keys if key in values)


class NearestExamples:
    """An index over examples' input text, answering "which k are closest to this query"."""

    def __init__(self, examples: list[Example], keys: Sequence[str], embedder: Embedder | None = None) -> None:
        self.examples, self.keys, self.embedder = examples, list(keys), embedder
        texts = [example_text(ex.toDict(), self.keys) for ex in examples]
        if embedder is None:
            import bm25s

            self._bm25 = bm25s.BM25()
            self._bm25.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
        else:
            import numpy as np

            vectors = np.asarray(embedder(texts), dtype=float)
            self._vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def nearest(self, values: dict[str, Any], k: int) -> list[Example]:
        k = min(k, len(self.examples))
        query = example_text(values, self.keys)
        if self.embedder is None:
            import bm25s

            ids, _ = self._bm25.retrieve(bm25s.tokenize([query], show_progress=False), k=k, show_progress=False)
            return [self.examples[int(i)] for i in ids[0]]
        import numpy as np

        vector = np.asarray(self.embedder([query])[0], dtype=float)
        scores = self._vectors @ (vector / max(float(np.linalg.norm(vector)), 1e-12))
        return [self.examples[int(i)] for i in np.argsort(-scores, kind="stable")[:k]]


class KNNProgram(Module):
    """Runs ``program`` with, for each call, the nearest training examples as every predictor's demos."""

    def __init__(self, program: Module, index: NearestExamples, k: int) -> None:
        self.program = program
        self._index, self._k = index, k

    def forward(self, **inputs: Any) -> Any:
        demos = self._index.nearest(inputs, self._k)
        program = self.program.deepcopy()  # per call, so concurrent calls never share demos
        for predictor in program.predictors():  # interleaved by label, so the nearest label does not run at the end
            predictor.demos = selection.arrange(predictor.signature, demos)
        return program(**inputs)


class KNNFewShot(Optimizer):
    def __init__(self, k: int, trainset: Sequence[Example], *, embedder: Embedder | None = None) -> None:
        if k < 1:
            raise ValueError(f"KNNFewShot(k=) must be >= 1, got {k}")
        self.k = k
        self.trainset = check_trainset(trainset)
        self.embedder = embedder

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example] | None = None,
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
    ) -> Module:
        started = time.perf_counter()
        examples = check_trainset(trainset) if trainset is not None else self.trainset
        keys = sorted(examples[0].input_keys or ())
        index = NearestExamples(examples, keys, self.embedder)
        report = CompileReport("KNNFewShot", notes=[f"k={self.k} nearest of {len(examples)} examples, by {keys}"])
        report.wall_time_s = time.perf_counter() - started
        return attach_report(KNNProgram(student.reset_copy(), index, self.k), report)
