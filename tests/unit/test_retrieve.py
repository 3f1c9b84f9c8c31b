"""Retrievers (BM25, embeddings) and the Retrieve module, on tiny corpora."""

import json
import sys
from collections import Counter

import pytest

from promptless.lm.errors import LMUnavailable
from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.modules.retrieve import Retrieve
from promptless.primitives import Prediction
from promptless.retrieve import BM25Retriever, EmbeddingsRetriever, Passage, RetrievalError, RetrieverUnavailable
from promptless.settings import configure, context
from promptless.testing import ScriptedLM

CORPUS = [
    {"title": "Paris", "text": "Paris is the capital and largest city of France.", "id": "p"},
    {"title": "Berlin", "text": "Berlin is the capital of Germany, on the river Spree.", "id": "b"},
    {"title": "Danube", "text": "The Danube flows through Vienna, Budapest and Belgrade.", "id": "d"},
    {"title": "Cheese", "text": "Brie and camembert are soft cheeses from France.", "id": "c"},
]


@pytest.fixture
def bm25():
    return BM25Retriever(CORPUS)


def titles(passages):
    return [p.title for p in passages]


# -- BM25 ----------------------------------------------------------------------------------------------
def test_bm25_ranks_the_matching_passage_first(bm25):
    assert titles(bm25("Which river runs through Berlin?", k=2))[0] == "Berlin"
    assert titles(bm25("soft cheese camembert", k=1)) == ["Cheese"]
    hits = bm25("capital of France", k=3)
    assert hits[0].title == "Paris" and hits[0].score > hits[1].score
    assert len(bm25("anything", k=10)) == len(CORPUS)  # k larger than the corpus is clamped


def test_bm25_drops_stopwords_and_indexes_titles():
    retriever = BM25Retriever(["the the the of a", "Vienna opera"])
    assert retriever("the Vienna", k=1)[0].text == "Vienna opera"
    titled = BM25Retriever([{"title": "Zagreb", "text": "A city."}, {"title": "Split", "text": "A city."}])
    assert titled("Zagreb", k=1)[0].title == "Zagreb"


def test_plain_strings_get_positions_as_ids_and_several_queries_merge():
    retriever = BM25Retriever(["alpha beta", "gamma delta", "beta gamma"])
    assert [p.id for p in retriever("alpha", k=1)] == [0]
    merged = retriever(["beta", "gamma"], k=3)
    assert merged[0].text == "beta gamma"  # found by both queries, so its scores add up
    assert len({p.id for p in merged}) == 3


def test_bm25_save_load_round_trip(bm25, tmp_path):
    path = bm25.save(tmp_path / "index")
    loaded = BM25Retriever.load(path)
    for query in ["capital of Germany", "rivers in Vienna", "French cheese", "nothing matches xyz"]:
        assert [(p.id, p.title, p.text, p.score) for p in loaded(query, k=3)] == [
            (p.id, p.title, p.text, p.score) for p in bm25(query, k=3)
        ]
    bm25.save(path)  # saving over a saved index replaces it
    assert BM25Retriever.load(path)("Danube", k=1)[0].title == "Danube"
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no staging directories left behind


