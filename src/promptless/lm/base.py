"""The one seam to every backend: ``LM(request) -> Response``.

Backends implement a single method, ``complete(request) -> Response`` (the
``Backend`` protocol); a backend that can also stream or be awaited says so by
implementing ``StreamingBackend`` or ``AsyncBackend``. Everything that must behave
the same for all of them (cache, budget, retries with backoff, history, usage)
wraps that method once, here: one pipeline, where sync, async and streaming calls
differ only in the innermost call.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from promptless.callbacks import with_callbacks
from promptless.errors import LMBadRequest, LMError
from promptless.lm.cache import Cache
from promptless.lm.cache_identity import endpoint_identity, file_digest
from promptless.lm.forward import ForwardBackend
from promptless.lm.llama import LlamaBackend
from promptless.lm.models import get_model_info
from promptless.lm.openai import OpenAIBackend
from promptless.lm.retry import Backoff
from promptless.redact import redact, redact_url
from promptless.settings import current
from promptless.types import HistoryEntry, ModelType, Request, Response, Usage

__all__ = ["LM", "AsyncBackend", "Backend", "ChoiceScoringBackend", "HistoryEntry", "ModelType", "Request", "Response"]
__all__ += ["StreamingBackend"]
__all__ += ["Usage", "history_entry"]

log = logging.getLogger("promptless.lm")


@runtime_checkable
class Backend(Protocol):
    """A way to run a request. Raise a subclass of ``LMError`` on failure."""

    model_type: ModelType

    def complete(self, request: Request) -> Response: ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that yields text pieces as they are decoded and returns the whole Response."""

    def stream(self, request: Request) -> Generator[str, None, Response]: ...


@runtime_checkable
class ChoiceScoringBackend(Backend, Protocol):
    """A backend that can score given continuations of a prompt (``Request.choices``) by their log-probability.

    ``can_score()`` says whether it will now (an HTTP backend only for a completion model on a
    server whose echoed log-probabilities pass its check); ``score_choices`` raises LMBadRequest saying why not.
    """

    def can_score(self) -> bool: ...

    def score_choices(self, request: Request) -> Response: ...


@runtime_checkable
class AsyncBackend(Backend, Protocol):
    """A backend with a native coroutine (HTTP); others are awaited in a worker thread."""

    async def acomplete(self, request: Request) -> Response: ...


