"""Scoring choices over HTTP (/completions with echo) on httpx's mock transport: request shape, offsets, refusals."""

import asyncio
import json
import re
from typing import Literal

import httpx
import pytest

import promptless as pl
from promptless.lm.base import LM, Request
from promptless.lm.errors import LMBadRequest, LMUnavailable
from promptless.lm.openai import OpenAIBackend
from promptless.lm.openai_choices import PROBE, choice_span, summed
from promptless.lm.retry import Backoff
from promptless.modules.label_choice import LabelChoice

PROMPT = "Review: a fine film\nSentiment:"
CHOICES = (" positive\n", " negative\n")


def tokens_of(text):
    """The fake model's tokenizer: words with their leading space, and each line break alone."""
    return re.findall(r" ?[^\s]+|\n| ", text)


def logprob(token):
    """The fake model's log-probability of a token (context-free, so every sum is known)."""
    return -0.5 * len(token.strip() or "x") - (1.0 if "negative" in token else 0.0)


def echo_reply(text, *, aligned=True, index=0):
    """What an honest server answers to echo=true, logprobs=0, max_tokens=1: prompt tokens, then one generated."""
    tokens = [*tokens_of(text), " Rating"]
    offsets = [sum(map(len, tokens[:i])) for i in range(len(tokens))]
    values = [None] + [logprob(t) for t in tokens[1:]]
    if not aligned:  # llama-cpp-python's shift: each token gets the next position's number
        values = [None] + [logprob(t) - 2.0 for t in tokens[2:]] + [-9.0]
    logprobs = {"tokens": tokens, "text_offset": offsets, "token_logprobs": values}
    return {"text": text + " Rating", "index": index, "logprobs": logprobs, "finish_reason": "length"}


def server(*, aligned=True, lists=False, echo=True, logprobs_field=True):
    """A fake /completions: the probe's one-token generation, echo replies, lists of prompts if ``lists``."""

    def handle(request):
        body = json.loads(request.content)
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json={"choices": [{"message": {"content": "{}"}}]})
        prompt = body["prompt"]
        if isinstance(prompt, list) and not lists:
            return httpx.Response(500, json={"error": {"message": "", "type": "internal_server_error"}})
        if not body.get("echo"):  # the probe's generation: " Friday" after PROBE
            assert prompt == PROBE and body["max_tokens"] == 1 and body["logprobs"] == 1
            lp = {"tokens": [" Friday"], "text_offset": [len(PROBE)], "token_logprobs": [logprob(" Friday")]}
            return httpx.Response(200, json={"choices": [{"text": " Friday", "index": 0, "logprobs": lp}]})
        prompts = prompt if isinstance(prompt, list) else [prompt]
        choices = [echo_reply(p, aligned=aligned, index=i) for i, p in enumerate(prompts)]
        if not echo:  # echo ignored: only the generated token comes back
            choices = [
                {"text": " Rating", "index": i, "logprobs": {"tokens": [" Rating"], "text_offset": [0],
                                                              "token_logprobs": [-1.0]}}
                for i in range(len(prompts))
            ]  # fmt: skip
        if not logprobs_field:
            for choice in choices:
                choice["logprobs"] = None
        usage = {"prompt_tokens": 9 * len(prompts), "completion_tokens": len(prompts)}
        return httpx.Response(200, json={"choices": choices[::-1], "usage": usage, "model": "m"})  # any order

    return handle


def lm_on(handler, model_type="completion"):
    seen = []

    def record(request):
        seen.append((request.url.path, json.loads(request.content)))
        return handler(request)

    backend = OpenAIBackend(
        "m", api_base="http://server/v1", model_type=model_type, transport=httpx.MockTransport(record), top_p=0.9
    )
    no_wait = Backoff(2, sleep=lambda s: None)
    lm = LM("openai/m", api_base="http://server/v1", backend=backend, cache=False, backoff=no_wait)
    return lm, seen


def expected(choice):
    return sum(logprob(t) for t in tokens_of(choice))


