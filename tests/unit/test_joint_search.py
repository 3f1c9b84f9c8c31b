"""The joint search space: distinct points, the minibatch/finalist schedule, its forecast, the ensemble candidate."""

from __future__ import annotations

import math
import random
from typing import Literal

import pytest

import promptless as pl
from promptless.optimizers import joint_search
from promptless.testing import ScriptedLM


class Sentiment(pl.Signature):
    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


def truth(sentence: str) -> str:
    return "positive" if int(sentence[1:]) % 2 == 0 else "negative"


def examples(n: int) -> list[pl.Example]:
    return [pl.Example(sentence=f"s{i}", sentiment=truth(f"s{i}")).with_inputs("sentence") for i in range(n)]


def biased_lm() -> ScriptedLM:
    """Greedy decoding always says positive; the scores lean positive but rank the right label higher once the
    positive prior is divided out."""

    def reply(request):
        right = truth(request.text.rsplit("Sentence: ", 1)[-1].strip())
        if request.choices is not None:
            p = 0.6 if right == "positive" else 0.45
            return [math.log(p), math.log(1 - p)]
        return {"sentiment": "positive"}

    return ScriptedLM(reply)


def metric(example, prediction, trace=None):
    return example.sentiment == prediction.sentiment


def test_points_are_distinct_cover_each_pair_first_and_never_the_baseline():
    points = joint_search.sample_points(random.Random(0), 12, (0, 2, 4), ("greedy", "calibrated"))
    assert len(points) == len(set(points)) == 12
    assert joint_search.Point(0, 0, "greedy") not in points
    pairs = {(p.demos, p.decoding) for p in points}
    assert pairs == {(0, "calibrated"), (2, "greedy"), (2, "calibrated"), (4, "greedy"), (4, "calibrated")}
    assert all(p.seed == 0 for p in points if p.demos == 0)
    assert joint_search.sample_points(random.Random(0), 5, (0,), ("greedy",)) == []


def test_minibatch_indices_are_seeded_and_none_when_they_would_be_everything():
    assert joint_search.minibatch_indices(100, 32, 0) == joint_search.minibatch_indices(100, 32, 0)
    assert len(joint_search.minibatch_indices(100, 32, 0)) == 32
    assert joint_search.minibatch_indices(20, 32, 0) is None
    assert joint_search.minibatch_indices(20, 0, 0) is None


def test_only_finalists_and_their_majority_are_scored_in_full_and_the_forecast_says_so():
    train, val = examples(40), examples(60)[40:]
    lm = biased_lm()
    optimizer = pl.BootstrapFewShotWithRandomSearch(
        metric, search_space="joint", num_candidate_programs=6, minibatch_size=8, finalists=2,
        max_bootstrapped_demos=4, max_labeled_demos=4,
    )  # fmt: skip
    with pl.context(lm=lm):
        plan = optimizer.plan(pl.Predict(Sentiment), train, val)
        compiled = optimizer.compile(pl.Predict(Sentiment), trainset=train, valset=val)
    assert plan.phases["minibatch"] == 6 * 8 and plan.phases["finalists"] == 2 * 20
    report = compiled.compile_report
    full = [c.name for c in report.candidates]
    assert full[0] == "baseline" and len(full) == 1 + 2 + 1 and full[-1] == "majority of 2 finalists"
    assert report.chosen != "baseline" and "calibrated" in report.chosen
    assert compiled.predictors()[0].choice.mode == "calibrated"
    assert any("calibrated likelihood" in note and "measured on" in note for note in report.notes)


def test_without_a_valset_the_joint_search_holds_out_part_of_the_trainset():
    lm = biased_lm()
    optimizer = pl.BootstrapFewShotWithRandomSearch(metric, search_space="joint", num_candidate_programs=3)
    with pl.context(lm=lm):
        compiled = optimizer.compile(pl.Predict(Sentiment), trainset=examples(40))
    assert any("12 of the 40 training examples were held out" in n for n in compiled.compile_report.notes)


class Mood(pl.Signature):
    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = pl.OutputField()


def test_a_label_set_past_max_scored_labels_is_searched_greedily_and_the_report_says_why():
    train, val = examples(40), examples(60)[40:]
    two = pl.BootstrapFewShotWithRandomSearch(metric, num_candidate_programs=6, max_scored_labels=2)
    unbounded = pl.BootstrapFewShotWithRandomSearch(metric, num_candidate_programs=6, max_scored_labels=None)
    with pl.context(lm=biased_lm()):
        assert {p.decoding for p in two._points(pl.Predict(Sentiment))} == {"greedy", "calibrated"}
        assert {p.decoding for p in unbounded._points(pl.Predict(Mood))} == {"greedy", "calibrated"}
        assert {p.decoding for p in two._points(pl.Predict(Mood))} == {"greedy"}
        compiled = two.compile(pl.Predict(Mood), trainset=train, valset=val)
    notes = compiled.compile_report.notes
    assert any("scored label choice left out of the search: self has 3 labels" in n for n in notes), notes
    assert all("calibrated" not in c.name for c in compiled.compile_report.candidates)
    assert compiled.predictors()[0].choice is None


def test_bad_space_settings_are_refused_before_any_call():
    for kwargs in ({"search_space": "grid"}, {"demo_counts": (-1,)}, {"decodings": ("beam",)}, {"finalists": 0},
                   {"minibatch_size": 1.5}, {"holdout": 2}, {"max_scored_labels": 1},
                   {"max_scored_labels": True}):  # fmt: skip
        with pytest.raises(ValueError):
            pl.BootstrapFewShotWithRandomSearch(metric, **kwargs)


def test_mipro_can_search_the_decoding_mode_too():
    pytest.importorskip("optuna")
    train, val = examples(30), examples(50)[30:]
    lm = biased_lm()
    optimizer = pl.MIPROv2(
        metric, auto=None, num_candidates=2, num_trials=6, minibatch=False, max_bootstrapped_demos=0,
        max_labeled_demos=0, decodings=("greedy", "calibrated"),
    )  # fmt: skip
    with pl.context(lm=lm, max_parse_retries=0):
        compiled = optimizer.compile(pl.Predict(Sentiment), trainset=train, valset=val)
    names = [c.name for c in compiled.compile_report.candidates]
    assert any(name.endswith("calibrated") for name in names)
    assert compiled.compile_report.chosen.endswith("calibrated")
    assert compiled.predictors()[0].choice.mode == "calibrated"
    with pytest.raises(ValueError, match="decodings"):
        pl.MIPROv2(metric, decodings=("beam",))
