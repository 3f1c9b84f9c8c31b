"""stream(): field events as text arrives, on ScriptedLM (a test double that streams its reply in 3-char pieces)."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import pytest

import promptless as pl
from promptless.lm.openai import OpenAIBackend
from promptless.streaming import FieldChunk, FieldTracker, FieldValue, stream
from promptless.testing import ScriptedLM


def collect(program, **inputs):
    events = list(stream(program, **inputs))
    chunks: dict[str, str] = {}
    for event in events[:-1]:
        if isinstance(event, FieldChunk):
            chunks[event.field] = chunks.get(event.field, "") + event.text
    values = {e.field: e.value for e in events if isinstance(e, FieldValue)}
    return events, chunks, values


def test_chat_json_fields_stream_then_parse():
    lm = ScriptedLM([{"reasoning": 'think "hard"\nthen', "answer": 42}])
    program = pl.ChainOfThought("question -> answer: int", lm=lm)
    events, chunks, values = collect(program, question="q")
    assert chunks == {"reasoning": 'think "hard"\nthen', "answer": "42"}
    assert values == {"reasoning": 'think "hard"\nthen', "answer": 42}
    assert isinstance(events[-1], pl.Prediction) and events[-1].answer == 42
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("FieldValue") < max(i for i, k in enumerate(kinds) if k == "FieldChunk")  # reasoning ends first
    assert all(e.predictor == "predict" for e in events[:-1])
    assert len([e for e in events if isinstance(e, FieldChunk)]) > 4  # really in pieces


def test_completion_lines_stream_per_field():
    lm = ScriptedLM([{"sentiment": "positive", "confidence": 0.9}], model_type="completion")
    program = pl.Predict("sentence -> sentiment: Literal['positive', 'negative'], confidence: float", lm=lm)
    events, chunks, values = collect(program, sentence="great film")
    assert chunks == {"sentiment": "positive", "confidence": "0.9"}
    assert values == {"sentiment": "positive", "confidence": 0.9}
    assert events[-1].confidence == 0.9


def test_stream_names_predictors_by_path_in_a_program():
    class Two(pl.Module):
        def __init__(self):
            self.first = pl.Predict("q -> draft")
            self.second = pl.Predict("draft -> answer")

        def forward(self, q):
            return self.second(draft=self.first(q=q).draft)

    lm = ScriptedLM([{"draft": "d"}, {"answer": "a"}])
    with pl.context(lm=lm):
        events, _, _values = collect(Two(), q="x")
    assert [(e.predictor, e.field) for e in events if isinstance(e, FieldValue)] == [
        ("first", "draft"),
        ("second", "answer"),
    ]
    assert events[-1].answer == "a"


def test_parse_error_mid_stream_ends_the_stream_with_it():
    lm = ScriptedLM(['{"answer": "x"'] * 2)  # never closes; retries also fail
    seen = []
    with pytest.raises(pl.ParseError):
        for event in stream(pl.Predict("question -> answer: int", lm=lm), question="q"):
            seen.append(event)
    assert seen and all(isinstance(e, FieldChunk) for e in seen)


def test_tracker_holds_back_what_may_still_change():
    tracker = FieldTracker(pl.Signature("q -> a, b"), lines=False)
    out = tracker.feed('{"a": "he\\')
    assert out == [("chunk", "a", "he")]  # the half escape waits
    out = tracker.feed('nllo", "b": "x')
    assert ("chunk", "a", "\nllo") in out and ("value", "a", "he\nllo") in out and ("chunk", "b", "x") in out
    assert tracker.finish() == []  # the open string never closed: no value


def sse(events: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def test_openai_backend_streams_server_sent_events():
    text = json.dumps({"answer": "streamed"})
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        events = [{"choices": [{"delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        events.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}})
        return httpx.Response(200, content=sse(events), headers={"content-type": "text/event-stream"})

    backend = OpenAIBackend("m", api_base="http://server/v1", transport=httpx.MockTransport(handler))
    lm = pl.LM("openai/m", api_base="http://server/v1", backend=backend, cache=False)
    _events, chunks, values = collect(pl.Predict("question -> answer", lm=lm), question="q")
    assert chunks == {"answer": "streamed"} and values == {"answer": "streamed"}
    assert bodies[0]["stream"] is True
    assert lm.history[-1].response.usage.prompt_tokens == 7


def test_openai_stream_error_status_is_typed():
    backend = OpenAIBackend(
        "m", api_base="http://server/v1", transport=httpx.MockTransport(lambda r: httpx.Response(401, text="no"))
    )
    lm = pl.LM("openai/m", api_base="http://server/v1", backend=backend, cache=False)
    with pytest.raises(pl.LMAuthError):
        list(stream(pl.Predict("question -> answer", lm=lm), question="q"))


def test_stream_with_cache_hit_yields_whole_text():
    lm = ScriptedLM([{"answer": "x"}], cache=True)
    program = pl.Predict("question -> answer", lm=lm)
    program(question="q")
    _, chunks, values = collect(program, question="q")
    assert chunks == {"answer": "x"} and values == {"answer": "x"}
    assert len(lm.requests) == 1


def test_literal_type_in_stream_signature():
    lm = ScriptedLM([{"label": "b"}])
    program = pl.Predict(pl.Signature({"x": pl.InputField(), "label": (Literal["a", "b"], pl.OutputField())}), lm=lm)
    _, _, values = collect(program, x="1")
    assert values == {"label": "b"}
