"""Demos that do not teach a bias: balanced over labels, interleaved, diverse for free text."""

from __future__ import annotations

import itertools
import random
from typing import Literal

import pytest

import promptless as pl
from promptless.optimizers import demo_selection as selection
from promptless.testing import ScriptedLM


class Sentiment(pl.Signature):
    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


def labelled(labels):
    return [pl.Example(sentence=f"s{i}", sentiment=label).with_inputs("sentence") for i, label in enumerate(labels)]


def test_balanced_takes_labels_round_robin_and_keeps_pool_order_within_a_label():
    pool = labelled(["positive"] * 6 + ["negative"] * 2)
    chosen = selection.select(Sentiment, pool, 4, random.Random(0))
    assert sorted(d.sentiment for d in chosen) == ["negative", "negative", "positive", "positive"]
    assert [d.sentence for d in chosen if d.sentiment == "positive"] == ["s0", "s1"]
    # when a label runs out the others fill the rest
    assert [d.sentiment for d in selection.select(Sentiment, pool, 6, random.Random(0))].count("negative") == 2


def test_interleave_never_ends_on_a_run_when_it_can_be_avoided():
    demos = labelled(["positive"] * 3 + ["negative"] * 3)
    arranged = selection.arrange(Sentiment, demos)
    labels = [d.sentiment for d in arranged]
    assert all(a != b for a, b in itertools.pairwise(labels))
    lopsided = selection.arrange(Sentiment, labelled(["positive"] * 4 + ["negative"]))
    assert [d.sentiment for d in lopsided][:3] == ["positive", "negative", "positive"]


def test_free_text_demos_are_chosen_to_differ():
    sig = pl.Signature("question -> answer")
    questions = ["red apple pie", "red apple tart", "red apple cake", "blue sky"]
    pool = [pl.Example(question=q, answer="a") for q in questions]
    chosen = selection.select(sig, pool, 2, random.Random(1))
    assert {d.question for d in chosen} >= {"blue sky"}


def test_labeled_few_shot_balances_by_default_and_first_is_dspy_sampling():
    train = labelled(["positive"] * 18 + ["negative"] * 2)
    student = pl.Predict(Sentiment)
    balanced = pl.LabeledFewShot(k=4).compile(student, trainset=train)
    assert sorted(d.sentiment for d in balanced.demos) == ["negative", "negative", "positive", "positive"]
    first = pl.LabeledFewShot(k=4, demo_selection="first").compile(student, trainset=train)
    assert first.demos == random.Random(0).sample(train, 4)
    with pytest.raises(ValueError, match="demo_selection"):
        pl.LabeledFewShot(k=4, demo_selection="best")


def test_bootstrap_keeps_running_until_the_passing_pool_shows_both_labels():
    # the first four examples are positive and pass; the fifth, negative, passes too
    train = labelled(["positive"] * 4 + ["negative"] * 2)
    lm = ScriptedLM(lambda r: {"sentiment": "negative" if r.text.rstrip().endswith(("s4", "s5")) else "positive"})

    def metric(example, prediction, trace=None):
        return example.sentiment == prediction.sentiment

    student = pl.Predict(Sentiment, lm=lm)
    compiled = pl.BootstrapFewShot(metric, max_bootstrapped_demos=2, max_labeled_demos=0, num_threads=1).compile(
        student, trainset=train
    )
    assert sorted(d.sentiment for d in compiled.demos) == ["negative", "positive"]
    first = pl.BootstrapFewShot(
        metric, max_bootstrapped_demos=2, max_labeled_demos=0, num_threads=1, demo_selection="first"
    ).compile(student, trainset=train)
    assert [d.sentiment for d in first.demos] == ["positive", "positive"]


def test_bootstrap_stops_at_the_pool_cap_when_a_label_never_passes():
    train = labelled(["positive"] * 10 + ["negative"] * 10)
    lm = ScriptedLM(lambda r: {"sentiment": "positive"})  # never right on a negative example

    def metric(example, prediction, trace=None):
        return example.sentiment == prediction.sentiment

    optimizer = pl.BootstrapFewShot(metric, max_bootstrapped_demos=2, max_labeled_demos=0, num_threads=1, holdout=0)
    optimizer.compile(pl.Predict(Sentiment, lm=lm), trainset=train)
    assert len(lm.requests) == 2 * 3  # 3 x the demos asked for, then it stops looking for a negative trace


def test_without_a_valset_part_of_the_trainset_is_held_out_and_a_worse_result_is_not_returned():
    train = labelled(["positive", "negative"] * 15)  # 30 examples: 10 held out

    def reply(request):  # zero-shot is always right; with demos in the prompt the model is always wrong
        sentence = request.text.rsplit("Sentence: ", 1)[-1].strip()
        truth = "positive" if int(sentence[1:]) % 2 == 0 else "negative"
        demos = request.text.count("Sentence: ") > 1
        return {"sentiment": ("negative" if truth == "positive" else "positive") if demos else truth}

    def metric(example, prediction, trace=None):
        return example.sentiment == prediction.sentiment

    lm = ScriptedLM(reply)
    compiled = pl.BootstrapFewShot(metric, max_bootstrapped_demos=2, max_labeled_demos=2).compile(
        pl.Predict(Sentiment, lm=lm), trainset=train
    )
    report = compiled.compile_report
    assert report.chosen == "baseline" and compiled.demos == []
    assert any("10 of the 30 training examples were held out" in note for note in report.notes)
    raw = pl.BootstrapFewShot(metric, max_bootstrapped_demos=2, max_labeled_demos=2, holdout=0).compile(
        pl.Predict(Sentiment, lm=lm), trainset=train
    )
    assert raw.demos and any("holdout=0" in note for note in raw.compile_report.notes)
    with pytest.raises(ValueError, match="holdout"):
        pl.BootstrapFewShot(metric, holdout=1.5)
