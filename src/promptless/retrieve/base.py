"""Passage, the Retriever base class, and the errors every retriever raises.

A retriever is a device, like an LM: copies of a program share it (``deepcopy``
returns it unchanged), and it holds no learned state, so saving a program never
touches it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from promptless.errors import LMUnavailable, RetrievalError


class RetrieverUnavailable(RetrievalError, LMUnavailable):
    """A remote retriever could not be reached (refused, timed out, 5xx) after its retries.

    It is also an ``LMUnavailable`` so evaluation and optimizers stop at once
    instead of scoring every remaining example as a failure.
    """


@dataclass(frozen=True)
class Passage:
    """One retrieved passage. ``str(passage)`` is what a prompt sees: ``"title | text"`` when titled."""

    text: str
    title: str | None = None
    id: str | int | None = None
    score: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.title} | {self.text}" if self.title else self.text

    @property
    def long_text(self) -> str:
        """DSPy's name for the passage as a prompt shows it."""
        return str(self)

    @property
    def key(self) -> str | int:
        """What makes two hits the same passage when merging results of several queries."""
        return self.id if self.id is not None else str(self)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        for name in ("title", "id", "score"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


def to_passages(
    corpus: Iterable[str | Mapping[str, Any] | Passage],
    *,
    text_field: str = "text",
    title_field: str = "title",
    id_field: str = "id",
) -> list[Passage]:
    """A corpus of strings, dicts (with a text field, optional title and id) or Passages, as Passages.

    Strings get their position as id, so results of several queries can be merged.
    """
    passages = []
    for i, item in enumerate(corpus):
        if isinstance(item, Passage):
            passages.append(item if item.id is not None else replace(item, id=i))
        elif isinstance(item, str):
            passages.append(Passage(text=item, id=i))
        elif isinstance(item, Mapping):
            text = item.get(text_field)
            if not isinstance(text, str):
                raise TypeError(f"corpus[{i}] has no string field {text_field!r}; it has {sorted(item)}")
            title = item.get(title_field)
            passages.append(Passage(text=text, title=None if title is None else str(title), id=item.get(id_field, i)))
        else:
            raise TypeError(f"corpus[{i}] is a {type(item).__name__}; expected a string, a dict or a Passage")
    return passages


def as_passage(hit: Any) -> Passage:
    """Whatever a retriever returned for one hit (a Passage, a string, a dict with text), as a Passage."""
    if isinstance(hit, Passage):
        return hit
    if isinstance(hit, str):
        return Passage(text=hit)
    if isinstance(hit, Mapping):
        text = hit.get("long_text", hit.get("text"))
        if isinstance(text, str):
            score = hit.get("score")
            return Passage(
                text=text,
                id=hit.get("id", hit.get("pid")),
                score=float(score) if isinstance(score, (int, float)) else None,
            )
    raise TypeError(f"a retriever returned {hit!r}; expected a Passage, a string or a dict with 'text'")


def fuse(results: Sequence[Sequence[Passage]], k: int) -> list[Passage]:
    """Merge the hits of several queries: scores of a passage found more than once add up; best k first.

    Hits without a score count by rank (1/rank), so retrievers that give none still merge sensibly.
    """
    if len(results) == 1:
        return list(results[0][:k])
    totals: dict[str | int, float] = {}
    first: dict[str | int, Passage] = {}
    for hits in results:
        for rank, hit in enumerate(hits, start=1):
            first.setdefault(hit.key, hit)
            totals[hit.key] = totals.get(hit.key, 0.0) + (hit.score if hit.score is not None else 1.0 / rank)
    order = sorted(totals, key=lambda key: -totals[key])  # stable: ties keep first-seen order
    return [replace(first[key], score=totals[key]) for key in order[:k]]


class Retriever(ABC):
    """Subclasses implement ``search`` (one query); ``search_many`` may batch.

    Calling a retriever with one query or a list of queries returns at most ``k``
    Passages, best first; with several queries their hits are merged (``fuse``).
    """

    @abstractmethod
    def search(self, query: str, k: int) -> list[Passage]: ...

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        return [self.search(query, k) for query in queries]

    def __call__(self, query: str | Sequence[str], k: int = 3) -> list[Passage]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = [query] if isinstance(query, str) else [q for q in query if q]
        if not queries:
            return []
        return fuse(self.search_many(queries, k), k)

    def __deepcopy__(self, memo: dict) -> Retriever:
        return self  # a device shared by copies of a program, like an LM
