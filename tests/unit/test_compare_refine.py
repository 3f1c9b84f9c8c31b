"""MultiChainComparison, BestOfN, Refine and Parallel control flow, on ScriptedLM (a test double, not a model)."""

from __future__ import annotations

import threading

import pytest

import promptless as pl
from promptless.lm.errors import LMAuthError
from promptless.modules.best_of_n import BestOfN
from promptless.modules.multi_chain import MultiChainComparison
from promptless.modules.parallel import Parallel, TooManyFailures
from promptless.modules.refine import Refine
from promptless.testing import ScriptedLM


def test_multi_chain_comparison_shows_every_attempt():
    lm = ScriptedLM([{"rationale": "two of three say 4", "answer": "4"}])
    mcc = MultiChainComparison("question -> answer", M=3)
    attempts = [
        {"reasoning": "2+2 is 4", "answer": "4"},
        pl.Prediction(reasoning="2+2 is 5", answer="5"),
        {"answer": "4"},
    ]
    with pl.context(lm=lm):
        result = mcc(attempts, question="2+2?")
    assert result.answer == "4" and result.rationale == "two of three say 4"
    prompt = lm.requests[0].text
    assert "I reasoned: 2+2 is 5 My answer: answer: 5" in prompt
    assert "Attempt 3: My answer: answer: 4" in prompt
    with pytest.raises(ValueError, match="needs 3 completions, got 2"):
        mcc(attempts[:2], question="2+2?")


def reward_is_four(args: dict, pred: pl.Prediction) -> float:
    return 1.0 if pred.answer == "4" else 0.0


def test_best_of_n_stops_at_threshold_with_distinct_rollouts():
    lm = ScriptedLM([{"answer": "5"}, {"answer": "4"}, {"answer": "4"}])
    best = BestOfN(pl.Predict("question -> answer"), N=3, reward_fn=reward_is_four, threshold=1.0)
    with pl.context(lm=lm):
        assert best(question="2+2?").answer == "4"
    assert len(lm.requests) == 2
    assert [(r.temperature, r.rollout_id) for r in lm.requests] == [(1.0, 0), (1.0, 1)]


def test_best_of_n_returns_best_when_none_reaches_threshold():
    scores = {"a": 0.2, "b": 0.7, "c": 0.5}
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    best = BestOfN(pl.Predict("q -> answer"), N=3, reward_fn=lambda args, p: scores[p.answer], threshold=0.9)
    with pl.context(lm=lm):
        assert best(q="x").answer == "b"


def test_best_of_n_counts_failures_and_raises_fatal_at_once():
    lm = ScriptedLM(["garbage", "garbage", {"answer": "4"}])
    best = BestOfN(pl.Predict("q -> answer"), N=3, reward_fn=reward_is_four, threshold=1.0, fail_count=3)
    with pl.context(lm=lm, max_parse_retries=0):
        assert best(q="x").answer == "4"
    lm = ScriptedLM(["garbage", "garbage"])
    best = BestOfN(pl.Predict("q -> answer"), N=3, reward_fn=reward_is_four, threshold=1.0, fail_count=2)
    with pl.context(lm=lm, max_parse_retries=0), pytest.raises(pl.ParseError):
        best(q="x")
    lm = ScriptedLM([LMAuthError("bad key")])
    with pl.context(lm=lm), pytest.raises(LMAuthError):
        BestOfN(pl.Predict("q -> answer"), N=3, reward_fn=reward_is_four, threshold=1.0)(q="x")


def test_best_of_n_does_not_touch_the_wrapped_module():
    inner = pl.Predict("q -> answer", temperature=0.0)
    with pl.context(lm=ScriptedLM([{"answer": "4"}])):
        BestOfN(inner, N=2, reward_fn=reward_is_four, threshold=1.0)(q="x")
    assert inner.config == {"temperature": 0.0}


class TwoSteps(pl.Module):
    def __init__(self):
        self.draft = pl.Predict("question -> draft")
        self.answer = pl.Predict("question, draft -> answer")

    def forward(self, question):
        draft = self.draft(question=question).draft
        return self.answer(question=question, draft=draft)


def test_refine_feeds_advice_to_the_next_attempt():
    def script(request):
        text = request.text
        if "give each step" in text:  # the advisor
            assert '"answer": "5"' in text and "Reward: 0.0" in text
            return {"advice": {"draft": "Add carefully.", "answer": "Trust the draft."}}
        if "Advice from an earlier attempt" in text:
            return {"draft": "4"} if "draft" in request.schema["properties"] else {"answer": "4"}
        return {"draft": "5"} if "draft" in request.schema["properties"] else {"answer": "5"}

    lm = ScriptedLM(script)
    refine = Refine(TwoSteps(), N=3, reward_fn=reward_is_four, threshold=1.0)
    with pl.context(lm=lm):
        assert refine(question="2+2?").answer == "4"
    advised = [r.text for r in lm.requests if "Advice from an earlier attempt" in r.text]
    assert any("Add carefully." in t for t in advised) and any("Trust the draft." in t for t in advised)
    assert len(lm.requests) == 5  # 2 steps, advisor, 2 steps
    assert [name for name, _ in refine.named_predictors()] == ["module.draft", "module.answer"]


def test_refine_survives_unparsable_advice():
    def script(request):
        if "give each step" in request.text:
            return "no json here"
        return {"answer": "5"}

    lm = ScriptedLM(script)
    refine = Refine(pl.Predict("q -> answer"), N=2, reward_fn=reward_is_four, threshold=1.0)
    with pl.context(lm=lm, max_parse_retries=0):
        assert refine(q="x").answer == "5"


def test_parallel_runs_pairs_in_order_with_settings():
    seen = set()

    def script(request):
        seen.add(threading.current_thread().name)
        return {"answer": request.text.rsplit("Q: ", 1)[-1].strip() + "!"}

    lm = ScriptedLM(script)
    predict = pl.Predict("q -> answer")
    pairs = [(predict, pl.Example(q=str(i)).with_inputs("q")) for i in range(6)] + [(predict, {"q": "d"})]
    with pl.context(lm=lm):
        results = Parallel(num_threads=3)(pairs)
    assert [r.answer for r in results] == [f"{i}!" for i in range(6)] + ["d!"]
    assert seen  # ran in worker threads, with the caller's lm


def test_parallel_failures_and_max_errors():
    lm = ScriptedLM(lambda request: "garbage" if "Q: bad" in request.text else {"answer": "ok"})
    predict = pl.Predict("q -> answer")
    pairs = [(predict, {"q": "good"}), (predict, {"q": "bad"})]
    with pl.context(lm=lm, max_parse_retries=0):
        results, failed, errors = Parallel(return_failed_examples=True)(pairs)
        assert results[0].answer == "ok" and results[1] is None
        assert failed == [{"q": "bad"}] and isinstance(errors[0], pl.ParseError)
        with pytest.raises(TooManyFailures, match="1 of 2 pairs failed"):
            Parallel(max_errors=0)(pairs)
    with pytest.raises(TypeError, match="pair 0 must be"):
        Parallel()([predict])
