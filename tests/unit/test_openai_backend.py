"""The OpenAI-compatible backend's request shape, dialects and error mapping, on httpx's mock transport."""

import asyncio
import json
import threading

import httpx
import pytest

from promptless.lm.base import LM, Request
from promptless.lm.errors import (
    LMAuthError,
    LMBadRequest,
    LMContextOverflow,
    LMNotFound,
    LMRateLimited,
    LMTimeout,
    LMUnavailable,
)
from promptless.lm.openai import OpenAIBackend
from promptless.lm.retry import Backoff

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
CHAT = ({"role": "user", "content": "x"},)
# What llama-cpp-python's server really answers to response_format={"type": "json_schema", ...} on chat.
LLAMA_CPP_REFUSAL = json.dumps(
    {
        "error": {
            "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
            "'msg': \"Input should be 'text' or 'json_object'\"}",
            "type": "internal_server_error",
        }
    }
)


def ok(text="hi", n=1, usage=None, **extra):
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": text}, "finish_reason": "stop"} for _ in range(n)],
            "usage": usage or {"prompt_tokens": 5, "completion_tokens": 2},
            **extra,
        },
    )


def backend(handler, **kwargs):
    """A backend on a mock server; ``seen`` collects (path, body) of every request."""
    seen = []

    def record(request):
        seen.append((request.url.path, json.loads(request.content)))
        return handler(request)

    kwargs.setdefault("api_key", "sk-test")
    b = OpenAIBackend("m", api_base="http://server/v1", transport=httpx.MockTransport(record), **kwargs)
    return b, seen


def llama_cpp_server(request):
    """Behaves like `python -m llama_cpp.server`: 500 on json_schema in chat, ignores n and response_format."""
    path, body = request.url.path, json.loads(request.content)
    if path.endswith("/chat/completions"):
        if body.get("response_format", {}).get("type") == "json_schema":
            return httpx.Response(500, text=LLAMA_CPP_REFUSAL)
        return ok('{"a": 1}')
    return httpx.Response(200, json={"choices": [{"text": "a: 1", "finish_reason": "stop"}], "model": "m"})


def test_chat_body_usage_and_model():
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}
    b, seen = backend(lambda r: ok(usage=usage, model="m-2024"))
    response = b.complete(Request(messages=CHAT, temperature=0.5, max_tokens=9, stop=("\n",), seed=3))
    assert seen == [
        (
            "/v1/chat/completions",
            {"model": "m", "temperature": 0.5, "max_tokens": 9, "messages": list(CHAT), "stop": ["\n"], "seed": 3},
        )
    ]
    assert response.texts == ["hi"] and response.finish_reasons == ["stop"] and response.model == "m-2024"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == (7, 3, 4)


def test_completion_endpoint_for_prompts_and_null_content_is_empty():
    b, seen = backend(lambda r: httpx.Response(200, json={"choices": [{"text": None, "finish_reason": "length"}]}))
    response = b.complete(Request(prompt="Q:", grammar='root ::= "a"'))  # no llama.cpp known: grammar unused
    assert response.texts == [""] and response.finish_reasons == ["length"]
    assert [path for path, _ in seen] == ["/v1/chat/completions", "/v1/completions"]  # probe, then the call
    assert "grammar" not in seen[1][1] and seen[1][1]["prompt"] == "Q:"
    assert response.usage.total_tokens == 0


