"""The real embedded models (llama.cpp in-process): typed outputs parse, every time, under constraints."""

from typing import Literal

import pytest
from pydantic import BaseModel

import promptless as pl

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

MODELS = ["local/gemma-3-270m", "local/smollm2-135m"]


class City(BaseModel):
    name: str
    country: str


SENTENCES = [
    "a gorgeous, witty, seductive movie.",
    "the film is strictly routine.",
    "an utterly charming and hilarious film.",
    "it's a lousy one at that.",
    "one of the best films of the year.",
    "the plot is nothing but boilerplate clichés.",
]


@pytest.fixture(scope="module", params=MODELS)
def lm(request):
    return pl.LM(request.param, cache=False, max_tokens=96)


def test_literal_outputs_never_fail_to_parse(lm):
    classify = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)
    with pl.context(max_parse_retries=0):  # no second chances: the constraint alone must hold
        labels = [classify(sentence=s).sentiment for s in SENTENCES]
    assert set(labels) <= {"positive", "negative"}


@pytest.mark.parametrize(
    ("signature", "inputs", "check"),
    [
        ("question -> answer: int", {"question": "How many legs does a dog have?"}, lambda v: isinstance(v, int)),
        ("topic -> keywords: list[str]", {"topic": "the solar system"}, lambda v: isinstance(v, list)),
        ("text -> is_question: bool", {"text": "Where is the station?"}, lambda v: isinstance(v, bool)),
        ("description -> city: City", {"description": "The capital of France."}, lambda v: isinstance(v, City)),
        ("question -> answer: float", {"question": "What is half of 3?"}, lambda v: isinstance(v, float)),
    ],
)
def test_typed_outputs_parse_under_constraints(lm, signature, inputs, check):
    predict = pl.Predict(pl.Signature(signature, custom_types={"City": City}), lm=lm)
    with pl.context(max_parse_retries=0):
        value = next(iter(predict(**inputs).values()))
    assert check(value), value


def test_chain_of_thought_reasoning_then_typed_answer(lm):
    with pl.context(max_parse_retries=0):
        pred = pl.ChainOfThought("question -> answer: int", lm=lm)(question="What is 2 + 2?")
    assert isinstance(pred.reasoning, str) and isinstance(pred.answer, int)


def test_shared_prefix_is_reused_between_calls(lm):
    classify = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)
    classify(sentence=SENTENCES[0])
    classify(sentence=SENTENCES[1])
    last = lm.history[-1].response.usage
    assert last.cached_tokens > 0.5 * last.prompt_tokens  # only the new sentence is evaluated


def test_cache_answers_repeated_calls(tmp_path):
    from promptless.lm.cache import Cache

    lm = pl.LM("local/smollm2-135m", cache=Cache(tmp_path))
    predict = pl.Predict("question -> answer", lm=lm)
    first = predict(question="Name a colour.")
    second = predict(question="Name a colour.")
    assert first.answer == second.answer
    assert [e.response.cached for e in lm.history] == [False, True]


def test_default_lm_is_the_embedded_base_model():
    from promptless.lm import default_lm

    assert default_lm().model == "local/gemma-3-270m" and default_lm().model_type == "completion"
    assert isinstance(
        pl.Predict("sentence -> sentiment: Literal['positive', 'negative']")(sentence="great!").sentiment, str
    )
    assert Literal


def test_loading_from_several_threads_at_once_keeps_stdout(tmp_path):
    """llama.cpp silences stdout while loading; concurrent loads once left the process mute."""
    import subprocess
    import sys

    script = (
        "import threading, promptless as pl\n"
        "p = pl.Predict('q -> a', lm=pl.LM('local/smollm2-135m', cache=False, max_tokens=8))\n"
        "ts = [threading.Thread(target=lambda: p(q='hi')) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print('still here')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "still here" in done.stdout
