"""acall on predictors and modules: truly async over HTTP (a mock transport), a worker thread otherwise."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

import promptless as pl
from promptless.lm.openai import OpenAIBackend
from promptless.testing import ScriptedLM


def http_lm(handler) -> pl.LM:
    backend = OpenAIBackend("m", api_base="http://server/v1", async_transport=httpx.MockTransport(handler))
    return pl.LM("openai/m", api_base="http://server/v1", backend=backend, cache=False)


def answer_with_question(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    question = body["messages"][-1]["content"].rsplit("Question: ", 1)[-1]
    content = json.dumps({"answer": f"re: {question}"})
    return httpx.Response(200, json={"choices": [{"message": {"content": content}, "finish_reason": "stop"}]})


def test_predict_acall_over_http_runs_on_the_event_loop():
    threads = set()

    async def handler(request):
        threads.add(threading.current_thread().name)
        await asyncio.sleep(0.01)
        return answer_with_question(request)

    lm = http_lm(handler)
    predict = pl.Predict("question -> answer", lm=lm)

    async def main():
        return await asyncio.gather(*(predict.acall(question=str(i)) for i in range(5)))

    results = asyncio.run(main())
    assert [r.answer for r in results] == [f"re: {i}" for i in range(5)]
    assert threads == {threading.main_thread().name}  # no worker threads: the HTTP calls were awaited
    assert len(lm.history) == 5 and results[0].usage.calls == 1


def test_chain_of_thought_acall_and_parse_retry_are_async():
    replies = iter(["not json", json.dumps({"reasoning": "r", "answer": "a"})])

    async def handler(request):
        content = next(replies)
        return httpx.Response(200, json={"choices": [{"message": {"content": content}, "finish_reason": "stop"}]})

    lm = http_lm(handler)
    result = asyncio.run(pl.ChainOfThought("question -> answer", lm=lm).acall(question="q"))
    assert result.answer == "a" and len(lm.history) == 2


def test_acall_parse_failure_raises_after_retries():
    async def handler(request):
        return httpx.Response(200, json={"choices": [{"message": {"content": "nope"}, "finish_reason": "stop"}]})

    with pytest.raises(pl.ParseError):
        asyncio.run(pl.Predict("question -> answer", lm=http_lm(handler)).acall(question="q"))


def test_module_without_aforward_runs_in_a_thread_with_settings():
    class Pipeline(pl.Module):
        def __init__(self):
            self.step = pl.Predict("question -> answer")

        def forward(self, question):
            return self.step(question=question)

    lm = ScriptedLM([{"answer": "x"}])

    async def main():
        with pl.context(lm=lm):
            return await Pipeline().acall(question="q")

    assert asyncio.run(main()).answer == "x"
    assert len(lm.requests) == 1
