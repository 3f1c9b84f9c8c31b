"""The OpenAI-compatible backend against a real llama.cpp server, and against servers that are down or refuse us."""

import asyncio
import http.server
import json
import threading
import time

import pytest

from promptless.lm.base import LM, Request
from promptless.lm.errors import LMAuthError, LMContextOverflow, LMUnavailable
from promptless.lm.openai import OpenAIBackend
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}


def server_lm(base, **kwargs):
    return LM("openai/smollm2", api_base=base, cache=False, **kwargs)


def ask(text, **kwargs):
    return Request(messages=({"role": "user", "content": text},), **kwargs)


def test_plain_chat_completion(llama_server):
    response = server_lm(llama_server)(ask("Say hello.", max_tokens=16))
    assert response.text.strip() and response.finish_reasons
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


def test_schema_is_enforced_through_the_llama_cpp_dialect(llama_server):
    lm = server_lm(llama_server)
    for film in ("boring film", "a masterpiece"):
        data = json.loads(lm(ask(f"Is '{film}' positive or negative?", schema=SENTIMENT, max_tokens=32)).text)
        assert data["sentiment"] in ("positive", "negative")
    assert lm.backend.style == "json_object"  # the server refused json_schema, and we remembered


def test_completion_endpoint_gets_the_grammar(llama_server):
    lm = LM("openai/smollm2", api_base=llama_server, model_type="completion", cache=False)
    grammar = 'root ::= "positive" | "negative"'
    response = lm(Request(prompt="Review: a wonderful film.\nSentiment:", grammar=grammar, max_tokens=8))
    assert response.text.strip() in ("positive", "negative")
    assert lm.backend.style == "json_object"  # learnt from the one-token probe of the chat endpoint


def test_typed_program_on_the_server_never_fails_to_parse(llama_server):
    import promptless as pl

    lm = server_lm(llama_server, max_tokens=64)
    classify = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)
    count = pl.Predict("question -> answer: int", lm=lm)
    with pl.context(max_parse_retries=0):
        labels = [classify(sentence=s).sentiment for s in ("a delight", "dull and long", "superb acting")]
        number = count(question="How many wheels does a bicycle have?").answer
    assert set(labels) <= {"positive", "negative"}
    assert isinstance(number, int)


def test_n_is_topped_up_when_the_server_ignores_it(llama_server):
    response = server_lm(llama_server)(ask("A colour?", n=3, temperature=1.0, max_tokens=8, seed=7))
    assert len(response.texts) == 3 and response.usage.calls == 3


def test_async_call(llama_server):
    backend = OpenAIBackend("smollm2", api_base=llama_server)
    response = asyncio.run(backend.acomplete(ask("Is 'dull' positive or negative?", schema=SENTIMENT)))
    assert json.loads(response.text)["sentiment"] in ("positive", "negative")


def test_context_overflow_is_not_retried(llama_server):
    with pytest.raises(LMContextOverflow, match="maximum context length"):
        server_lm(llama_server)(ask("word " * 3000, max_tokens=8))


def test_server_down_raises_unavailable_within_seconds():
    lm = LM("openai/x", api_base=f"http://127.0.0.1:{free_port()}/v1", cache=False, num_retries=2)
    started = time.monotonic()
    with pytest.raises(LMUnavailable, match="cannot connect"):
        lm("hello")
    assert time.monotonic() - started < 15


def test_401_raises_auth_error_at_once():
    hits = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            body = b'{"error": {"message": "Incorrect API key provided"}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lm = LM("openai/gpt-x", api_base=f"http://127.0.0.1:{server.server_port}/v1", api_key="sk-wrong", cache=False)
        with pytest.raises(LMAuthError, match=r"401.*Incorrect API key"):
            lm("hello")
        assert hits == ["/v1/chat/completions"]
    finally:
        server.shutdown()
        server.server_close()
