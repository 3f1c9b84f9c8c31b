"""EmbeddingsRetriever: cosine similarity between a query's vector and the corpus's, embedded once.

The embedder is any function from a list of texts to their vectors (a sentence
transformer's ``encode``, an embeddings API, a toy function in tests). numpy is
used when installed; without it the same ranking is computed in pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from promptless.retrieve.base import Passage, RetrievalError, Retriever, to_passages

Embedder = Callable[[list[str]], Any]  # list of texts -> array-like of shape (len(texts), dim)


class EmbeddingsRetriever(Retriever):
    """Nearest passages by cosine similarity; the corpus is embedded once, ``batch_size`` texts per call."""

    def __init__(
        self,
        corpus: Iterable[str | Mapping[str, Any] | Passage],
        embedder: Embedder,
        *,
        batch_size: int = 64,
        text_field: str = "text",
        title_field: str = "title",
        id_field: str = "id",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.passages = to_passages(corpus, text_field=text_field, title_field=title_field, id_field=id_field)
        if not self.passages:
            raise ValueError("EmbeddingsRetriever needs a non-empty corpus")
        self.embedder, self.batch_size = embedder, batch_size
        self.dim: int | None = None
        texts = [str(p) for p in self.passages]
        rows: list[Sequence[float]] = []
        for start in range(0, len(texts), batch_size):
            rows.extend(self._embed(texts[start : start + batch_size]))
        self._matrix = _Matrix(rows)

    def _embed(self, texts: list[str]) -> list[Sequence[float]]:
        """Call the embedder and check what came back: one vector per text, all of the corpus's length."""
        vectors = list(self.embedder(texts))
        if len(vectors) != len(texts):
            raise RetrievalError(f"the embedder returned {len(vectors)} vectors for {len(texts)} texts")
        dims = {len(v) for v in vectors} | ({self.dim} if self.dim is not None else set())
        if len(dims) != 1 or 0 in dims:
            raise RetrievalError(f"the embedder returned vectors of differing or zero length: {sorted(dims)}")
        self.dim = dims.pop()
        return vectors

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        vectors: list[list[float]] = []
        for start in range(0, len(queries), self.batch_size):
            vectors.extend(self._embed(list(queries[start : start + self.batch_size])))
        return [
            [_scored(self.passages[i], score) for i, score in self._matrix.top(vector, min(k, len(self.passages)))]
            for vector in vectors
        ]

    def __len__(self) -> int:
        return len(self.passages)

    def __repr__(self) -> str:
        return f"EmbeddingsRetriever({len(self.passages)} passages, dim={self.dim})"


def _scored(passage: Passage, score: float) -> Passage:
    return Passage(passage.text, passage.title, passage.id, score, passage.metadata)


class _Matrix:
    """Unit-length corpus vectors; ``top(vector, k)`` ranks them by cosine similarity, ties by position."""

    def __init__(self, rows: list[Sequence[float]]) -> None:
        try:
            import numpy as np
        except ImportError:
            self._np = None
            self._rows = [_unit([float(x) for x in row]) for row in rows]
        else:
            self._np = np
            matrix = np.stack([np.asarray(row, dtype=float) for row in rows])
            self._rows = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def top(self, vector: Sequence[float], k: int) -> list[tuple[int, float]]:
        if self._np is None:
            query = _unit([float(x) for x in vector])
            scores = [sum(a * b for a, b in zip(row, query, strict=True)) for row in self._rows]
            order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
            return [(i, scores[i]) for i in order]
        np = self._np
        query = np.asarray(vector, dtype=float)
        scores = self._rows @ (query / max(float(np.linalg.norm(query)), 1e-12))
        return [(int(i), float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k]]


def _unit(vector: list[float]) -> list[float]:
    norm = max(math.sqrt(sum(x * x for x in vector)), 1e-12)
    return [x / norm for x in vector]