def test_key_goes_in_the_header_only_and_defaults_come_from_the_environment(monkeypatch):
    headers = []
    b = OpenAIBackend(
        "m",
        api_base="http://server/v1/",
        api_key="sk-test",
        transport=httpx.MockTransport(lambda r: headers.append(r.headers.get("authorization")) or ok()),
    )
    b.complete(Request(prompt="x"))
    assert headers == ["Bearer sk-test"] and "sk-test" not in repr(b) and b.api_base == "http://server/v1"

    monkeypatch.setenv("OPENAI_BASE_URL", "http://env-server/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert OpenAIBackend("m").api_base == "http://env-server/v1" and OpenAIBackend("m")._headers()["Authorization"]
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert OpenAIBackend("m").api_base == "https://api.openai.com/v1" and OpenAIBackend("m")._headers() == {}


def test_extra_keyword_arguments_go_into_every_body():
    b, seen = backend(lambda r: ok(), top_p=0.9)
    b.complete(Request(messages=CHAT))
    assert seen[0][1]["top_p"] == 0.9
    with pytest.raises(ValueError, match="response_format_style"):
        OpenAIBackend("m", response_format_style="grammar")


@pytest.mark.parametrize(
    ("status", "refusal"),
    [(422, '{"detail": "response_format: json_schema is not supported"}'), (400, "bad request"), (500, None)],
)
def test_json_schema_falls_back_to_json_object_and_remembers(status, refusal):
    def handler(request):
        body = json.loads(request.content)
        if body["response_format"]["type"] == "json_schema":
            return httpx.Response(status, text=refusal or LLAMA_CPP_REFUSAL)
        return ok('{"a": 1}')

    b, seen = backend(handler)
    assert b.complete(Request(messages=CHAT, schema=SCHEMA)).texts == ['{"a": 1}']
    b.complete(Request(messages=CHAT, schema=SCHEMA))
    assert [body["response_format"]["type"] for _, body in seen] == ["json_schema", "json_object", "json_object"]
    assert seen[1][1]["response_format"]["schema"] == SCHEMA and b.style == "json_object"


def test_the_dialect_is_settled_once_across_threads():
    b, seen = backend(llama_cpp_server)
    texts = []
    request = Request(messages=CHAT, schema=SCHEMA)
    threads = [threading.Thread(target=lambda: texts.append(b.complete(request).text)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert texts == ['{"a": 1}'] * 8 and b.style == "json_object" and len(seen) <= 16
    b.complete(Request(messages=CHAT, schema=SCHEMA))
    assert seen[-1][1]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_servers_that_take_json_schema_keep_it():
    b, seen = backend(lambda r: ok('{"a": 2}'))
    b.complete(Request(messages=CHAT, schema=SCHEMA))
    assert seen[0][1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": False},
    }
    assert b.style == "json_schema"


def test_no_fallback_on_errors_that_are_not_a_refusal_nor_with_a_fixed_style():
    b, seen = backend(lambda r: httpx.Response(429, text="slow down"))
    with pytest.raises(LMRateLimited):
        b.complete(Request(messages=CHAT, schema=SCHEMA))
    assert len(seen) == 1 and b.style == "auto"
    b, seen = backend(lambda r: httpx.Response(422, text="response_format"), response_format_style="json_schema")
    with pytest.raises(LMBadRequest):
        b.complete(Request(messages=CHAT, schema=SCHEMA))
    assert len(seen) == 1
    b, seen = backend(lambda r: ok(), response_format_style="json_object")
    b.complete(Request(messages=CHAT, schema=SCHEMA))
    assert seen[0][1]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_completions_on_llama_cpp_get_the_grammar_after_a_probe():
    b, seen = backend(llama_cpp_server)
    request = Request(prompt="a:", grammar='root ::= "1"', schema=SCHEMA)
    assert b.complete(request).texts == ["a: 1"]
    b.complete(request)
    assert [path for path, _ in seen] == ["/v1/chat/completions", "/v1/completions", "/v1/completions"]
    assert seen[0][1]["max_tokens"] == 1 and seen[0][1]["response_format"]["type"] == "json_schema"
    assert seen[1][1]["grammar"] == 'root ::= "1"' and "response_format" not in seen[1][1]
    assert b.style == "json_object"


def test_completions_elsewhere_get_json_schema_and_no_grammar():
    b, seen = backend(lambda r: ok())
    b.complete(Request(prompt="a:", grammar='root ::= "1"', schema=SCHEMA))
    assert b.style == "json_schema" and "grammar" not in seen[1][1]
    assert seen[1][1]["response_format"]["type"] == "json_schema"


def test_a_probe_that_cannot_connect_settles_nothing():
    def handler(request):
        if request.url.path.endswith("/chat/completions"):
            raise httpx.ConnectError("refused", request=request)
        return ok()

    b, _ = backend(handler)
    b.complete(Request(prompt="a:", schema=SCHEMA))
    assert b.style == "auto"


def test_n_is_topped_up_when_the_server_returns_fewer():
    b, seen = backend(lambda r: ok("one"))
    response = b.complete(Request(prompt="x", n=3, temperature=1.0, seed=10))
    assert response.texts == ["one"] * 3 and len(seen) == 3 and response.usage.calls == 3
    assert [body["seed"] for _, body in seen] == [10, 11, 12]
    assert [body.get("n") for _, body in seen] == [3, 2, None]
    b, seen = backend(lambda r: ok("two", n=json.loads(r.content).get("n", 1)))
    assert len(b.complete(Request(messages=CHAT, n=4)).texts) == 4 and len(seen) == 1


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, "bad key", LMAuthError),
        (403, "forbidden", LMAuthError),
        (404, "no such model", LMNotFound),
        (408, "timeout", LMTimeout),
        (429, "slow down", LMRateLimited),
        (500, "boom", LMUnavailable),
        (503, "overloaded", LMUnavailable),
        (400, "This model's maximum context length is 2048 tokens", LMContextOverflow),
        (400, "Requested tokens (3000) exceed context window of 2048", LMContextOverflow),
        (400, "prompt has too many tokens", LMContextOverflow),
        (400, "unknown parameter foo", LMBadRequest),
        (422, "field required", LMBadRequest),
    ],
)
def test_status_codes_map_to_typed_errors(status, body, error):
    b, _ = backend(lambda r: httpx.Response(status, text=body))
    with pytest.raises(error, match=f"http://server/v1/completions: HTTP {status}") as caught:
        b.complete(Request(prompt="x"))
    assert body in str(caught.value)


