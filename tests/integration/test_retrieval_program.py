"""A two-hop retrieval program on the real embedded model, over a BM25 index of a few HotPotQA paragraphs."""

import json
from pathlib import Path

import pytest

import promptless as pl
from promptless.modules.retrieve import Retrieve
from promptless.retrieve import BM25Retriever

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "hotpotqa_mini.json"


class TwoHop(pl.Module):
    """Hop 1 searches with the question; the LM writes hop 2's query from what was found, then answers."""

    def __init__(self) -> None:
        self.retrieve = Retrieve(k=2)
        self.follow_up = pl.Predict("context: list[str], question -> query")
        self.answer = pl.Predict("context: list[str], question -> answer")

    def forward(self, question: str) -> pl.Prediction:
        found = self.retrieve(question).retrieved
        query = self.follow_up(context=[str(p) for p in found], question=question).query
        found += [p for p in self.retrieve(query).retrieved if p.id not in {f.id for f in found}]
        context = [str(p) for p in found]
        answer = self.answer(context=context, question=question).answer
        return pl.Prediction(answer=answer, query=query, titles=[p.title for p in found])


@pytest.fixture(scope="module")
def mini():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_two_hop_program_retrieves_the_gold_paragraph_and_answers(mini, tmp_path):
    from promptless.lm.cache import Cache

    BM25Retriever(mini["paragraphs"], id_field="title").save(tmp_path / "index")
    index = BM25Retriever.load(tmp_path / "index")  # the program runs on the index as read back from disk
    lm = pl.LM("local/gemma-3-270m", cache=Cache(tmp_path / "cache"))
    questions = mini["questions"][:2]
    with pl.context(lm=lm, rm=index):
        for row in questions:
            prediction = TwoHop()(question=row["question"])
            assert set(row["gold_titles"]) & set(prediction.titles), (row["question"], prediction.titles)
            assert isinstance(prediction.query, str)
            assert isinstance(prediction.answer, str)
    # two LM calls per question (a parse retry may add one each); retrieval makes none
    assert 2 * len(questions) <= len(lm.history) <= 4 * len(questions)