def test_bm25_load_errors_name_the_path(bm25, tmp_path):
    with pytest.raises(RetrievalError, match=r"missing.*not a directory"):
        BM25Retriever.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RetrievalError, match=r"empty.*no retriever.json"):
        BM25Retriever.load(tmp_path / "empty")

    path = bm25.save(tmp_path / "index")
    (path / "retriever.json").write_text('{"format": "promptless.bm25", "vers', encoding="utf-8")
    with pytest.raises(RetrievalError, match=r"index/retriever.json: damaged"):
        BM25Retriever.load(path)

    path = bm25.save(tmp_path / "index2")
    (path / "data.csc.index.npy").unlink()
    with pytest.raises(RetrievalError, match=r"index2: the bm25s index files are missing or damaged"):
        BM25Retriever.load(path)

    path = bm25.save(tmp_path / "index3")
    manifest = json.loads((path / "retriever.json").read_text(encoding="utf-8"))
    manifest["passages"] = manifest["passages"][:2]
    (path / "retriever.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(RetrievalError, match=r"covers 4 passages but retriever.json lists 2"):
        BM25Retriever.load(path)


def test_bm25_save_refuses_to_overwrite_other_directories(bm25, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(RetrievalError, match="refusing to overwrite"):
        bm25.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_bm25_stemming_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "Stemmer", None)  # as if PyStemmer were not installed
    assert BM25Retriever(["cats"]).stem is False
    with pytest.raises(ImportError, match="PyStemmer"):
        BM25Retriever(["cats"], stem=True)


def test_corpus_errors_are_clear():
    with pytest.raises(ValueError, match="non-empty"):
        BM25Retriever([])
    with pytest.raises(TypeError, match=r"corpus\[1\] has no string field 'text'"):
        BM25Retriever(["ok", {"body": "x"}])


# -- embeddings -------------------------------------------------------------------------------------
def letters(texts):
    """A deterministic toy embedder: counts of each letter a-z."""
    calls.append(len(texts))
    return [[Counter(t.lower())[c] for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts]


calls: list[int] = []


def test_embeddings_rank_by_cosine_and_embed_the_corpus_once_in_batches():
    calls.clear()
    corpus = ["aaaa", "bbbb", "abab", "zzzz zzzz"]
    retriever = EmbeddingsRetriever(corpus, letters, batch_size=3)
    assert calls == [3, 1]
    assert [p.text for p in retriever("aaab", k=2)] == ["aaaa", "abab"]
    assert retriever("zz", k=1)[0].text == "zzzz zzzz"
    assert retriever("zz", k=1)[0].score == pytest.approx(1.0)
    assert calls == [3, 1, 1, 1, 1]


def test_embeddings_without_numpy_rank_the_same(monkeypatch):
    corpus = ["aaaa", "bbbb", "abab", "abc"]
    with_numpy = [(p.text, round(p.score, 9)) for p in EmbeddingsRetriever(corpus, letters)("aab", k=4)]
    monkeypatch.setitem(sys.modules, "numpy", None)
    without = [(p.text, round(p.score, 9)) for p in EmbeddingsRetriever(corpus, letters)("aab", k=4)]
    assert without == with_numpy


def test_embeddings_check_what_the_embedder_returns():
    with pytest.raises(RetrievalError, match="returned 1 vectors for 2 texts"):
        EmbeddingsRetriever(["a", "b"], lambda texts: [[1.0]])
    retriever = EmbeddingsRetriever(["a"], lambda texts: [[1.0, 0.0] for _ in texts])
    retriever.embedder = lambda texts: [[1.0, 0.0, 0.0] for _ in texts]
    with pytest.raises(RetrievalError, match="differing"):
        retriever("a", k=1)


# -- the Retrieve module ----------------------------------------------------------------------------
def test_retrieve_with_an_argument_and_with_configure(bm25):
    prediction = Retrieve(k=2, rm=bm25)("capital of Germany")
    assert isinstance(prediction, Prediction)
    assert prediction.passages[0] == "Berlin | Berlin is the capital of Germany, on the river Spree."
    assert len(prediction.passages) == 2 and prediction.keys() == ["passages"]
    assert prediction.retrieved[0].id == "b" and prediction.retrieved[0].score > 0

    with context(rm=bm25):
        assert Retrieve(k=1)("soft cheese").passages == [str(bm25("soft cheese", k=1)[0])]
        assert len(Retrieve(k=1)("soft cheese", k=3).passages) == 3
    configure(rm=bm25)
    try:
        assert len(Retrieve()(["Danube", "Paris"]).passages) == 3
    finally:
        configure(rm=None)


def test_retrieve_without_a_retriever_says_how_to_set_one():
    with pytest.raises(RetrievalError, match=r"configure\(rm="):
        Retrieve()("anything")


def test_retrieve_accepts_any_callable_retriever():
    def dspy_style(query, k):
        return [{"long_text": f"{query} #{i}", "pid": i} for i in range(5)]

    assert Retrieve(k=2, rm=dspy_style)("q").passages == ["q #0", "q #1"]
    assert Retrieve(k=2, rm=lambda query, k: ["x", "y", "z"])("q").passages == ["x", "y"]


def test_remote_unavailable_is_an_lm_unavailable_so_evaluation_stops():
    assert issubclass(RetrieverUnavailable, LMUnavailable)
    assert str(Passage("t", title="T")) == "T | t" and Passage("t").long_text == "t"


class RAG(Module):
    def __init__(self):
        self.retrieve = Retrieve(k=2)
        self.answer = Predict("context: list[str], question -> answer")

    def forward(self, question):
        context = self.retrieve(question).passages
        return self.answer(context=context, question=question)


def test_a_program_with_retrieve_runs_copies_saves_and_loads(bm25, tmp_path):
    program = RAG()
    program.retrieve.rm = bm25
    assert [name for name, _ in program.named_predictors()] == ["answer"]
    lm = ScriptedLM(lambda request: {"answer": "Berlin"})
    with context(lm=lm):
        assert program(question="capital of Germany?").answer == "Berlin"
    assert "Berlin is the capital of Germany" in lm.requests[-1].text

    clone = program.deepcopy()
    assert clone.retrieve is not program.retrieve and clone.retrieve.rm is bm25  # the index is shared, not copied
    clone.retrieve.k = 1
    assert program.retrieve.k == 2

    program.answer.demos = [Prediction(context=["c"], question="q", answer="a")]
    path = program.save(tmp_path / "rag.json")
    assert list(json.loads(path.read_text())["predictors"]) == ["answer"]
    loaded = RAG().load(path)
    assert loaded.answer.demos[0].answer == "a" and loaded.retrieve.k == 2