class LM:
    """A language model as a device: ``LM("local/gemma-3-270m")``, ``LM("openai/gpt-4o-mini")``.

    ``model`` picks the backend by prefix: ``local/`` runs in-process through
    llama.cpp, ``openai/`` (or any name with ``api_base=``) speaks the
    OpenAI-compatible HTTP API. Defaults for sampling (``temperature``,
    ``max_tokens``) apply where a request does not override them. ``lora=`` names a
    LoRA adapter file (GGUF) for an embedded model; the cache keeps its answers apart.
    """

    def __init__(
        self,
        model: str,
        model_type: ModelType | str | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = 512,
        cache: bool | Any = True,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        num_retries: int = 3,
        timeout: float = 60.0,
        history_size: int = 200,
        backend: Backend | None = None,
        callbacks: Sequence[Any] = (),
        lora: str | Path | None = None,
        backoff: Backoff | None = None,
        **backend_kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"LM(model=) needs a model name such as 'local/gemma-3-270m', got {model!r}")
        if lora is not None and not model.startswith("local/"):
            raise ValueError(f"LM(lora=) needs an embedded model ('local/...'), got model={model!r}")
        model_type = DSPY_MODEL_TYPES.get(model_type, model_type)  # type: ignore[arg-type]
        if model_type not in (None, "chat", "completion"):
            raise ValueError(f"LM(model_type=) is 'chat' or 'completion' (DSPy's 'text'), got {model_type!r}")
        self.model = model
        self.api_base = api_base
        self.temperature = 0.0 if temperature is None else temperature  # DSPy's None: the default
        self.max_tokens = 512 if max_tokens is None else max_tokens
        self.timeout = timeout
        self.lora = str(lora) if lora is not None else None
        self.backoff = backoff or Backoff(retries=num_retries)
        self.history: deque[HistoryEntry] = deque(maxlen=history_size)
        self._api_key = api_key
        self._backend_kwargs = backend_kwargs
        self._backend = backend
        self._backend_lock = threading.Lock()
        self._model_type = model_type
        self._cache = _make_cache(cache)
        self._cache_id: str | None = None
        self.callbacks = tuple(callbacks)  # told of this LM's calls only, after those in force

    @property
    def num_retries(self) -> int:
        return self.backoff.retries

    @num_retries.setter
    def num_retries(self, value: int) -> None:
        self.backoff = dataclasses.replace(self.backoff, retries=value)

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
        if type(self).forward is not LM.forward:  # a DSPy-style subclass: its forward() is the backend
            return ForwardBackend(self.forward, self._model_type or "chat")
        if self.model.startswith("local/"):
            extra = {"lora": self.lora} if self.lora else {}
            return LlamaBackend(self.model.removeprefix("local/"), **extra, **self._backend_kwargs)
        if self.model.startswith("openai/") or self.api_base:
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
            return get_model_info(self.model.removeprefix("local/")).model_type
        return self.backend.model_type

    @property
    def cache_id(self) -> str:
        """What the cache keys this LM's answers by: the model, the endpoint (no credentials), the LoRA file."""
        if self._cache_id is None:
            parts = [self.model]
            if self.api_base:
                parts.append("@" + endpoint_identity(self.api_base))
            if self.lora:
                parts.append("+lora:" + file_digest(self.lora))
            self._cache_id = "".join(parts)
        return self._cache_id

    def forward(self, prompt: str | None = None, messages: list[dict] | None = None, **kwargs: Any) -> Any:
        """Override in a subclass, as in DSPy, to make a custom LM (see ``BaseLM``); the base LM uses its backend."""
        raise NotImplementedError("LM.forward() is for subclasses; call the LM (or lm.complete(request)) instead")

    @property
    def kwargs(self) -> dict[str, Any]:
        """DSPy's ``lm.kwargs``: the default sampling settings."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

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
        key, response = self._lookup(request) if self._cache is not None else (None, None)
        if response is None:
            budget = _charge_budget()
            backend = self._backend or self.backend
            call = self._scorer() if request.choices is not None else backend.complete
            for attempt in itertools.count():
                started = time.perf_counter()
                try:
                    response = call(request)
                    break
                except LMError as error:
                    self.backoff.sleep(self._retry_delay(error, attempt))
            response = self._store(key, response, started, budget)
        return self._record(request, response)

    @with_callbacks("lm")
    async def acomplete(self, request: Request) -> Response:
        """``complete`` for an event loop: HTTP backends are awaited, in-process ones run in a worker thread."""
        key, response = self._lookup(request)
        if response is None:
            budget = _charge_budget()
            backend = self.backend
            call: Callable[[Request], Awaitable[Response]]
            if request.choices is not None:
                call = _in_thread(self._scorer())
            elif isinstance(backend, AsyncBackend):
                call = backend.acomplete
            else:
                call = _in_thread(backend.complete)
            for attempt in itertools.count():
                started = time.perf_counter()
                try:
                    response = await call(request)
                    break
                except LMError as error:
                    await self.backoff.asleep(self._retry_delay(error, attempt))
            response = self._store(key, response, started, budget)
        return self._record(request, response)

    @with_callbacks("lm")
    def stream(self, request: Request) -> Generator[str, None, Response]:
        """Yield the text as it is decoded, then return the Response (``yield from`` gets it).

        A cache hit yields its whole text at once. A backend without streaming
        yields its whole text when done. Transient errors are retried only
        before the first piece of text; later they end the stream.
        """
        if request.n != 1:
            raise ValueError(f"streaming needs n=1, got n={request.n}")
        if request.choices is not None:
            raise ValueError("a request with choices is scored, not streamed; call the LM instead")
        key, response = self._lookup(request)
        if response is not None:
            yield response.text
            return self._record(request, response)
        budget = _charge_budget()
        backend = self.backend
        for attempt in itertools.count():
            started, yielded = time.perf_counter(), False
            try:
                if not isinstance(backend, StreamingBackend):
                    response = backend.complete(request)
                    yield response.text
                    break
                pieces = backend.stream(request)
                while True:
                    try:
                        piece = next(pieces)
                    except StopIteration as done:
                        response = done.value
                        break
                    yielded = True
                    yield piece
                break
            except LMError as error:
                if yielded:
                    raise
                self.backoff.sleep(self._retry_delay(error, attempt))
        response = self._store(key, response, started, budget)
        return self._record(request, response)

    @property
    def scores_choices(self) -> bool:
        """Whether this LM can score ``Request.choices``: the embedded backend can; an HTTP server for a
        completion model if its /completions echoes honest log-probabilities (checked once); a chat model cannot."""
        backend = self.backend
        return isinstance(backend, ChoiceScoringBackend) and backend.can_score()

    def _scorer(self) -> Callable[[Request], Response]:
        backend = self.backend
        if not isinstance(backend, ChoiceScoringBackend):
            raise LMBadRequest(
                f"{self.model}: this backend cannot score choices by log-probability (Request.choices); "
                "the embedded models can, or decode the label greedily instead"
            )
        return backend.score_choices

    def forget(self, request: Request) -> None:
        """Drop ``request``'s cached answer: a reply no adapter could read must not be replayed from the cache."""
        if self._cache is not None and hasattr(self._cache, "discard"):
            self._cache.discard(request.cache_key(self.cache_id))

    # -- the pipeline's shared steps ------------------------------------------------
    def _lookup(self, request: Request) -> tuple[str | None, Response | None]:
        """The cache key for this request (None without a cache) and the cached Response, if any."""
        if self._cache is None:
            return None, None
        key = request.cache_key(self.cache_id)
        hit = self._cache.get(key)
        if hit is None:
            return key, None
        response = Response.from_dict(hit)
        response.cached = True
        return key, response

    def _retry_delay(self, error: LMError, attempt: int) -> float:
        """Seconds to wait before retrying ``error``; raises it when it must not be retried."""
        delay = self.backoff.delay(error, attempt)
        if delay is None:
            raise error
        secrets = (self._api_key,) if self._api_key else ()  # a key a server echoes never reaches the log
        message = redact(error, secrets)
        log.warning("%s: %s; retry %d/%d in %.1fs", self.model, message, attempt + 1, self.backoff.retries, delay)
        return delay

    def _store(self, key: str | None, response: Response, started: float, budget: Any) -> Response:
        """Stamp a fresh Response, charge its tokens to the budget and cache it."""
        response.latency_s = response.latency_s or time.perf_counter() - started
        response.model = response.model or self.model
        if budget is not None:
            budget.spend(response)
        if key is not None:
            self._cache.put(key, response.to_dict())
        return response

    def _record(self, request: Request, response: Response) -> Response:
        """History and usage: once per call, whichever way the call was made."""
        entry = HistoryEntry(request, response, self.model, time.time())
        self.history.append(entry)
        response.history = entry
        tracker = current().usage_tracker
        if tracker is not None:
            tracker.add(self.model, response)
        return response

    # -- conveniences ----------------------------------------------------------------
    def copy(self, **changes: Any) -> LM:
        """A new LM with some settings changed, sharing this one's backend and cache."""
        clone = type(self).__new__(type(self))  # a subclass (BaseLM, ScriptedLM) stays itself
        clone.__dict__.update(self.__dict__)
        clone.history = deque(maxlen=self.history.maxlen)
        for name, value in changes.items():
            if not hasattr(clone, name):
                raise TypeError(f"LM.copy() got an unknown setting {name!r}")
            setattr(clone, name, value)
        if changes.keys() & {"model", "api_base", "lora"}:
            clone._cache_id = None
        return clone

    def settings(self) -> dict[str, Any]:
        """What a saved program records about its LM: a description, never the API key or URL credentials."""
        out: dict[str, Any] = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.api_base:
            out["api_base"] = redact_url(self.api_base)
        if self.lora:
            out["lora"] = self.lora
        return out

    def __deepcopy__(self, memo: dict) -> LM:
        return self  # an LM is a device shared by copies of a program, not state

    def __repr__(self) -> str:
        return f"LM({self.model!r})"


DSPY_MODEL_TYPES = {"text": "completion", "responses": "chat"}


def history_entry(response: Response) -> HistoryEntry | None:
    """The history entry this call recorded (for Predict to annotate), or None for a response never recorded."""
    return response.history


def _in_thread(call: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

        return await asyncio.to_thread(call, request)

    return run


def _charge_budget() -> Any:
    """Reserve a call on the budget in force (if any) before a backend is asked."""
    budget = current().budget
    if budget is not None:
        budget.charge_call()
    return budget


def _make_cache(cache: bool | Any) -> Any:
    if cache is True:
        return Cache()
    if cache is False or cache is None:
        return None
    return cache