def test_each_choice_is_echoed_and_its_tokens_summed_after_a_probe_and_lists_are_tried_once():
    lm, seen = lm_on(server(lists=False))
    assert lm.scores_choices
    response = lm(Request(prompt=PROMPT, choices=CHOICES))
    assert response.logprobs == pytest.approx([expected(" positive\n"), expected(" negative\n")])
    assert response.text == " positive\n" and response.usage.calls == 2
    paths = [path for path, _ in seen]
    assert paths == ["/v1/completions"] * 5  # probe (2), the refused list, then one request per choice
    probe, echo_probe, listed, first, second = (body for _, body in seen)
    assert probe["prompt"] == PROBE and "echo" not in probe
    assert echo_probe["prompt"] == PROBE + " Friday" and echo_probe["echo"] is True
    assert listed["prompt"] == [PROMPT + c for c in CHOICES]
    assert first == {
        "top_p": 0.9, "model": "m", "prompt": PROMPT + CHOICES[0], "echo": True, "logprobs": 0, "max_tokens": 1,
        "temperature": 0,
    }  # fmt: skip
    assert second["prompt"] == PROMPT + CHOICES[1]
    seen.clear()
    lm(Request(prompt=PROMPT + " ", choices=CHOICES))
    assert [body["prompt"] for _, body in seen] == [PROMPT + " " + c for c in CHOICES]  # lists refused: remembered


def test_a_server_that_takes_a_list_of_prompts_gets_one_request_and_its_choices_are_put_back_in_order():
    lm, seen = lm_on(server(lists=True))
    response = lm(Request(prompt=PROMPT, choices=CHOICES))
    assert len(seen) == 3 and seen[-1][1]["prompt"] == [PROMPT + c for c in CHOICES]
    assert response.logprobs == pytest.approx([expected(" positive\n"), expected(" negative\n")])
    assert response.usage.calls == 1 and lm.backend._prompt_lists is True


def test_tokens_the_choices_share_are_left_out_and_the_generated_token_is_not_counted():
    lm, _ = lm_on(server())
    scores = lm(Request(prompt=PROMPT, choices=(" very good\n", " very bad\n"))).logprobs
    assert scores == pytest.approx([logprob(" good") + logprob("\n"), logprob(" bad") + logprob("\n")])


def test_offsets_find_the_choice_even_when_a_token_crosses_the_prompt_end():
    # "Label:" + "yes" tokenized as "Label", ":y", "es": the token across the boundary starts the choice
    choice = {
        "text": "Label:yes!",
        "logprobs": {"tokens": ["Label", ":y", "es", "!"], "text_offset": [0, 5, 7, 9],
                     "token_logprobs": [None, -1.5, -0.25, -3.0]},
    }  # fmt: skip
    assert choice_span(choice, "Label:", "Label:yes", "x") == [(":y", -1.5), ("es", -0.25)]
    split = {"tokens": ["Label", ":", "yes", "!"], "text_offset": [0, 5, 6, 9]}
    exact = {**choice, "logprobs": {**choice["logprobs"], **split}}
    assert choice_span(exact, "Label:", "Label:yes", "x") == [("yes", -0.25)]
    assert summed([[("a", -1.0), ("b", -2.0)], [("a", -1.0), ("c", -0.5)]]) == [-2.0, -0.5]
    assert summed([[("a", -1.0)], [("a", -1.0), ("c", -0.5)]]) == [-1.0, -1.5]  # a choice keeps its own token


