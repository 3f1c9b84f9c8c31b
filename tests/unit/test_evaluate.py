"""Evaluate and metrics, with plain Python programs and the scripted test LM."""

import re
import subprocess
import sys
import threading

import pytest

import promptless as pl
from promptless.evaluate import (
    TooManyErrors,
    answer_exact_match,
    answer_f1,
    bootstrap_ci,
    exact_match,
    f1_score,
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


def test_generic_helpers():
    assert normalize_text("  An apple, a pear and THE plum. ") == "apple pear and plum"
    assert exact_match("The Beatles", "beatles!")
    assert not exact_match("Beatles", "Rolling Stones")
    assert f1_score("a b c", "x y") == 0.0
    assert f1_score("", "") == 1.0 and f1_score("the", "word") == 0.0  # only articles: empty after normalising
    assert answer_f1(pl.Example(answer=["x", "red dog"]), pl.Prediction(answer="the red dog")) == 1.0


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


def test_metric_errors_bool_and_none_and_failure_score():
    def metric(example, pred, trace=None):
        if example.question == "0":
            raise KeyError("no such field")
        return {"1": True, "2": False, "3": 0, "4": 0.5}[example.question]

    result = pl.Evaluate(dev(5), metric, failure_score=0.25, num_threads=2)(lambda **kw: pl.Prediction(answer="x"))
    assert result.scores == [0.25, 1.0, 0.0, 0.0, 0.5]
    assert result.errors == 1 and list(result.error_details) == [0]
    assert isinstance(result.results[1][1], pl.Prediction)
    assert isinstance(result.results[0][1], pl.Prediction)  # the metric raised: the prediction is kept
    assert float(result) == result.score == pytest.approx(35.0)
    assert re.fullmatch(r"35\.0% \(95% CI \d+\.\d–\d+\.\d\), n=5, errors=1, \d+\.\d\d s/item", result.summary())


@pytest.mark.parametrize("verdict", [None, float("nan"), "no", "False", [1]])
def test_a_metric_that_returns_no_score_stops_the_run_with_a_clear_error(verdict):
    def says(example, pred, trace=None):
        return verdict

    with pytest.raises(pl.MetricError, match=r"metric '.*says' returned .*: a metric must return a number or a bool"):
        pl.Evaluate(dev(5), says, num_threads=1)(lambda **kw: pl.Prediction(answer="x"))


def test_program_errors_keep_no_prediction():
    def program(question):
        raise RuntimeError("nope")

    result = pl.Evaluate(devset=dev(3), metric=answer_exact_match, num_threads=2)(program)
    assert result.errors == 3 and result.score == 0.0
    assert [pred for _, pred, _ in result.results] == [None, None, None]


def test_max_errors_stops_the_run():
    def program(question):
        raise ValueError("always")

    with pytest.raises(TooManyErrors, match="max_errors=2"):
        pl.Evaluate(devset=dev(50), metric=answer_exact_match, max_errors=2, num_threads=1)(program)


def test_max_errors_allows_up_to_the_budget():
    def program(question):
        if question in {"1", "2"}:
            raise ValueError("flaky")
        return pl.Prediction(answer="yes")

    result = pl.Evaluate(devset=dev(10), metric=answer_exact_match, max_errors=2, num_threads=3)(program)
    assert result.errors == 2 and result.score == pytest.approx(80.0)


@pytest.mark.parametrize("error", [pl.LMAuthError("401 from server"), pl.LMNotFound("no model")])
def test_fatal_errors_stop_at_once(error):
    calls = []

    def program(question):
        calls.append(question)
        raise error

    with pytest.raises(type(error)):
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


def test_default_thread_count_comes_from_settings():
    names = set()

    def program(question):
        names.add(threading.current_thread().name)
        assert pl.settings.current().num_threads == 2
        return pl.Prediction(answer="yes")

    with pl.context(num_threads=2):
        result = pl.Evaluate(devset=dev(12), metric=answer_exact_match)(program)
    assert result.score == 100.0 and result.errors == 0
    assert 1 <= len(names) <= 2


def test_progress_bar_with_rich():
    pytest.importorskip("rich")
    result = pl.Evaluate(devset=dev(4), metric=answer_exact_match, display_progress=True)(
        lambda question: pl.Prediction(answer="yes")
    )
    assert result.score == 100.0


def test_package_imports_without_rich_or_numpy():
    code = (
        "import sys; sys.modules['rich'] = None; sys.modules['numpy'] = None\n"
        "import promptless.evaluate as ev\n"
        "assert 'rich' not in sys.modules or sys.modules['rich'] is None\n"
        "print(ev.bootstrap_ci([1, 0, 1, 1]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.startswith("(")


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
    assert bootstrap_ci([]) == (0.0, 0.0)
    smooth = [0.13, 0.72, 0.4, 0.95, 0.31, 0.58, 0.07, 0.66, 0.84, 0.22]
    assert bootstrap_ci(smooth, seed=1) != bootstrap_ci(smooth, seed=2)  # the seed is what makes it repeatable


def test_paired_bootstrap_sees_a_real_improvement():
    a = [0, 1, 0, 1, 0, 0, 1, 0, 1, 0] * 3
    b = [1, 1, 0, 1, 1, 0, 1, 1, 1, 0] * 3
    lo, hi = paired_bootstrap_ci(a, b)
    assert 0 < lo <= 0.3 <= hi


def test_pure_python_bootstrap_without_numpy(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)
    values = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    lo, hi = bootstrap_ci(values, n_resamples=500)
    assert (lo, hi) == bootstrap_ci(values, n_resamples=500)
    assert lo < 0.7 < hi
