"""The OpenAI-compatible backend's request shape and error mapping, on httpx's mock transport."""

import json

import httpx
import pytest

import promptless as pl
from promptless.lm.base import Request
from promptless.lm.openai import OpenAIBackend

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def ok(text="hi", n=1, usage=None):
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": text}, "finish_reason": "stop"} for _ in range(n)],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 2},
        },
    )


def backend(handler, **kwargs):
    seen = []

    def record(request):
        seen.append(json.loads(request.content))
        return handler(request)

    b = OpenAIBackend(
        "m", api_base="http://server/v1", api_key="sk-test", transport=httpx.MockTransport(record), **kwargs
    )
    return b, seen


def test_chat_body_and_usage():
    b, seen = backend(
        lambda r: ok(usage={"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}})
    )
    messages = ({"role": "user", "content": "x"},)
    response = b.complete(Request(messages=messages, temperature=0.5, max_tokens=9, stop=("\n",), seed=3))
    assert seen[0] == {
        "model": "m",
        "temperature": 0.5,
        "max_tokens": 9,
        "messages": list(messages),
        "stop": ["\n"],
        "seed": 3,
    }
    assert response.texts == ["hi"]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == (7, 3, 4)


def test_completion_endpoint_is_used_for_prompts():
    urls = []
    b = OpenAIBackend(
        "m",
        api_base="http://server/v1",
        transport=httpx.MockTransport(
            lambda r: urls.append(str(r.url)) or httpx.Response(200, json={"choices": [{"text": " yes"}]})
        ),
    )
    assert b.complete(Request(prompt="Q:")).texts == [" yes"]
    assert urls == ["http://server/v1/completions"]


def test_key_goes_in_the_header_only():
    headers = []
    b = OpenAIBackend(
        "m",
        api_base="http://server/v1",
        api_key="sk-test",
        transport=httpx.MockTransport(lambda r: headers.append(r.headers["authorization"]) or ok()),
    )
    b.complete(Request(prompt="x"))
    assert headers == ["Bearer sk-test"] and "sk-test" not in repr(b)


def test_json_schema_falls_back_to_json_object_and_remembers():
    def handler(request):
        body = json.loads(request.content)
        if body["response_format"]["type"] == "json_schema":
            return httpx.Response(422, json={"detail": "response_format.type: Input should be 'text' or 'json_object'"})
        return ok('{"a": 1}')

    b, seen = backend(handler)
    request = Request(messages=({"role": "user", "content": "x"},), schema=SCHEMA)
    assert b.complete(request).texts == ['{"a": 1}']
    b.complete(request)
    assert [s["response_format"]["type"] for s in seen] == ["json_schema", "json_object", "json_object"]
    assert seen[1]["response_format"]["schema"] == SCHEMA and b.style == "json_object"


def test_servers_that_take_json_schema_keep_it():
    b, seen = backend(lambda r: ok('{"a": 2}'))
    b.complete(Request(messages=({"role": "user", "content": "x"},), schema=SCHEMA))
    assert seen[0]["response_format"]["json_schema"]["schema"] == SCHEMA and b.style == "json_schema"


def test_n_is_topped_up_when_the_server_returns_fewer():
    b, seen = backend(lambda r: ok("one"))
    response = b.complete(Request(prompt="x", n=3, temperature=1.0, seed=10))
    assert response.texts == ["one"] * 3 and len(seen) == 3
    assert [s["seed"] for s in seen] == [10, 11, 12] and seen[0]["n"] == 3


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, "bad key", pl.LMAuthError),
        (403, "forbidden", pl.LMAuthError),
        (404, "no such model", pl.LMNotFound),
        (429, "slow down", pl.LMRateLimited),
        (503, "overloaded", pl.LMUnavailable),
        (400, "This model's maximum context length is 2048 tokens", pl.LMContextOverflow),
        (400, "unknown parameter foo", pl.LMBadRequest),
    ],
)
def test_status_codes_map_to_typed_errors(status, body, error):
    b, _ = backend(lambda r: httpx.Response(status, text=body))
    with pytest.raises(error, match=str(status)):
        b.complete(Request(prompt="x"))


def test_transport_failures_are_typed():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(pl.LMTimeout):
        backend(timeout)[0].complete(Request(prompt="x"))
    with pytest.raises(pl.LMUnavailable, match="cannot connect"):
        backend(refused)[0].complete(Request(prompt="x"))
    with pytest.raises(pl.LMUnavailable, match="not JSON"):
        backend(lambda r: httpx.Response(200, text="<html>"))[0].complete(Request(prompt="x"))
    with pytest.raises(pl.LMUnavailable, match="no choices"):
        backend(lambda r: httpx.Response(200, json={"choices": []}))[0].complete(Request(prompt="x"))


def test_lm_retries_5xx_but_not_401(monkeypatch):
    monkeypatch.setattr("promptless.lm.base.time.sleep", lambda s: None)
    b, seen = backend(lambda r: httpx.Response(503, text="busy"))
    with pytest.raises(pl.LMUnavailable):
        pl.LM("openai/m", backend=b, cache=False, num_retries=2)("x")
    assert len(seen) == 3
    b, seen = backend(lambda r: httpx.Response(401, text="no"))
    with pytest.raises(pl.LMAuthError):
        pl.LM("openai/m", backend=b, cache=False, num_retries=2)("x")
    assert len(seen) == 1


async def _acomplete(b, request):
    return await b.acomplete(request)


def test_async_call_uses_the_same_dialect():
    import asyncio

    def handler(request):
        body = json.loads(request.content)
        if body.get("response_format", {}).get("type") == "json_schema":
            return httpx.Response(500, text="response_format: Input should be 'text' or 'json_object'")
        return ok('{"a": 3}')

    b = OpenAIBackend("m", api_base="http://server/v1", async_transport=httpx.MockTransport(handler))
    response = asyncio.run(_acomplete(b, Request(messages=({"role": "user", "content": "x"},), schema=SCHEMA)))
    assert response.texts == ['{"a": 3}'] and b.style == "json_object"
