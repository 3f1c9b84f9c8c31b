"""Choosing a label by likelihood over HTTP, against real llama.cpp servers (llama-cpp-python's).

Gemma-3-270M has a BOS token, so llama-cpp-python's server echoes honest log-probabilities
and the scores must match the embedded backend's for the same request. SmolLM2 has none, and
the same server shifts its echoed numbers by one position: the backend must notice and refuse.
The server's echo sorts the whole vocabulary at every prompt token (0.5-2 s per token on
Gemma's 262k here), so the test scores one short prompt's two labels, once, and reads the
calibrated prediction and the comparison from that.
"""

from typing import Literal

import pytest

import promptless as pl
from promptless.errors import LMBadRequest
from promptless.lm.base import Request
from promptless.optimizers.calibration import with_label_choice
from tests.integration.conftest import LlamaServer

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

REVIEW = "a wonderful film"
# nats. The same GGUF and llama.cpp build, but the prompt is evaluated in other batches, and that alone moves a
# label's log-probability: in-process, one batch of prompt + label against the embedded scorer's prompt-then-label
# batches differed by 0.003 and 0.029 on this prompt, and the server's numbers by up to 0.052 from the scorer's.
TOLERANCE = 0.1


class Sentiment(pl.Signature):
    """Sentiment."""

    review: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


@pytest.fixture(scope="module")
def gemma_server(tmp_path_factory):
    from promptless.errors import ModelNotInstalled
    from promptless.lm.models import model_path

    try:
        gguf = model_path("gemma-3-270m")
    except ModelNotInstalled as error:
        pytest.skip(str(error))
    log = tmp_path_factory.mktemp("gemma-server") / "server.log"
    # every position's logits kept (the default, said explicitly): 512 x 262k floats, 0.5 GiB
    server = LlamaServer(log, model=gguf, alias="gemma", n_ctx=512, options=("--logits_all", "true"))
    try:
        yield server.start().base
    finally:
        server.stop()


def test_a_calibrated_predictor_over_http_scores_as_the_embedded_model_does(gemma_server):
    lm = pl.LM("openai/gemma", api_base=gemma_server, model_type="completion", max_tokens=16, timeout=300)
    assert lm.scores_choices  # the server's echo passed the check
    train = [pl.Example(review=REVIEW, sentiment="positive").with_inputs("review")]
    program = with_label_choice(pl.Predict(Sentiment, lm=lm), "calibrated", train)
    assert program.choice.calibrated_on == 1 and len(program.choice.prior) == 2
    assert program(review=REVIEW).sentiment in ("positive", "negative")  # scored again from the cache
    scored = lm.history[-1].request
    http = lm.history[-1].response.logprobs
    assert scored.choices == (" positive\n", " negative\n") and scored.prompt.endswith("Sentiment:")
    embedded = pl.LM("local/gemma-3-270m", cache=False)(scored).logprobs
    assert http == pytest.approx(embedded, abs=TOLERANCE), (http, embedded)
    assert (http[0] > http[1]) == (embedded[0] > embedded[1])


def test_a_server_whose_echoed_logprobs_are_shifted_is_refused(llama_server):
    lm = pl.LM("openai/smollm2", api_base=llama_server, model_type="completion", cache=False, max_tokens=8)
    assert not lm.scores_choices
    with pytest.raises(LMBadRequest, match="not those of the echoed tokens"):
        lm(Request(prompt="Review: a wonderful film.\nSentiment:", choices=(" positive\n", " negative\n")))
    predict = pl.Predict(Sentiment, lm=lm)
    predict.choice = pl.modules.label_choice.LabelChoice("likelihood")
    assert predict(review=REVIEW).sentiment in ("positive", "negative")  # decoded greedily, as before
    assert lm.history[-1].request.choices is None
