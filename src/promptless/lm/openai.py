"""The HTTP backend: any server that speaks the OpenAI-compatible API (OpenAI, vLLM, SGLang, Ollama, llama.cpp).

Structured output has two dialects. OpenAI, vLLM and SGLang take ``response_format=
{"type": "json_schema", ...}``. llama-cpp-python's server takes only ``{"type": "json_object",
"schema": ...}`` on /chat/completions and answers the other with HTTP 500 naming
``response_format``; its /completions ignores any ``response_format`` but honours ``grammar``.
So with ``response_format_style="auto"`` a structured chat call tries ``json_schema`` and falls
back to ``json_object`` if refused, and a structured /completions call first asks the chat
endpoint with a one-token probe (llama.cpp refuses it before running the model). The answer
is kept for the backend's lifetime.

A completion model can also score given continuations (``Request.choices``) through
``/completions`` with ``echo``, where the server reports them honestly; a chat model cannot
(see ``openai_choices``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal

from promptless.errors import (
    LMBadRequest,
    LMError,
    LMTimeout,
    LMUnavailable,
)
from promptless.lm.openai_choices import (
    CHAT_CANNOT,
    PROBE,
    Span,
    choice_span,
    echoed_choices,
    probe_verdict,
    scoring_body,
    summed,
)
from promptless.lm.openai_replies import as_int, checked, first_token, read_choices, server_sent_events, usage_of
from promptless.redact import protect_logger, redact, redact_url, register_secret, register_url_secrets
from promptless.types import ModelType, Request, Response, Usage

if TYPE_CHECKING:
    import httpx

Style = Literal["auto", "json_schema", "json_object"]
Reply = dict[str, Any] | LMError
Script = Generator[tuple[str, dict[str, Any]], Reply, Response]  # yields (url, body), is sent the reply


class OpenAIBackend:
    """Talks to ``{api_base}/chat/completions`` or ``/completions``; extra keyword arguments
    (``top_p=``, ``frequency_penalty=``...) are sent with every request, as DSPy does."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        model_type: ModelType = "chat",
        response_format_style: Style = "auto",
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        **params: Any,
    ) -> None:
        if response_format_style not in ("auto", "json_schema", "json_object"):
            raise ValueError(f"response_format_style: auto, json_schema or json_object, not {response_format_style!r}")
        self.model = model
        self.model_type = model_type
        self.api_base = (api_base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        register_secret(self._api_key)  # redacted from every error text, log line and span the library writes
        register_url_secrets(self.api_base)
        self.timeout = timeout
        self.style: Style = response_format_style
        self._detects = response_format_style == "auto"  # a dialect it settled may be settled again
        self.params = params
        self._lock = threading.Lock()
        self._transport, self._async_transport = transport, async_transport
        self._client: httpx.Client | None = None
        self._async_clients: weakref.WeakKeyDictionary[Any, httpx.AsyncClient] = weakref.WeakKeyDictionary()
        self._scoring_checked = False  # has the server's echo been checked (once, by the probe)?
        self._scoring_refusal: str | None = None  # why it cannot score choices, if it cannot
        self._prompt_lists: bool | None = None  # does /completions take a list of prompts? None: not known yet

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBackend({self.model!r}, api_base={redact_url(self.api_base)!r})"

    # -- I/O: a sync and an async driver of the same script ----------------------------------------
    @property
    def client(self) -> httpx.Client:
        """One pooled, thread-safe client per backend, made on first use."""
        if self._client is None:
            import httpx  # lazy: httpx costs ~40 ms of import time, paid only by programs that use a server

            with self._lock:
                if self._client is None:
                    protect_logger("httpx")  # httpx logs each request URL (and its credentials) at INFO
                    headers, timeout = self._headers(), self.timeout
                    self._client = httpx.Client(headers=headers, timeout=timeout, transport=self._transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client of the running event loop (each loop has its own; see ``acomplete``)."""
        import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _async_client(self) -> httpx.AsyncClient:
        """One pooled AsyncClient per event loop (a client cannot move between loops), made on first use."""
        import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

        import httpx  # lazy: httpx costs ~40 ms of import time, paid only by programs that use a server

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None or client.is_closed:
            protect_logger("httpx")
            client = httpx.AsyncClient(headers=self._headers(), timeout=self.timeout, transport=self._async_transport)
            self._async_clients[loop] = client
        return client

    def complete(self, request: Request) -> Response:
        return self._run(self._script(request))

    def _run(self, script: Generator[tuple[str, dict[str, Any]], Reply, Any]) -> Any:
        step = next(script)
        while True:
            try:
                step = script.send(self._post(*step))
            except StopIteration as done:
                return done.value

    # -- scoring choices (Request.choices) through /completions with echo ---------------------------
    def can_score(self) -> bool:
        """Whether ``score_choices`` will take a prompt: a completion model on a server whose echoed
        log-probabilities passed the check (two one-token requests, made once; an unreachable server
        is asked again next time)."""
        try:
            self._check_scoring()
        except LMError:
            return False
        return True

    def score_choices(self, request: Request) -> Response:
        """log P(choice | prompt) for each of ``request.choices``, from the server's echoed token log-probabilities."""
        if request.prompt is None and self.model_type == "completion":
            raise LMBadRequest("a chat request (messages) cannot be scored over HTTP: only /completions echoes prompts")
        self._check_scoring()
        return self._run(self._score_script(request))

    def _check_scoring(self) -> None:
        """Raise why this backend cannot score choices (LMBadRequest), or the error that kept it from finding out."""
        if self.model_type != "completion":
            raise LMBadRequest(CHAT_CANNOT)
        if not self._scoring_checked:
            refusal = self._run(self._probe_script())
            with self._lock:
                self._scoring_refusal, self._scoring_checked = refusal, True
        if self._scoring_refusal is not None:
            raise LMBadRequest(f"{redact(self.api_base)}: {self._scoring_refusal}")

    def _probe_script(self) -> Generator[tuple[str, dict[str, Any]], Reply, str | None]:
        """Generate a token after ``PROBE``, then echo ``PROBE`` + that token: the two log-probabilities must agree."""
        url = f"{self.api_base}/completions"
        body = {**self.params, "model": self.model, "prompt": PROBE, "max_tokens": 1, "temperature": 0, "logprobs": 1}
        generated = yield url, body
        if isinstance(generated, LMError) and (generated.transient or generated.fatal):
            raise generated  # nothing learnt about the server: ask again next time
        if isinstance(generated, LMError):
            return f"the server refuses logprobs on /completions ({generated})"
        token = first_token(generated)
        if token is None:
            return probe_verdict(generated, {})
        echoed = yield url, scoring_body(self.model, self.params, PROBE + token)
        if isinstance(echoed, LMError) and (echoed.transient or echoed.fatal):
            raise echoed
        if isinstance(echoed, LMError):
            return f"the server refuses echo with logprobs on /completions ({echoed})"
        return probe_verdict(generated, echoed)

    def _score_script(self, request: Request) -> Script:
        """One request with the list of prompt + choice texts where the server takes lists, else one per choice."""
        started, usage, model = time.perf_counter(), Usage(), self.model
        prompt, choices = request.prompt or "", list(request.choices or ())
        texts, url = [prompt + choice for choice in choices], f"{self.api_base}/completions"
        replies: list[dict[str, Any]] | None = None
        if len(texts) > 1 and self._prompt_lists is not False:
            reply = yield url, scoring_body(self.model, self.params, texts)
            if isinstance(reply, LMError) and reply.status is None:
                raise reply  # no answer at all (down, timed out): nothing learnt about lists
            if not isinstance(reply, LMError):
                replies = echoed_choices(reply, len(texts))
                usage, model = usage + usage_of(reply), str(reply.get("model") or model)
            with self._lock:  # refused, or answered with another number of choices: one prompt per request
                self._prompt_lists = replies is not None
        if replies is None:  # llama-cpp-python's server answers a list of prompts with HTTP 500
            replies = []
            for text in texts:
                reply = yield url, scoring_body(self.model, self.params, text)
                if isinstance(reply, LMError):
                    raise reply
                found = echoed_choices(reply, 1)
                if found is None:
                    raise LMUnavailable(redact(f"{url}: the reply has not one choice: {str(reply)[:300]!r}"))
                replies.append(found[0])
                usage, model = usage + usage_of(reply), str(reply.get("model") or model)
        where = redact(url)
        spans: list[Span] = [choice_span(c, prompt, t, where) for c, t in zip(replies, texts, strict=True)]
        scores = summed(spans)
        best = max(range(len(scores)), key=scores.__getitem__)
        latency = time.perf_counter() - started
        return Response([choices[best]], usage, ["stop"], latency, model, logprobs=scores)

    async def acomplete(self, request: Request) -> Response:
        """The same call without blocking the event loop."""
        import httpx  # lazy: httpx costs ~40 ms of import time, paid only by programs that use a server

        client = self._async_client()
        script = self._script(request)
        step = next(script)
        while True:
            url, body = step
            try:
                reply: Reply = checked(await client.post(url, json=body), url, self.model)
            except (LMError, httpx.HTTPError) as error:
                reply = self._as_lm_error(url, error)
            try:
                step = script.send(reply)
            except StopIteration as done:
                return done.value

    def stream(self, request: Request) -> Generator[str, None, Response]:
        """Yield text deltas from a ``stream: true`` request (server-sent events); return the whole Response.

        The dialect is the settled one; while unsettled, ``json_schema`` is tried
        first and a refusal falls back to ``json_object``, as for ``complete``.
        """
        started = time.perf_counter()
        url = f"{self.api_base}/{'chat/completions' if request.messages is not None else 'completions'}"
        structured = request.schema is not None or (request.prompt is not None and request.grammar is not None)
        style: Style = self.style if self.style != "auto" or not structured else "json_schema"
        if structured and request.prompt is not None and self.style == "auto":
            style = "json_object"  # llama.cpp's /completions honours only the grammar field
        body = {**self._body(request, 1, 0, style), "stream": True, "stream_options": {"include_usage": True}}
        import httpx  # lazy: httpx costs ~40 ms of import time, paid only by programs that use a server

        try:
            texts, usage, reason = [], Usage(), "stop"
            with self.client.stream("POST", url, json=body) as reply:
                if reply.status_code >= 300:
                    reply.read()
                    checked(reply, url, self.model)
                for event in server_sent_events(reply.iter_lines()):
                    choices = event.get("choices") or [{}]
                    choice = choices[0] if isinstance(choices[0], dict) else {}
                    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                    text = delta.get("content") if request.messages is not None else choice.get("text")
                    reason = str(choice.get("finish_reason") or reason)
                    if isinstance(event.get("usage"), dict):
                        used = event["usage"]
                        usage = Usage(as_int(used.get("prompt_tokens")), as_int(used.get("completion_tokens")), 0, 1)
                    if isinstance(text, str) and text:
                        texts.append(text)
                        yield text
        except LMError as error:
            if style == "json_schema" and self.style == "auto" and _refuses_json_schema(error):
                self._settle("json_object")
                return (yield from self.stream(request))
            raise
        except httpx.HTTPError as error:
            raise self._as_lm_error(url, error) from None
        if structured and self.style == "auto" and request.messages is not None:
            self._settle("json_schema")
        usage = usage if usage.calls else Usage(0, len(texts), 0, 1)
        return Response(["".join(texts)], usage, [reason], time.perf_counter() - started, self.model)

    def _post(self, url: str, body: dict[str, Any]) -> Reply:
        import httpx  # lazy: httpx costs ~40 ms of import time, paid only by programs that use a server

        try:
            return checked(self.client.post(url, json=body), url, self.model)
        except (LMError, httpx.HTTPError) as error:
            return self._as_lm_error(url, error)

    def _as_lm_error(self, url: str, error: LMError | httpx.HTTPError) -> LMError:
        import httpx  # lazy: httpx costs ~40 ms of import time, paid only by programs that use a server

        if isinstance(error, LMError):
            return error
        if isinstance(error, httpx.TimeoutException):
            return LMTimeout(redact(f"{url}: no answer within {self.timeout:g}s ({type(error).__name__})"))
        what = "cannot connect" if isinstance(error, httpx.ConnectError) else "connection failed"
        return LMUnavailable(redact(f"{url}: {what} ({type(error).__name__}: {error})"))

    # -- the script: dialect choice, fallback, topping up n ----------------------------------------
    def _script(self, request: Request) -> Script:
        started, usage, model = time.perf_counter(), Usage(), self.model
        texts: list[str] = []
        reasons: list[str] = []
        url = f"{self.api_base}/{'chat/completions' if request.messages is not None else 'completions'}"
        structured = request.schema is not None or (request.prompt is not None and request.grammar is not None)
        if structured and self.style == "auto" and request.prompt is not None:  # /completions would not tell us
            probe = {"model": self.model, "messages": [{"role": "user", "content": "{}"}], "max_tokens": 1}
            probe["response_format"] = _format("json_schema", {"type": "object"})
            self._settle((yield f"{self.api_base}/chat/completions", probe), probing=True)
        while len(texts) < request.n:  # llama.cpp ignores n: top up with more calls, varying the seed
            guess = structured and self.style == "auto"
            style = "json_schema" if guess else self.style
            reply = yield url, self._body(request, request.n - len(texts), len(texts), style)
            if isinstance(reply, LMError) and structured and not guess and self._detects and _refuses_format(reply):
                # The dialect settled earlier (perhaps on a reply from another server) is refused now: settle again.
                other: Style = "json_object" if style == "json_schema" else "json_schema"
                reply = yield url, self._body(request, request.n - len(texts), len(texts), other)
                with self._lock:
                    self.style = other if not isinstance(reply, LMError) else "auto"
            elif isinstance(reply, LMError) and guess and _refuses_json_schema(reply):
                reply = yield url, self._body(request, request.n - len(texts), len(texts), "json_object")
                if not isinstance(reply, LMError):
                    self._settle("json_object")
            elif guess and request.messages is not None and not isinstance(reply, LMError):
                self._settle("json_schema")  # (a 200 from /completions proves nothing: llama.cpp ignores the field)
            if isinstance(reply, LMError):
                raise reply
            new_texts, new_reasons, new_usage = read_choices(reply, url)
            texts, reasons, usage = texts + new_texts, reasons + new_reasons, usage + new_usage
            model = str(reply.get("model") or model)
        n = request.n
        return Response(texts[:n], usage, reasons[:n], time.perf_counter() - started, model)

    def _settle(self, reply: Reply | Style, probing: bool = False) -> None:
        """Fix the dialect once: a probe refused → json_object; answered or refused otherwise → json_schema."""
        if isinstance(reply, str):
            style: Style = reply
        elif isinstance(reply, LMError) and _refuses_json_schema(reply, strict=probing):
            style = "json_object"
        elif isinstance(reply, LMError) and reply.transient:
            return  # the server is down or busy: ask again next time
        else:
            style = "json_schema"
        with self._lock:
            if self.style == "auto":
                self.style = style

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _body(self, request: Request, n: int, done: int, style: Style) -> dict[str, Any]:
        body: dict[str, Any] = {**self.params, "model": self.model}
        body.update(temperature=request.temperature, max_tokens=request.max_tokens)
        if request.messages is not None:
            body["messages"] = list(request.messages)
        else:
            body["prompt"] = request.prompt
        if n > 1:
            body["n"] = n
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed + done
        if style == "json_object" and request.prompt is not None and request.grammar:
            body["grammar"] = request.grammar  # llama.cpp: its /completions ignores response_format
        elif request.schema is not None and style != "auto":
            body["response_format"] = _format(style, request.schema)
        return body


def _format(style: Style, schema: dict[str, Any]) -> dict[str, Any]:
    if style == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": False}}


def _refuses_json_schema(error: LMError, strict: bool = False) -> bool:
    """Did the server refuse ``response_format: json_schema``? A 4xx bad request (unless ``strict``),
    or any error naming the field (llama.cpp answers HTTP 500 with its validation error)."""
    text = str(error).lower()
    named = "response_format" in text or "json_schema" in text
    return named or (not strict and isinstance(error, LMBadRequest))


def _refuses_format(error: LMError) -> bool:
    """Did the server refuse the structured-output field we sent (either dialect)?"""
    text = str(error).lower()
    return isinstance(error, LMBadRequest) and ("response_format" in text or "json_schema" in text or "schema" in text)
