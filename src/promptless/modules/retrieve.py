"""Retrieve: fetch passages for a query from a retriever; the one module that reads ``settings.rm``.

It holds no learned state (no predictors), so it never appears in a saved
program, and copies of a program share its retriever.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from promptless.module import Module
from promptless.primitives import Example, Prediction
from promptless.retrieve.base import Passage, RetrievalError, Retriever, as_passage, fuse
from promptless.settings import current

NO_RETRIEVER = (
    "Retrieve has no retriever: pass one, Retrieve(k=3, rm=BM25Retriever(corpus)), "
    "or set it for the program, promptless.configure(rm=BM25Retriever(corpus))"
)


class Retrieved(Prediction):
    """``passages`` as strings (DSPy's shape); ``retrieved`` keeps the Passages with titles, ids and scores."""

    def __init__(self, base: Example | dict[str, Any] | None = None, **values: Any) -> None:
        super().__init__(base, **values)
        self._retrieved: list[Passage] = list(base._retrieved) if isinstance(base, Retrieved) else []

    @property
    def retrieved(self) -> list[Passage]:
        return self._retrieved


class Retrieve(Module):
    """``Retrieve(k=3)(query).passages``: the top ``k`` passages from ``rm``, else from ``settings.rm``.

    ``rm`` is a ``Retriever``, or any callable ``(query, k)`` returning strings,
    dicts with ``text`` or Passages (a DSPy retriever works). Several queries at
    once are merged: a passage found by more than one adds up its scores.
    """

    def __init__(self, k: int = 3, rm: Retriever | Callable[..., Any] | None = None) -> None:
        if k < 1:
            raise ValueError(f"Retrieve(k=) must be >= 1, got {k}")
        self.k = k
        self.rm = rm

    def forward(self, query_or_queries: str | Sequence[str], k: int | None = None) -> Retrieved:
        k = k or self.k
        rm = self.rm if self.rm is not None else current().rm
        if rm is None:
            raise RetrievalError(NO_RETRIEVER)
        queries = [query_or_queries] if isinstance(query_or_queries, str) else list(query_or_queries)
        queries = [q for q in queries if isinstance(q, str) and q.strip()]
        if not queries:
            hits: list[Passage] = []
        elif isinstance(rm, Retriever):
            hits = rm(queries, k=k)
        else:
            hits = fuse([[as_passage(hit) for hit in rm(query, k=k)][:k] for query in queries], k)
        prediction = Retrieved(passages=[str(hit) for hit in hits])
        prediction._retrieved = hits
        return prediction

    def __deepcopy__(self, memo: dict) -> Retrieve:
        clone = copy.copy(self)  # the retriever is a shared device, as an LM is
        memo[id(self)] = clone
        return clone

    def __repr__(self) -> str:
        return f"Retrieve(k={self.k}, rm={self.rm!r})"
