"""Choosing a label by likelihood on the real embedded models: allowed values only, and a cost that does not explode."""

import time
from typing import Literal

import pytest

import promptless as pl
from promptless.modules.label_choice import LabelChoice
from promptless.optimizers.calibration import with_label_choice

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

MODELS = ["local/gemma-3-270m", "local/smollm2-135m"]
Category = Literal["abbreviation", "description", "entity", "human", "location", "number"]
QUESTIONS = [
    "What does NASA stand for?",
    "Who wrote Hamlet?",
    "Where is the Eiffel Tower?",
    "How many legs does a spider have?",
]


class Classify(pl.Signature):
    """Classify the question by the kind of answer it expects."""

    question: str = pl.InputField()
    category: Category = pl.OutputField()


@pytest.fixture(scope="module", params=MODELS)
def lm(request):
    return pl.LM(request.param, cache=False, max_tokens=32)


def test_a_calibrated_predictor_returns_only_allowed_values_and_agrees_with_its_own_scores(lm):
    train = [pl.Example(question=q, category="entity").with_inputs("question") for q in QUESTIONS]
    program = with_label_choice(pl.Predict(Classify, lm=lm), "calibrated", train)
    choice = program.choice
    assert choice.mode == "calibrated" and choice.calibrated_on == len(QUESTIONS) and len(choice.prior) == 6
    for question in QUESTIONS:
        value = program(question=question).category
        assert value in Category.__args__
        values, logprobs = program.label_scores(question=question)
        assert values[choice.pick(values, logprobs)] == value
    request = lm.history[-1].request
    assert request.choices is not None and len(request.choices) == 6 and request.grammar is None


def test_scoring_the_labels_costs_about_what_greedy_decoding_does(lm):
    greedy = pl.Predict(Classify, lm=lm)
    scored = pl.Predict(Classify, lm=lm)
    scored.choice = LabelChoice("likelihood")
    greedy(question=QUESTIONS[0]), scored(question=QUESTIONS[0])  # warm: the model is loaded, the prefix cached
    times = {"greedy": [], "scored": []}
    for question in QUESTIONS:  # alternating, so both see the same load
        for name, program in (("greedy", greedy), ("scored", scored)):
            started = time.perf_counter()
            program(question=question)
            times[name].append(time.perf_counter() - started)
    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    # bench/label_choice_cost.py measures the ratio; here it must only not explode
    assert median["scored"] < 5 * median["greedy"], median
