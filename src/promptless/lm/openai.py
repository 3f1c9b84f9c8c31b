"""The HTTP backend: any server that speaks the OpenAI-compatible API (OpenAI, vLLM, SGLang, Ollama, llama.cpp).

Structured output has two dialects. OpenAI, vLLM and SGLang take
``response_format={"type": "json_schema", "json_schema": {...}}``; llama.cpp's
Python server takes only ``{"type": "json_object", "schema": ...}`` and answers
the other form with HTTP 422. With ``response_format_style="auto"`` the first
structured call tries ``json_schema`` and, if the server refuses it, falls back
to ``json_object`` and remembers that for the backend's lifetime.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Literal

import httpx

from promptless.lm.base import ModelType, Request, Response, Usage
from promptless.lm.errors import (
    LMAuthError,
    LMBadRequest,
    LMContextOverflow,
    LMError,
    LMNotFound,
    LMRateLimited,
    LMTimeout,
    LMUnavailable,
)

Style = Literal["auto", "json_schema", "json_object"]
_OVERFLOW_HINTS = ("context length", "maximum context", "context window", "too many tokens", "exceeds the context")


class OpenAIBackend:
    supports_schema = True

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
    ) -> None:
        self.model = model
        self.model_type = model_type
        self.api_base = (api_base or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.style: Style = response_format_style
        self._style_lock = threading.Lock()
        self._transport, self._async_transport = transport, async_transport
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.model!r}, api_base={self.api_base!r})"

    # -- sync -----------------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = httpx.Client(
                        headers=self._headers(), timeout=self.timeout, transport=self._transport
                    )
        return self._client

    def complete(self, request: Request) -> Response:
        started = time.perf_counter()
        texts: list[str] = []
        reasons: list[str] = []
        usage = Usage()
        attempt = 0
        while len(texts) < request.n:  # some servers (llama.cpp) ignore n: top up with more calls
            body = self._body(request, request.n - len(texts), attempt)
            data = self._post_structured(request, body)
            new_texts, new_reasons, new_usage = _read_choices(data, self._url(request))
            texts += new_texts
            reasons += new_reasons
            usage = usage + new_usage
            attempt += 1
        return Response(texts[: request.n], usage, reasons[: request.n], time.perf_counter() - started, self.model)

    def _post_structured(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        if request.schema is None or self.style != "auto":
            return self._post(self._url(request), self._with_format(body, request, self.style))
        try:
            data = self._post(self._url(request), self._with_format(body, request, "json_schema"))
        except (LMBadRequest, LMUnavailable) as error:
            if not _refuses_json_schema(error):
                raise
            data = self._post(self._url(request), self._with_format(body, request, "json_object"))
            self._settle("json_object")
            return data
        self._settle("json_schema")
        return data

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = self.client.post(url, json=body)
        except httpx.TimeoutException as error:
            raise LMTimeout(f"{url}: no answer within {self.timeout:.0f}s ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise LMUnavailable(f"{url}: cannot connect ({type(error).__name__}: {error})") from None
        return _checked(reply, url, self.model)

    # -- async ----------------------------------------------------------------------------------
    async def acomplete(self, request: Request) -> Response:
        """The same call without blocking an event loop (one short-lived client per call)."""
        started = time.perf_counter()
        style = self.style if self.style != "auto" else "json_schema"
        body = self._with_format(self._body(request, request.n, 0), request, style)
        async with httpx.AsyncClient(
            headers=self._headers(), timeout=self.timeout, transport=self._async_transport
        ) as client:
            url = self._url(request)
            try:
                reply = await client.post(url, json=body)
                data = _checked(reply, url, self.model)
            except (LMBadRequest, LMUnavailable) as error:
                if request.schema is None or self.style != "auto" or not _refuses_json_schema(error):
                    raise
                reply = await client.post(url, json=self._with_format(body, request, "json_object"))
                data = _checked(reply, url, self.model)
                self._settle("json_object")
            except httpx.TimeoutException:
                raise LMTimeout(f"{url}: no answer within {self.timeout:.0f}s") from None
            except httpx.TransportError as error:
                raise LMUnavailable(f"{url}: cannot connect ({type(error).__name__}: {error})") from None
        texts, reasons, usage = _read_choices(data, url)
        return Response(texts, usage, reasons, time.perf_counter() - started, self.model)

    # -- request building -----------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _url(self, request: Request) -> str:
        return f"{self.api_base}/{'chat/completions' if request.messages is not None else 'completions'}"

    def _body(self, request: Request, n: int, attempt: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.messages is not None:
            body["messages"] = list(request.messages)
        else:
            body["prompt"] = request.prompt
        if n > 1:
            body["n"] = n
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed + attempt
        return body

    def _with_format(self, body: dict[str, Any], request: Request, style: Style) -> dict[str, Any]:
        if request.schema is None:
            return body
        body = dict(body)
        if style == "json_object":  # llama.cpp's dialect; its /completions also takes a GBNF grammar
            if request.prompt is not None and request.grammar:
                body["grammar"] = request.grammar
            else:
                body["response_format"] = {"type": "json_object", "schema": request.schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.schema, "strict": False},
            }
        return body

    def _settle(self, style: Style) -> None:
        with self._style_lock:
            if self.style == "auto":
                self.style = style


def _refuses_json_schema(error: LMError) -> bool:
    """A 4xx, or llama.cpp's 500 naming the field, in answer to ``response_format: json_schema``."""
    text = str(error).lower()
    return isinstance(error, LMBadRequest) or ("response_format" in text or "json_schema" in text)


def _checked(reply: httpx.Response, url: str, model: str) -> dict[str, Any]:
    """The JSON body of a 2xx reply, or the typed error its status means."""
    status = reply.status_code
    if 200 <= status < 300:
        try:
            data = reply.json()
        except ValueError:
            raise LMUnavailable(f"{url}: HTTP {status} with a body that is not JSON: {reply.text[:300]!r}") from None
        if not isinstance(data, dict):
            raise LMUnavailable(f"{url}: HTTP {status} with unexpected JSON: {reply.text[:300]!r}")
        return data
    excerpt = reply.text[:300]
    message = f"{url}: HTTP {status}: {excerpt}"
    error: type[LMError]
    if status in (401, 403):
        error = LMAuthError
    elif status == 404:
        error, message = LMNotFound, f"{url}: HTTP 404 (is the model {model!r} served there?): {excerpt}"
    elif status == 429:
        error = LMRateLimited
    elif status >= 500:
        error = LMUnavailable
    elif any(hint in excerpt.lower() for hint in _OVERFLOW_HINTS):
        error = LMContextOverflow
    else:
        error = LMBadRequest
    raise error(message)


def _read_choices(data: dict[str, Any], url: str) -> tuple[list[str], list[str], Usage]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise LMUnavailable(f"{url}: the reply has no choices: {str(data)[:300]!r}")
    texts, reasons = [], []
    for choice in choices:
        message = choice.get("message") or {}
        texts.append(message.get("content") if "message" in choice else choice.get("text") or "")
        reasons.append(choice.get("finish_reason") or "stop")
    texts = [t or "" for t in texts]
    used = data.get("usage") or {}
    details = used.get("prompt_tokens_details") or {}
    usage = Usage(
        int(used.get("prompt_tokens") or 0),
        int(used.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
        1,
    )
    return texts, reasons, usage
