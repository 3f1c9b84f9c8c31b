"""Choosing a label by likelihood and calibrating it: the arithmetic, the Predict path, the artifact round trip."""

from __future__ import annotations

import math
from typing import Literal

import pytest

import promptless as pl
from promptless.errors import ArtifactError, LMBadRequest
from promptless.modules.label_choice import LabelChoice, normalized, value_key
from promptless.optimizers.calibration import calibration_inputs, with_label_choice
from promptless.testing import ScriptedLM
from promptless.types import Request


class Sentiment(pl.Signature):
    """Classify the sentiment."""

    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


class Flag(pl.Signature):
    text: str = pl.InputField()
    ok: bool = pl.OutputField()


def test_normalized_is_a_log_softmax():
    out = normalized([-1.0, -3.0, -2.0])
    assert math.isclose(sum(math.exp(x) for x in out), 1.0)
    assert out[0] - out[1] == pytest.approx(2.0)


def test_the_prior_is_the_log_of_the_mean_probability_over_runs():
    # run 1: p = (0.9, 0.1); run 2: p = (0.5, 0.5) -> mean (0.7, 0.3)
    runs = [[math.log(0.9), math.log(0.1)], [math.log(0.5) - 4, math.log(0.5) - 4]]
    prior = LabelChoice.learn_prior(["positive", "negative"], runs)
    assert prior == {'"positive"': pytest.approx(math.log(0.7)), '"negative"': pytest.approx(math.log(0.3))}


def test_calibration_can_flip_a_biased_choice():
    choice = LabelChoice("calibrated", {value_key("positive"): math.log(0.9), value_key("negative"): math.log(0.1)})
    # the model says 0.8 positive; its prior is 0.9 positive: relative to the prior, negative is likelier
    assert choice.pick(["positive", "negative"], [math.log(0.8), math.log(0.2)]) == 1
    assert LabelChoice("likelihood").pick(["positive", "negative"], [math.log(0.8), math.log(0.2)]) == 0


def test_a_bad_mode_and_bad_saved_state_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="mode"):
        LabelChoice("greedy")  # type: ignore[arg-type]
    bad_states = [
        {"mode": "x"},
        {"mode": "calibrated", "prior": {"a": "high"}},
        {"mode": "calibrated", "prior": [1]},
        {"mode": "likelihood", "calibrated_on": -1},
        {"mode": "calibrated", "prior": {"a": float("nan")}},
    ]
    for bad in bad_states:
        with pytest.raises(ArtifactError, match="predictor 'p'"):
            LabelChoice.from_state(bad, name="p")


def scored_lm(scores_by_sentence):
    """Replies to scored requests with log-probabilities chosen by the sentence in the prompt."""

    def reply(request: Request):
        assert request.choices is not None and request.grammar is None and request.schema is None
        return scores_by_sentence[request.text.rsplit("Sentence: ", 1)[-1].strip()]

    return ScriptedLM(reply)


def test_predict_with_a_label_choice_sends_one_scored_request_and_returns_a_typed_value():
    lm = scored_lm({"great": [-0.1, -2.5], "awful": [-3.0, -0.2]})
    predict = pl.Predict(Sentiment, lm=lm)
    predict.choice = LabelChoice("likelihood")
    assert predict(sentence="great").sentiment == "positive"
    assert predict(sentence="awful").sentiment == "negative"
    request = lm.requests[0]
    assert request.choices == ('{"sentiment":"positive"}', '{"sentiment":"negative"}')
    assert len(lm.requests) == 2


def test_a_completion_model_scores_the_value_after_the_label():
    lm = ScriptedLM(lambda request: [-1.0, -0.5], model_type="completion")
    predict = pl.Predict(Flag, lm=lm)
    predict.choice = LabelChoice("likelihood")
    assert predict(text="x").ok is False
    assert lm.requests[0].choices == (" true\n", " false\n")
    assert lm.requests[0].prompt.endswith("Ok:")


def test_sampling_and_free_outputs_decode_as_usual():
    lm = ScriptedLM([{"sentiment": "positive"}, {"answer": "hi"}])
    predict = pl.Predict(Sentiment, lm=lm, temperature=0.7)
    predict.choice = LabelChoice("likelihood")
    assert predict(sentence="x").sentiment == "positive"
    free = pl.Predict("question -> answer", lm=lm)
    free.choice = LabelChoice("likelihood")
    assert free(question="q").answer == "hi"
    assert all(r.choices is None for r in lm.requests)


def test_an_lm_that_cannot_score_decodes_as_usual_and_a_direct_scored_request_is_refused():
    class Plain:
        model_type = "chat"

        def complete(self, request):
            return pl.lm.Response(['{"sentiment":"negative"}'])

    lm = pl.LM("custom/plain", backend=Plain(), cache=False)
    assert not lm.scores_choices
    predict = pl.Predict(Sentiment, lm=lm)
    predict.choice = LabelChoice("likelihood")
    assert predict(sentence="x").sentiment == "negative"
    with pytest.raises(LMBadRequest, match="cannot score choices"):
        lm(Request(prompt="x", choices=("a", "b")))


def test_scored_requests_are_cached_by_their_choices_and_old_keys_do_not_change():
    plain = Request(prompt="x")
    assert Request(prompt="x", choices=("a",)).cache_key("m") != plain.cache_key("m")
    # the key of a request without choices is what it was before the field existed
    import hashlib
    import json

    state = {k: v for k, v in vars(plain).items() if k != "choices"}
    before = hashlib.sha256(json.dumps(["m", state], sort_keys=True, default=str).encode()).hexdigest()
    assert plain.cache_key("m") == before
    with pytest.raises(ValueError, match="choices"):
        Request(prompt="x", choices=())


def test_with_label_choice_learns_a_prior_from_inputs_and_the_artifact_keeps_it(tmp_path):
    # the model leans positive on everything: 0.75 / 0.25 on average over the calibration inputs
    lm = scored_lm({"a": [math.log(0.9), math.log(0.1)], "b": [math.log(0.6), math.log(0.4)],
                    "c": [math.log(0.7), math.log(0.3)]})  # fmt: skip
    student = pl.Predict(Sentiment, lm=lm)
    train = [pl.Example(sentence=s, sentiment="positive").with_inputs("sentence") for s in "ab"]
    program = with_label_choice(student, "calibrated", train)
    assert student.choice is None  # the student is left alone
    choice = program.choice
    assert choice.mode == "calibrated" and choice.calibrated_on == 2
    assert choice.prior[value_key("positive")] == pytest.approx(math.log(0.75))
    # "c": 0.7 positive is below the prior's 0.75, so the calibrated choice is negative
    assert program(sentence="c").sentiment == "negative"
    path = tmp_path / "p.json"
    program.save(path)
    loaded = pl.Predict(Sentiment, lm=lm)
    loaded.load(path)
    assert loaded.choice == choice
    assert loaded(sentence="c").sentiment == "negative"
    loaded.reset()
    assert loaded.choice is None


def test_content_free_inputs_fill_every_input_field():
    train = [pl.Example(sentence="s", sentiment="positive").with_inputs("sentence")]
    content_free = [{"sentence": "N/A"}, {"sentence": ""}, {"sentence": "[MASK]"}]
    assert calibration_inputs(train, "content-free", 32) == content_free
    assert calibration_inputs(train * 50, "inputs", 32) == [{"sentence": "s"}] * 32
    with pytest.raises(ValueError, match="content-free"):
        calibration_inputs(train, "labels", 3)  # type: ignore[arg-type]
