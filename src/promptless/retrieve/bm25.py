"""BM25Retriever: lexical search over an in-memory corpus with ``bm25s``, saved to and loaded from a directory.

The directory holds bm25s's own index files (numpy arrays without pickle, a JSON
vocabulary) plus ``retriever.json``: the passages and the tokenisation settings.
``retriever.json`` is written last and the directory is swapped into place whole,
so a crash mid-save never leaves an index that loads wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptless.retrieve.base import Passage, RetrievalError, Retriever, to_passages

MANIFEST = "retriever.json"
FORMAT = "promptless.bm25"
VERSION = 1


def _stemmer(stem: bool | None) -> Any:
    """PyStemmer's English stemmer if installed (``stem=None``) or required (``stem=True``); never a dependency."""
    if stem is False:
        return None
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        if stem:
            raise ImportError("BM25Retriever(stem=True) needs PyStemmer: pip install PyStemmer") from None
        return None
    return Stemmer.Stemmer("english")


class BM25Retriever(Retriever):
    """BM25 over ``corpus``: strings, or dicts with a text field and optional title and id.

    Titles are indexed with the text (``"title | text"``), as a prompt sees them.
    English stopwords are dropped; words are stemmed when PyStemmer is installed
    (``stem=None``), always (``True``, needs it) or never (``False``).
    """

    def __init__(
        self,
        corpus: Iterable[str | Mapping[str, Any] | Passage],
        *,
        text_field: str = "text",
        title_field: str = "title",
        id_field: str = "id",
        stopwords: str | list[str] = "en",
        stem: bool | None = None,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> None:
        import bm25s

        self.passages = to_passages(corpus, text_field=text_field, title_field=title_field, id_field=id_field)
        if not self.passages:
            raise ValueError("BM25Retriever needs a non-empty corpus")
        self.stopwords = stopwords
        self._stemmer = _stemmer(stem)
        self.stem = self._stemmer is not None
        self._index = bm25s.BM25(k1=k1, b=b)
        tokens = bm25s.tokenize(
            [str(p) for p in self.passages], stopwords=stopwords, stemmer=self._stemmer, show_progress=False
        )
        self._index.index(tokens, show_progress=False)

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        import bm25s

        tokens = bm25s.tokenize(
            list(queries), stopwords=self.stopwords, stemmer=self._stemmer, return_ids=False, show_progress=False
        )
        ids, scores = self._index.retrieve(tokens, k=min(k, len(self.passages)), show_progress=False)
        return [
            [_scored(self.passages[int(i)], float(s)) for i, s in zip(row_ids, row_scores, strict=True)]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.passages)

    # -- disk ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index and its passages to the directory ``path`` (replaced whole if it holds an index)."""
        path = Path(path)
        if path.exists() and not (path / MANIFEST).is_file() and (not path.is_dir() or any(path.iterdir())):
            raise RetrievalError(f"{path}: exists and is not a saved BM25 index; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            self._index.save(staging, show_progress=False)
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "stopwords": self.stopwords,
                "stem": self.stem,
                "passages": [_unscored(p) for p in self.passages],
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
            _swap_into_place(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BM25Retriever:
        """Read an index written by ``save``; a missing or damaged directory raises RetrievalError naming it."""
        import bm25s

        path = Path(path)
        if not path.is_dir():
            raise RetrievalError(f"{path}: no saved BM25 index here (not a directory)")
        manifest = _read_manifest(path)
        try:
            passages = [Passage(**p) for p in manifest["passages"]]
            stopwords, stem = manifest["stopwords"], manifest["stem"]
        except (KeyError, TypeError) as error:
            raise RetrievalError(f"{path}/{MANIFEST}: damaged ({error!r})") from None
        try:
            index = bm25s.BM25.load(path, load_corpus=False, show_progress=False)
        except Exception as error:
            raise RetrievalError(f"{path}: the bm25s index files are missing or damaged ({error})") from None
        if index.scores.get("num_docs") != len(passages):
            raise RetrievalError(
                f"{path}: the index covers {index.scores.get('num_docs')} passages but {MANIFEST} lists {len(passages)}"
            )
        retriever = cls.__new__(cls)
        retriever.passages, retriever.stopwords, retriever._index = passages, stopwords, index
        retriever._stemmer = _stemmer(True) if stem else None
        retriever.stem = bool(stem)
        return retriever

    def __repr__(self) -> str:
        return f"BM25Retriever({len(self.passages)} passages)"


def _scored(passage: Passage, score: float) -> Passage:
    return Passage(passage.text, passage.title, passage.id, score, passage.metadata)


def _unscored(passage: Passage) -> dict[str, Any]:
    out = passage.to_dict()
    out.pop("score", None)
    return out


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetrievalError(f"{path}: not a BM25 index saved by promptless (no {MANIFEST})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RetrievalError(f"{file}: damaged, not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RetrievalError(f"{file}: not a promptless BM25 index (its 'format' is not {FORMAT!r})")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise RetrievalError(f"{file}: index version {manifest.get('version')!r} is newer than this promptless reads")
    return manifest


def _swap_into_place(staging: Path, path: Path) -> None:
    """Replace ``path`` by the finished ``staging`` directory: two renames, the old index removed last."""
    if not path.exists():
        os.replace(staging, path)
        return
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
    os.replace(path, old / "index")
    os.replace(staging, path)
    shutil.rmtree(old, ignore_errors=True)