def test_error_messages_name_the_model_and_keep_only_the_start_of_the_body():
    b, _ = backend(lambda r: httpx.Response(404, text="x" * 1000))
    with pytest.raises(LMNotFound, match="'m'") as caught:
        b.complete(Request(messages=CHAT))
    assert "http://server/v1/chat/completions" in str(caught.value) and str(caught.value).count("x") < 350


def test_transport_failures_and_malformed_replies_are_typed():
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(LMTimeout):
        backend(timeout)[0].complete(Request(prompt="x"))
    with pytest.raises(LMUnavailable, match="cannot connect"):
        backend(refused)[0].complete(Request(prompt="x"))
    with pytest.raises(LMUnavailable, match=r"not JSON.*<html>"):
        backend(lambda r: httpx.Response(200, text="<html>"))[0].complete(Request(prompt="x"))
    for reply in ({"choices": []}, {"error": "x"}, {"choices": ["text"]}, ["a"]):
        with pytest.raises(LMUnavailable):
            backend(lambda r, reply=reply: httpx.Response(200, json=reply))[0].complete(Request(prompt="x"))


def test_lm_retries_5xx_but_not_401():
    no_wait = Backoff(retries=2, sleep=lambda s: None)
    b, seen = backend(lambda r: httpx.Response(503, text="busy"))
    lm = LM(model="openai/x", api_base="http://server/v1", backend=b, cache=False, backoff=no_wait)
    with pytest.raises(LMUnavailable, match="503"):
        lm("x")
    assert len(seen) == 3
    b, seen = backend(lambda r: httpx.Response(401, text="no"))
    lm = LM(model="openai/x", api_base="http://server/v1", backend=b, cache=False, backoff=no_wait)
    with pytest.raises(LMAuthError):
        lm("x")
    assert len(seen) == 1


def test_async_calls_share_the_dialect_top_up_and_errors():
    seen = []

    def record(request):
        seen.append(json.loads(request.content))
        return llama_cpp_server(request)

    b = OpenAIBackend("m", api_base="http://server/v1", async_transport=httpx.MockTransport(record))
    response = asyncio.run(b.acomplete(Request(messages=CHAT, schema=SCHEMA, n=2, seed=1)))
    assert response.texts == ['{"a": 1}'] * 2 and b.style == "json_object"
    assert [body["response_format"]["type"] for body in seen] == ["json_schema", "json_object", "json_object"]

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    down = OpenAIBackend("m", api_base="http://server/v1", async_transport=httpx.MockTransport(refused))
    with pytest.raises(LMUnavailable, match="cannot connect"):
        asyncio.run(down.acomplete(Request(messages=CHAT)))


def test_retry_after_is_honoured_on_429_and_503():
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "2.5"}, text="slow down"),
            httpx.Response(503, headers={"Retry-After": "1"}, text="busy"),
            ok("done"),
        ]
    )
    b, seen = backend(lambda r: next(replies))
    slept: list[float] = []
    lm = LM("openai/m", api_base="http://server/v1", backend=b, cache=False, backoff=Backoff(3, sleep=slept.append))
    assert lm("x") == ["done"]
    assert slept == [2.5, 1.0] and len(seen) == 3


def test_a_500_that_names_the_request_format_is_not_retried():
    b, seen = backend(lambda r: httpx.Response(500, text=LLAMA_CPP_REFUSAL))
    lm = LM("openai/m", api_base="http://server/v1", backend=b, cache=False, backoff=Backoff(3, sleep=lambda s: None))
    with pytest.raises(LMBadRequest, match="response_format"):
        lm(Request(messages=CHAT))
    assert len(seen) == 1


def test_a_dialect_settled_on_one_reply_is_settled_again_when_refused():
    """The first 200 came from a server that took json_schema; later the server refuses it: switch, don't fail."""
    served = {"n": 0}

    def handler(request):
        served["n"] += 1
        kind = (json.loads(request.content).get("response_format") or {}).get("type")
        if served["n"] == 1 or kind == "json_object":
            return ok('{"a": 1}')
        return httpx.Response(400, text="response_format json_schema is not supported")

    b, seen = backend(handler)
    request = Request(messages=CHAT, schema=SCHEMA)
    assert b.complete(request).text == '{"a": 1}' and b.style == "json_schema"
    assert b.complete(request).text == '{"a": 1}' and b.style == "json_object"
    assert b.complete(request).text == '{"a": 1}'
    assert [body["response_format"]["type"] for _, body in seen] == [
        "json_schema",
        "json_schema",
        "json_object",
        "json_object",
    ]


def test_acomplete_reuses_one_async_client_per_event_loop():
    async def handler(request):
        return ok("hi")

    b = OpenAIBackend("m", api_base="http://server/v1", async_transport=httpx.MockTransport(handler))

    async def calls():
        await b.acomplete(Request(messages=CHAT))
        first = b._async_client()
        await b.acomplete(Request(messages=CHAT))
        assert b._async_client() is first
        await b.aclose()
        assert first.is_closed

    asyncio.run(calls())
