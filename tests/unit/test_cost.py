"""Usage and cost accounting (promptless.cost): per call, per run and per compile, from a user's price table."""

from __future__ import annotations

import pytest

import promptless as pl
from promptless.cost import FREE, CostSummary, Price, as_price, call_cost, price_for, usage_cost
from promptless.lm.base import Response, Usage
from promptless.lm.cache import Cache
from promptless.testing import ScriptedLM

PRICES = {"acme/fast": Price(1.0, 4.0, cached_input_per_million=0.5)}


def acme(**kwargs: object) -> ScriptedLM:
    return ScriptedLM(default={"answer": "a"}, model="acme/fast", **kwargs)


def expected(usage: Usage, price: Price = PRICES["acme/fast"]) -> float:
    return (usage.prompt_tokens * price.input_per_million + usage.completion_tokens * price.output_per_million) / 1e6


def qa(n: int) -> list[pl.Example]:
    return [pl.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(n)]


def exact(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.answer == prediction.answer


# -- prices ------------------------------------------------------------------------------------------------
def test_a_price_counts_cached_input_tokens_at_their_own_rate():
    usage = Usage(prompt_tokens=1_000, completion_tokens=200, cached_tokens=400)
    assert Price(2.0, 8.0, 0.5).cost(usage) == pytest.approx((600 * 2.0 + 400 * 0.5 + 200 * 8.0) / 1e6)
    assert Price(2.0, 8.0).cost(usage) == pytest.approx((1_000 * 2.0 + 200 * 8.0) / 1e6)  # no cached rate: full
    assert FREE.cost(usage) == 0.0


def test_prices_are_found_by_name_bare_name_and_longest_prefix():
    table = {
        "openai/gpt-4o": (2.5, 10.0),
        "gpt-4o-mini": (0.15, 0.6),
        "openai/*": (9.0, 9.0),
        "openai/o1*": (15.0, 60.0),
    }
    assert price_for("openai/gpt-4o", table) == Price(2.5, 10.0)
    assert price_for("openai/gpt-4o-mini", table) == Price(0.15, 0.6)  # the name without its provider
    assert price_for("openai/o1-preview", table) == Price(15.0, 60.0)  # the most specific prefix
    assert price_for("openai/gpt-3.5", table) == Price(9.0, 9.0)
    assert price_for("anthropic/claude", table) is None  # unknown: no made-up number
    assert price_for("gpt-4o", table) is None  # an exact name matches exactly, not as a prefix


def test_local_models_are_free_unless_the_table_says_otherwise():
    assert price_for("local/gemma-3-270m", {}) == FREE
    assert price_for("local/gemma-3-270m", {"local/gemma-3-270m": (0.01, 0.01)}) == Price(0.01, 0.01)
    assert usage_cost("local/smollm2", Usage(1_000, 1_000, 0, 1), None) == 0.0


def test_the_price_setting_is_used_when_no_table_is_given():
    assert price_for("acme/fast") is None
    with pl.context(prices=PRICES):
        assert price_for("acme/fast") == PRICES["acme/fast"]


def test_bad_price_entries_name_the_entry_and_the_value():
    with pytest.raises(TypeError, match=r"prices\['x/y'\] must be a Price or a tuple .* got 'cheap'"):
        as_price("x/y", "cheap")
    with pytest.raises(ValueError, match=r"prices\['x/y'\]: Price\(output_per_million=\) must be .* >= 0, got -1"):
        price_for("x/y", {"x/y": (1.0, -1)})
    with pytest.raises(ValueError, match=r"Price\(input_per_million=\) must be a number >= 0, got '1'"):
        Price("1", 2.0)  # type: ignore[arg-type]


# -- per call -----------------------------------------------------------------------------------------------
def test_a_call_costs_its_tokens_and_a_cache_hit_costs_nothing():
    response = Response(["x"], Usage(100, 10, 0, 1))
    assert call_cost("acme/fast", response, PRICES) == pytest.approx((100 * 1.0 + 10 * 4.0) / 1e6)
    assert call_cost("nobody/knows", response, PRICES) is None
    response.cached = True
    assert call_cost("nobody/knows", response, PRICES) == 0.0  # nothing was sent


# -- per run -------------------------------------------------------------------------------------------------
def test_track_usage_sums_the_cost_of_its_calls():
    lm = acme()
    with pl.context(lm=lm, prices=PRICES), pl.track_usage() as usage:
        pl.Predict("question -> answer")(question="one two three")
        pl.Predict("question -> answer")(question="four")
    per_call = [expected(entry.response.usage) for entry in lm.history]
    assert usage.cost == pytest.approx(sum(per_call)) and all(c > 0 for c in per_call)
    assert usage.cost == pytest.approx(expected(usage.total))
    assert usage.cost_summary() == CostSummary(pytest.approx(sum(per_call)), 0, ())


def test_one_unpriced_model_makes_the_total_unknown_but_keeps_the_known_part():
    priced, unpriced = acme(), ScriptedLM(default={"answer": "a"}, model="mystery/model")
    with pl.context(prices=PRICES), pl.track_usage() as usage:
        pl.Predict("question -> answer", lm=priced)(question="q")
        pl.Predict("question -> answer", lm=unpriced)(question="q")
        pl.Predict("question -> answer", lm=unpriced)(question="q again")
    summary = usage.cost_summary()
    assert usage.cost is None and summary.total is None
    assert summary.known == pytest.approx(expected(priced.history[0].response.usage))
    assert summary.unpriced_calls == 2 and summary.unpriced_models == ("mystery/model",)


def test_a_local_model_costs_zero_without_any_table():
    lm = ScriptedLM(default={"answer": "a"}, model="local/gemma-3-270m")
    with pl.context(lm=lm), pl.track_usage() as usage:
        pl.Predict("question -> answer")(question="q")
    assert usage.total.calls == 1 and usage.cost == 0.0


def test_cache_hits_are_free_even_on_an_unpriced_model():
    lm = ScriptedLM(default={"answer": "a"}, model="mystery/model", cache=Cache(disk=False))
    pl.Predict("question -> answer", lm=lm)(question="q")  # fills the cache
    with pl.track_usage() as usage:
        pl.Predict("question -> answer", lm=lm)(question="q")
    assert usage.cache_hits == 1 and usage.cost == 0.0


def test_a_run_is_priced_with_the_table_in_force_when_it_began():
    with pl.context(lm=acme(), prices=PRICES), pl.track_usage() as usage:
        pl.Predict("question -> answer")(question="q")
    assert pl.settings.current().prices is None
    assert usage.cost == pytest.approx(expected(usage.total))  # read outside the block: still priced


def test_an_evaluation_reports_its_cost():
    with pl.context(lm=acme(), prices=PRICES):
        result = pl.Evaluate(qa(4), exact, num_threads=2)(pl.Predict("question -> answer"))
    assert result.usage.total.calls == 4 and result.usage.cost == pytest.approx(expected(result.usage.total))


# -- per compile ---------------------------------------------------------------------------------------------
def test_a_compile_report_carries_its_cost():
    optimizer = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0)
    with pl.context(lm=acme(), prices=PRICES):
        plain = optimizer.compile(pl.Predict("question -> answer"), trainset=qa(4))
        searched = optimizer.compile(pl.Predict("question -> answer"), trainset=qa(4), valset=qa(3))
    for report in (plain.compile_report, searched.compile_report):
        usage = Usage(report.prompt_tokens, report.completion_tokens)
        assert report.lm_calls > 0 and report.cost == pytest.approx(expected(usage)) and report.cost > 0
    assert searched.compile_report.cost > plain.compile_report.cost  # the valset scoring was paid for too


def test_a_compile_on_an_unpriced_model_has_unknown_cost():
    optimizer = pl.BootstrapFewShot(exact, max_labeled_demos=0)
    with pl.context(lm=ScriptedLM(default={"answer": "a"})):
        program = optimizer.compile(pl.Predict("question -> answer"), trainset=qa(2))
    assert program.compile_report.lm_calls > 0 and program.compile_report.cost is None
