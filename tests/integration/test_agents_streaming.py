"""ReAct, streaming and async on real models: the embedded llama.cpp ones and a real llama.cpp server."""

import asyncio

import pytest

import promptless as pl
from promptless.streaming import FieldChunk, FieldValue

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

SENTIMENT = "sentence -> sentiment: Literal['positive', 'negative']"


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@pytest.mark.parametrize("model", ["local/smollm2-135m", "local/gemma-3-270m"])
def test_react_on_the_embedded_model_makes_only_valid_tool_calls(model):
    lm = pl.LM(model, cache=False, max_tokens=160)
    agent = pl.ReAct("question -> answer: float", tools=[multiply], max_iters=2)
    with pl.context(lm=lm, max_parse_retries=0):
        result = agent(question="What is 17 times 23?")
    assert isinstance(result.answer, float)  # the extraction step is typed and constrained
    assert 1 <= len(result.steps) <= 2
    for step in result.steps:  # the decoder could only name a real tool, with arguments of its schema
        assert step.tool_name in ("multiply", "finish", "(unparsable step)")
        if step.tool_name == "multiply":
            assert set(step.tool_args) == {"a", "b"} and all(isinstance(v, float) for v in step.tool_args.values())
            assert float(step.observation) == step.tool_args["a"] * step.tool_args["b"]


@pytest.mark.parametrize("model", ["local/gemma-3-270m", "local/smollm2-135m"])
def test_streaming_on_the_embedded_model(model):
    program = pl.Predict(SENTIMENT, lm=pl.LM(model, cache=False, max_tokens=16))
    events = list(pl.stream(program, sentence="an utterly charming and hilarious film."))
    chunks = "".join(e.text for e in events if isinstance(e, FieldChunk))
    values = [e for e in events if isinstance(e, FieldValue)]
    assert events[-1].sentiment in ("positive", "negative")
    assert chunks == events[-1].sentiment and [v.value for v in values] == [events[-1].sentiment]


def test_streaming_over_a_real_server(llama_server):
    lm = pl.LM("openai/smollm2", api_base=llama_server, cache=False, max_tokens=64)
    program = pl.ChainOfThought(SENTIMENT, lm=lm)
    events = list(pl.stream(program, sentence="the plot is nothing but boilerplate cliches."))
    result = events[-1]
    fields = [e.field for e in events if isinstance(e, FieldValue)]
    assert fields == ["reasoning", "sentiment"] and result.sentiment in ("positive", "negative")
    reasoning = "".join(e.text for e in events if isinstance(e, FieldChunk) and e.field == "reasoning")
    assert reasoning == result.reasoning
    assert sum(isinstance(e, FieldChunk) for e in events) > 2  # arrived in pieces


def test_async_predict_over_a_real_server(llama_server):
    lm = pl.LM("openai/smollm2", api_base=llama_server, cache=False, max_tokens=16)
    classify = pl.Predict(SENTIMENT, lm=lm)

    async def main():
        sentences = ["a gorgeous, witty, seductive movie.", "it's a lousy one at that."]
        return await asyncio.gather(*(classify.acall(sentence=s) for s in sentences))

    results = asyncio.run(main())
    assert [r.sentiment in ("positive", "negative") for r in results] == [True, True]
    assert len(lm.history) == 2
