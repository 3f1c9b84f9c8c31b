"""The one seam to every backend: ``LM(request) -> Response``.

Backends implement a single method, ``complete(request) -> Response``. Everything
that must behave the same for all of them (cache, retries with backoff, history,
usage accounting) wraps that method once, here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from promptless.callbacks import with_callbacks
from promptless.lm.errors import LMError

log = logging.getLogger("promptless.lm")

ModelType = Literal["chat", "completion"]


@dataclass(frozen=True)
class Request:
    """What one LM call asks for: chat ``messages`` or a completion ``prompt``.

    ``schema`` is the JSON schema the output must follow (servers get it as
    ``response_format``); ``grammar`` is a GBNF grammar for backends that take one
    (llama.cpp), used in preference to the schema. ``rollout_id`` only changes the
    cache key, so a resample at temperature > 0 is not answered from the cache.
    """

    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    schema: dict[str, Any] | None = None
    grammar: str | None = None
    rollout_id: int | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("Request needs exactly one of `messages` or `prompt`")
        if self.n < 1:
            raise ValueError(f"Request.n must be >= 1, got {self.n!r}")

    def cache_key(self, model_id: str) -> str:
        """Stable digest of everything that changes the answer (never secrets)."""
        payload = json.dumps([model_id, vars(self)], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def text(self) -> str:
        """The prompt as one string, for display and token counting."""
        if self.prompt is not None:
            return self.prompt
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages or ())


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.calls + other.calls,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Response:
    """What came back: one text per requested completion, plus accounting."""

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    finish_reasons: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    model: str = ""
    cached: bool = False

    @property
    def text(self) -> str:
        return self.texts[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Response:
        data = dict(data)
        data["usage"] = Usage(**data.get("usage", {}))
        return cls(**data)


class Backend(Protocol):
    """A way to run a request. Raise a subclass of ``LMError`` on failure."""

    model_type: ModelType

    def complete(self, request: Request) -> Response: ...


@dataclass
class HistoryEntry:
    request: Request
    response: Response
    model: str
    timestamp: float
    # Filled by Predict after parsing, for inspect_history (None for a call made outside Predict):
    signature: str | None = None
    demos: list[Any] | None = None
    inputs: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None  # the parsed fields of each completion


class LM:
    """A language model as a device: ``LM("local/gemma-3-270m")``, ``LM("openai/gpt-4o-mini")``.

    ``model`` picks the backend by prefix: ``local/`` runs in-process through
    llama.cpp, ``openai/`` (or any name with ``api_base=``) speaks the
    OpenAI-compatible HTTP API. Defaults for sampling (``temperature``,
    ``max_tokens``) apply where a request does not override them.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        model_type: ModelType | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        cache: bool | Any = True,
        num_retries: int = 3,
        timeout: float = 60.0,
        history_size: int = 200,
        backend: Backend | None = None,
        callbacks: Sequence[Any] = (),
        **backend_kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"LM(model=) needs a model name such as 'local/gemma-3-270m', got {model!r}")
        self.model = model
        self.api_base = api_base
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.num_retries = num_retries
        self.timeout = timeout
        self.history: deque[HistoryEntry] = deque(maxlen=history_size)
        self._api_key = api_key
        self._backend_kwargs = backend_kwargs
        self._backend = backend
        self._backend_lock = threading.Lock()
        self._model_type = model_type
        self._cache = _make_cache(cache)
        self.callbacks = tuple(callbacks)  # told of this LM's calls only, after those in force

    # -- backend -----------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The backend, built on first use so that constructing an LM is free."""
        if self._backend is None:
            with self._backend_lock:
                if self._backend is None:
                    self._backend = self._build_backend()
        return self._backend

    def _build_backend(self) -> Backend:
        if self.model.startswith("local/"):
            from promptless.lm.llama import LlamaBackend

            return LlamaBackend(self.model.removeprefix("local/"), **self._backend_kwargs)
        if self.model.startswith("openai/") or self.api_base:
            from promptless.lm.openai import OpenAIBackend

            return OpenAIBackend(
                self.model.split("/", 1)[1] if "/" in self.model else self.model,
                api_base=self.api_base,
                api_key=self._api_key,
                timeout=self.timeout,
                model_type=self._model_type or "chat",
                **self._backend_kwargs,
            )
        raise ValueError(
            f"LM(model={self.model!r}): unknown provider; use 'local/<name>' for the embedded "
            "models or 'openai/<name>' (with api_base= for your own server)"
        )

    @property
    def model_type(self) -> ModelType:
        """'chat' for instruct models, 'completion' for base models; picks the default adapter."""
        if self._model_type is not None:
            return self._model_type
        if self.model.startswith("local/"):
            from promptless.lm.models import get_model_info

            return get_model_info(self.model.removeprefix("local/")).model_type
        return self.backend.model_type

    # -- calling -------------------------------------------------------------------
    def __call__(
        self, request: Request | str | None = None, *, messages: list[dict] | None = None, **kwargs: Any
    ) -> Response | list[str]:
        """Run a ``Request`` and return a ``Response``.

        For code ported from DSPy, ``lm("text")`` and ``lm(messages=[...])`` also
        work and return the list of completion texts.
        """
        if isinstance(request, Request):
            return self.complete(request)
        if request is None and messages is None:
            raise TypeError("LM() needs a Request, a prompt string or messages=[...]")
        kwargs.setdefault("temperature", self.temperature)
        kwargs.setdefault("max_tokens", self.max_tokens)
        if messages is not None:
            req = Request(messages=tuple(messages), **kwargs)
        elif self.model_type == "chat":
            req = Request(messages=({"role": "user", "content": request},), **kwargs)
        else:
            req = Request(prompt=request, **kwargs)
        return self.complete(req).texts

    @with_callbacks("lm")
    def complete(self, request: Request) -> Response:
        """Answer from the cache, or run the backend with retries; record history."""
        key = request.cache_key(self.model) if self._cache is not None else None
        response = self._cache_get(key)
        if response is None:
            budget = _charge_budget()
            response = self._call_with_retries(request)
            _spend(budget, response)
            self._cache_put(key, response)
        self._record(request, response)
        return response

    @with_callbacks("lm")
    def stream(self, request: Request) -> Generator[str, None, Response]:
        """Yield the text as it is decoded, then return the Response (``yield from`` gets it).

        A cache hit yields its whole text at once. A backend without streaming
        yields its whole text when done. Transient errors are retried only
        before the first piece of text; later they end the stream.
        """
        if request.n != 1:
            raise ValueError(f"streaming needs n=1, got n={request.n}")
        key = request.cache_key(self.model) if self._cache is not None else None
        response = self._cache_get(key)
        if response is None:
            budget = _charge_budget()
            response = yield from self._stream_with_retries(request)
            _spend(budget, response)
            self._cache_put(key, response)
        else:
            yield response.text
        self._record(request, response)
        return response

    def _stream_with_retries(self, request: Request) -> Generator[str, None, Response]:
        backend_stream = getattr(self.backend, "stream", None)
        if backend_stream is None:
            response = self._call_with_retries(request)
            yield response.text
            return response
        attempt = 0
        while True:
            started, yielded = time.perf_counter(), False
            try:
                pieces = backend_stream(request)
                while True:
                    try:
                        piece = next(pieces)
                    except StopIteration as done:
                        response = done.value
                        break
                    yielded = True
                    yield piece
            except LMError as error:
                if yielded or not error.transient or attempt >= self.num_retries:
                    raise
                time.sleep(min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2))
                attempt += 1
                continue
            response.latency_s = response.latency_s or time.perf_counter() - started
            response.model = response.model or self.model
            return response

    @with_callbacks("lm")
    async def acomplete(self, request: Request) -> Response:
        """``complete`` for an event loop: HTTP backends are awaited, in-process ones run in a worker thread."""
        key = request.cache_key(self.model) if self._cache is not None else None
        response = self._cache_get(key)
        if response is None:
            budget = _charge_budget()
            response = await self._acall_with_retries(request)
            _spend(budget, response)
            self._cache_put(key, response)
        self._record(request, response)
        return response

    async def _acall_with_retries(self, request: Request) -> Response:
        import asyncio

        backend = self.backend
        native = getattr(backend, "acomplete", None)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                if native is not None:
                    response = await native(request)
                else:
                    response = await asyncio.to_thread(backend.complete, request)
            except LMError as error:
                if not error.transient or attempt >= self.num_retries:
                    raise
                delay = min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
                log.warning("%s: %s; retry %d/%d in %.1fs", self.model, error, attempt + 1, self.num_retries, delay)
                await asyncio.sleep(delay)
                attempt += 1
                continue
            response.latency_s = response.latency_s or time.perf_counter() - started
            response.model = response.model or self.model
            return response

    def _record(self, request: Request, response: Response) -> None:
        """History and usage: once per call, whichever way the call was made."""
        from promptless.settings import current

        entry = HistoryEntry(request, response, self.model, time.time())
        self.history.append(entry)
        response._history_entry = entry  # type: ignore[attr-defined]  # not a field: never cached or compared
        tracker = current().usage_tracker
        if tracker is not None:
            tracker.add(self.model, response)

    def _cache_get(self, key: str | None) -> Response | None:
        if key is None:
            return None
        hit = self._cache.get(key)
        if hit is None:
            return None
        response = Response.from_dict(hit)
        response.cached = True
        return response

    def _cache_put(self, key: str | None, response: Response) -> None:
        if key is not None:
            self._cache.put(key, response.to_dict())

    def _call_with_retries(self, request: Request) -> Response:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = self.backend.complete(request)
            except LMError as error:
                if not error.transient or attempt >= self.num_retries:
                    raise
                delay = min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2)
                log.warning("%s: %s; retry %d/%d in %.1fs", self.model, error, attempt + 1, self.num_retries, delay)
                time.sleep(delay)
                attempt += 1
                continue
            response.latency_s = response.latency_s or time.perf_counter() - started
            response.model = response.model or self.model
            return response

    # -- conveniences ----------------------------------------------------------------
    def copy(self, **changes: Any) -> LM:
        """A new LM with some settings changed, sharing this one's backend and cache."""
        clone = LM.__new__(LM)
        clone.__dict__.update(self.__dict__)
        clone.history = deque(maxlen=self.history.maxlen)
        for name, value in changes.items():
            if not hasattr(clone, name):
                raise TypeError(f"LM.copy() got an unknown setting {name!r}")
            setattr(clone, name, value)
        return clone

    def settings(self) -> dict[str, Any]:
        """What a saved program records about its LM: never the API key."""
        out = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.api_base:
            out["api_base"] = self.api_base
        return out

    def __deepcopy__(self, memo: dict) -> LM:
        return self  # an LM is a device shared by copies of a program, not state

    def __repr__(self) -> str:
        return f"LM({self.model!r})"


def history_entry(response: Response) -> HistoryEntry | None:
    """The history entry this call recorded (for Predict to annotate), or None for a response never recorded."""
    return getattr(response, "_history_entry", None)


def _charge_budget() -> Any:
    """Reserve a call on the budget in force (if any) before a backend is asked."""
    from promptless.settings import current

    budget = current().budget
    if budget is not None:
        budget.charge_call()
    return budget


def _spend(budget: Any, response: Response) -> None:
    if budget is not None:
        budget.spend(response)


def _make_cache(cache: bool | Any) -> Any:
    if cache is True:
        from promptless.lm.cache import Cache

        return Cache()
    if cache is False or cache is None:
        return None
    return cache