def test_a_server_whose_echoed_numbers_are_shifted_is_refused_and_predict_decodes_greedily():
    lm, seen = lm_on(server(aligned=False))
    assert not lm.scores_choices
    assert not lm.scores_choices and len(seen) == 2  # checked once
    with pytest.raises(LMBadRequest, match="not those of the echoed tokens"):
        lm(Request(prompt=PROMPT, choices=CHOICES))

    class Sentiment(pl.Signature):
        review: str = pl.InputField()
        sentiment: Literal["positive", "negative"] = pl.OutputField()

    def replies(request):
        if request.url.path.endswith("/chat/completions"):  # the structured-output dialect probe
            return httpx.Response(200, json={"choices": [{"message": {"content": "{}"}}]})
        body = json.loads(request.content)
        assert "echo" not in body  # greedy decoding, not scoring
        return httpx.Response(200, json={"choices": [{"text": " negative\n", "finish_reason": "stop"}]})

    lm.backend._transport.handler = replies  # the same backend: its verdict stays
    lm.backend.close()
    predict = pl.Predict(Sentiment, lm=lm)
    predict.choice = LabelChoice("likelihood")
    assert predict(review="dull").sentiment == "negative"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (server(echo=False), "do not cover the echoed prompt|did not echo"),
        (server(logprobs_field=False), "no logprobs"),
    ],
)
def test_a_server_without_echoed_logprobs_is_refused_never_scored_zero(handler, message):
    lm, _ = lm_on(handler)
    assert not lm.scores_choices
    with pytest.raises(LMBadRequest, match=message):
        lm(Request(prompt=PROMPT, choices=CHOICES))


def test_a_reply_missing_a_choice_tokens_logprob_is_an_error():
    choice = echo_reply(PROMPT + CHOICES[0])
    choice["logprobs"]["token_logprobs"][-2] = None
    with pytest.raises(LMBadRequest, match="no log-probability for the choice's token"):
        choice_span(choice, PROMPT, PROMPT + CHOICES[0], "x")


def test_a_chat_model_cannot_score_and_asks_no_server():
    lm, seen = lm_on(server(), model_type="chat")
    assert not lm.scores_choices and seen == []
    with pytest.raises(LMBadRequest, match="chat API returns log-probabilities of generated tokens only"):
        lm(Request(messages=({"role": "user", "content": "x"},), choices=CHOICES))
    completion, _ = lm_on(server())
    with pytest.raises(LMBadRequest, match="only /completions echoes prompts"):
        completion(Request(messages=({"role": "user", "content": "x"},), choices=CHOICES))


def test_a_500_naming_logprobs_is_a_refusal_not_an_outage():
    def no_logits(request):  # llama-cpp-python's server started with --logits_all false
        message = "logprobs is not supported for models created with logits_all=False"
        return httpx.Response(500, json={"error": {"message": message, "type": "internal_server_error"}})

    lm, seen = lm_on(no_logits)
    assert not lm.scores_choices and len(seen) == 1
    with pytest.raises(LMBadRequest, match=r"refuses logprobs.*logits_all=False"):
        lm(Request(prompt=PROMPT, choices=CHOICES))
    assert len(seen) == 1  # not retried, not asked again


def test_a_server_that_is_down_settles_nothing_and_is_checked_again():
    calls = []

    def flaky(request):
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return server()(request)

    lm, _ = lm_on(flaky)
    assert not lm.scores_choices  # could not find out: Predict decodes greedily this time
    assert lm.scores_choices
    response = lm(Request(prompt=PROMPT, choices=CHOICES))
    assert response.logprobs == pytest.approx([expected(" positive\n"), expected(" negative\n")])


def test_a_transient_failure_while_scoring_is_retried_by_the_lm():
    calls = []

    def flaky(request):
        calls.append(json.loads(request.content))
        if calls[-1].get("echo") and calls[-1]["prompt"] == PROMPT + CHOICES[1] and len(calls) < 6:
            return httpx.Response(503, text="busy")
        return server()(request)

    lm, _ = lm_on(flaky)
    response = lm(Request(prompt=PROMPT, choices=CHOICES))
    assert response.logprobs == pytest.approx([expected(" positive\n"), expected(" negative\n")])


def test_scoring_from_an_event_loop():
    lm, _ = lm_on(server())
    response = asyncio.run(lm.acomplete(Request(prompt=PROMPT, choices=CHOICES)))
    assert response.text == " positive\n"


def test_a_server_that_answers_garbage_to_a_scored_request_is_an_outage():
    def garbage(request):
        body = json.loads(request.content)
        if body.get("echo") and body["prompt"] != PROBE + " Friday":
            return httpx.Response(200, json={"choices": []})
        return server()(request)

    lm, _ = lm_on(garbage)
    with pytest.raises(LMUnavailable, match="not one choice"):
        lm.backend.score_choices(Request(prompt=PROMPT, choices=CHOICES))
