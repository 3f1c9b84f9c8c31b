"""Evaluate and metrics, with plain Python programs and the scripted test LM."""

import threading

import pytest

import promptless as pl
from promptless.evaluate import (
    TooManyErrors,
    answer_exact_match,
    answer_f1,
    bootstrap_ci,
    normalize_text,
    paired_bootstrap_ci,
)
from promptless.testing import ScriptedLM


def dev(n, answer="yes"):
    return [pl.Example(question=str(i), answer=answer).with_inputs("question") for i in range(n)]


def test_metrics_normalise_and_take_the_best_gold():
    assert normalize_text("The  Eiffel-Tower!") == "eiffeltower"
    ex = pl.Example(answer=["Paris", "City of Light"])
    assert answer_exact_match(ex, pl.Prediction(answer="paris."))
    assert not answer_exact_match(ex, pl.Prediction(answer="Lyon"))
    assert answer_f1(pl.Example(answer="the big red dog"), pl.Prediction(answer="red dog")) == pytest.approx(0.8)
    assert answer_exact_match(pl.Example(answer="big red dog"), pl.Prediction(answer="red dog"), frac=0.5)


def test_score_ci_and_order_with_threads():
    program = pl.Predict("question -> answer", lm=ScriptedLM(lambda r: {"answer": "yes" if "1" in r.text else "no"}))
    examples = dev(20)
    result = pl.Evaluate(devset=examples, metric=answer_exact_match, num_threads=4)(program)
    expected = [1.0 if "1" in ex.question else 0.0 for ex in examples]
    assert result.scores == expected
    assert [ex for ex, _, _ in result.results] == examples
    assert result.score == pytest.approx(100 * sum(expected) / 20)
    assert result.ci[0] <= result.score <= result.ci[1]
    assert result.usage.total.calls == 20
    assert "n=20" in result.summary()


def test_errors_are_counted_apart_from_wrong_answers():
    def program(question):
        if question == "3":
            raise ValueError("boom")
        return pl.Prediction(answer="yes" if int(question) % 2 else "no")

    result = pl.Evaluate(devset=dev(6), metric=answer_exact_match)(program)
    assert result.errors == 1 and "ValueError: boom" in result.error_details[3]
    assert result.scores == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_max_errors_stops_the_run():
    def program(question):
        raise ValueError("always")

    with pytest.raises(TooManyErrors, match="max_errors=2"):
        pl.Evaluate(devset=dev(50), metric=answer_exact_match, max_errors=2, num_threads=1)(program)


def test_fatal_errors_stop_at_once():
    calls = []

    def program(question):
        calls.append(question)
        raise pl.LMAuthError("401 from server")

    with pytest.raises(pl.LMAuthError):
        pl.Evaluate(devset=dev(50), metric=answer_exact_match, num_threads=1)(program)
    assert len(calls) == 1


def test_server_down_on_several_examples_in_a_row_stops_the_run():
    def program(question):
        raise pl.LMUnavailable("connection refused")

    with pytest.raises(pl.LMUnavailable):
        pl.Evaluate(devset=dev(50), metric=answer_exact_match, num_threads=1)(program)


def test_settings_reach_worker_threads():
    lm = ScriptedLM(default={"answer": "yes"})
    seen = set()

    def program(question):
        seen.add((threading.current_thread().name, pl.settings.current().lm is lm))
        return pl.Predict("question -> answer")(question=question)

    with pl.context(lm=lm):
        result = pl.Evaluate(devset=dev(8), metric=answer_exact_match, num_threads=3)(program)
    assert result.score == 100.0
    assert {ok for _, ok in seen} == {True}
    assert threading.main_thread().name not in {name for name, _ in seen}


def test_examples_need_inputs():
    with pytest.raises(ValueError, match=r"devset\[0\] has no inputs marked"):
        pl.Evaluate(devset=[pl.Example(question="q", answer="a")], metric=answer_exact_match)(lambda **kw: None)


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    values = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    lo, hi = bootstrap_ci(values)
    assert (lo, hi) == bootstrap_ci(values)
    assert lo < 0.7 < hi
    assert bootstrap_ci([1, 1, 1]) == (1.0, 1.0)
    assert paired_bootstrap_ci(values, values) == (0.0, 0.0)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_ci([1], [1, 0])
