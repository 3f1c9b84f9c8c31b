"""The OpenAI-compatible backend against a real llama.cpp server, and against servers that are down or refuse us."""

import http.server
import json
import threading
import time
from typing import Literal

import pytest

import promptless as pl
from promptless.lm.base import Request

pytestmark = pytest.mark.integration


def server_lm(base, **kwargs):
    return pl.LM("openai/smollm2", api_base=base, cache=False, **kwargs)


def test_plain_chat_completion(llama_server):
    response = server_lm(llama_server)(Request(messages=({"role": "user", "content": "Say hello."},), max_tokens=16))
    assert response.text.strip()
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


def test_schema_is_enforced_through_the_llama_cpp_dialect(llama_server):
    lm = server_lm(llama_server)
    schema = {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "negative"]}},
        "required": ["sentiment"],
    }
    request = Request(messages=({"role": "user", "content": "Is 'boring film' positive or negative?"},), schema=schema)
    data = json.loads(lm(request).text)
    assert data["sentiment"] in ("positive", "negative")
    assert lm.backend.style == "json_object"  # the server refused json_schema, and we remembered


def test_typed_program_on_the_server_never_fails_to_parse(llama_server):
    lm = server_lm(llama_server, max_tokens=64)
    classify = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)
    count = pl.Predict("question -> answer: int", lm=lm)
    with pl.context(max_parse_retries=0):
        labels = [classify(sentence=s).sentiment for s in ("a delight", "dull and long", "superb acting")]
        number = count(question="How many wheels does a bicycle have?").answer
    assert set(labels) <= {"positive", "negative"}
    assert isinstance(number, int)
    assert Literal


def test_completion_endpoint_with_grammar(llama_server):
    lm = pl.LM("openai/smollm2", api_base=llama_server, model_type="completion", cache=False)
    predict = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)
    with pl.context(max_parse_retries=0):
        assert predict(sentence="a wonderful film").sentiment in ("positive", "negative")


def test_n_is_topped_up_when_the_server_ignores_it(llama_server):
    lm = server_lm(llama_server)
    response = lm(Request(messages=({"role": "user", "content": "A colour?"},), n=3, temperature=1.0, max_tokens=8))
    assert len(response.texts) == 3


def test_server_down_raises_unavailable_within_seconds():
    from tests.integration.conftest import free_port

    lm = pl.LM("openai/x", api_base=f"http://127.0.0.1:{free_port()}/v1", cache=False, num_retries=2)
    started = time.monotonic()
    with pytest.raises(pl.LMUnavailable, match="cannot connect"):
        lm("hello")
    assert time.monotonic() - started < 15


class _Refuse401(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self):
        type(self).hits += 1
        body = b'{"error": {"message": "Incorrect API key provided"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_401_raises_auth_error_at_once():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse401)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lm = pl.LM(
            "openai/gpt-x", api_base=f"http://127.0.0.1:{server.server_port}/v1", api_key="sk-wrong", num_retries=3
        )
        with pytest.raises(pl.LMAuthError, match="401"):
            lm("hello")
        assert _Refuse401.hits == 1
    finally:
        server.shutdown()
