"""The embedded backend: llama.cpp in-process, through llama-cpp-python.

One ``Llama`` per model file per process, loaded on first use and shared by every
``LM`` that names it. Calls on it are serialised by a lock: there is one context,
and keeping it means llama.cpp reuses the longest common token prefix of the
previous call, which is why adapters put what never changes first.
We do not attach a ``LlamaRAMCache``: for Gemma each entry would copy a ~537 MB
logits buffer.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from promptless.errors import LMBadRequest, LMContextOverflow, ModelNotInstalled
from promptless.lm import llama_log
from promptless.lm.llama_choices import score_continuations
from promptless.lm.models import get_model_info, model_path
from promptless.lm.prefix_tokens import PrefixTokens
from promptless.types import Request, Response, Usage

log = logging.getLogger("promptless.lm.llama")

T = TypeVar("T")
WORKER_PREFIX = "promptless-llama"
_END = object()  # the end of a stream's pieces

# Loading swaps the process's stdout/stderr for /dev/null while llama.cpp talks; two loads at
# once would restore each other's swapped descriptors and silence the process for good.
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Loaded:
    """One loaded model: llama.cpp's handle, the lock over its single context, its prefix-reusing tokenizer,
    and the one thread that runs its decoding.

    Every call decodes on ``worker``, never on the caller's thread: on a busy machine a llama.cpp
    call made from the main thread stalled up to 30x longer than the same call from a worker
    (bench/main_thread.py), and a plain script calls from the main thread. The caller waits, so
    Ctrl-C reaches it at once while the decode finishes on the worker.
    """

    llm: Any
    lock: threading.Lock
    tokens: PrefixTokens
    worker: ThreadPoolExecutor

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        if threading.current_thread().name.startswith(WORKER_PREFIX):
            return fn(*args)  # already on the worker (a nested call): run here, never wait on ourselves
        return self.worker.submit(fn, *args).result()


@functools.cache
def default_threads() -> int:
    """Half the cores (at least 1): more llama.cpp threads than free cores wait on each other.

    Measured on 2 cores with other work running (bench/main_thread.py, docs/benchmarks.md): Gemma
    calls took a median 2.3-8.0 s with 1 thread and 15-19 s with 2; on the quieter machine 0.36-0.38 s
    with 2 and 0.44 s with 1. A user's machine is rarely idle, so the default gives up that 20 % to
    avoid the 2-8x stalls. ``LM("local/...", n_threads=N, n_threads_batch=M)`` overrides it.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def _load(path: str, n_ctx: int, n_threads: int, lora: str | None = None, n_threads_batch: int | None = None) -> Loaded:
    """Load a model (with a LoRA adapter applied, if named) once per process; the lock guards its single context."""
    from llama_cpp import Llama  # lazy: llama-cpp-python loads a native library

    started = time.perf_counter()
    extra = {"lora_path": lora} if lora else {}
    threads = {"n_threads": n_threads, "n_threads_batch": n_threads_batch or n_threads}
    llama_log.silence()  # llama.cpp's own log lines go to logging (shown with -v), never straight to stderr
    llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=512, verbose=False, **threads, **extra)
    log.info("loaded %s in %.2fs", path, time.perf_counter() - started)
    _close_at_exit(llm)

    def tokenize(text: str, add_bos: bool) -> list[int]:
        return llm.tokenize(text.encode(), add_bos=add_bos, special=True)

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=WORKER_PREFIX)
    return Loaded(llm, threading.Lock(), PrefixTokens(tokenize), worker)


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()  # every model loaded here and not yet freed: closed at exit


def _close_at_exit(llm: Any) -> None:
    """Free ``llm`` in an exit hook, while llama-cpp-python still works.

    Left to its ``__del__``, a model still alive at interpreter shutdown (a long process that
    loaded many models or LoRA adapters) may be freed after the library's functions were
    cleared, and prints ``TypeError: 'NoneType' object is not callable`` from ``free_model``.
    Exit hooks run after the worker threads were joined and before modules are torn down.
    """
    if not _OPEN:
        _register_exit_hook()
    _OPEN.add(llm)


@functools.cache
def _register_exit_hook() -> None:
    atexit.register(_close_all)


def _close_all() -> None:
    for llm in list(_OPEN):
        with contextlib.suppress(Exception):  # the process is ending: a model that cannot close is left to the OS
            llm.close()
    _OPEN.clear()


@functools.lru_cache(maxsize=256)
def _grammar(text: str) -> Any:
    from llama_cpp import LlamaGrammar  # lazy: llama-cpp-python loads a native library

    return LlamaGrammar.from_string(text, verbose=False)


@functools.lru_cache(maxsize=256)
def _schema_grammar(schema_json: str) -> Any:
    from llama_cpp import LlamaGrammar  # lazy: llama-cpp-python loads a native library

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


class LlamaBackend:
    """Runs requests on an embedded GGUF model; see ``promptless.lm.models`` for the registry."""

    def __init__(
        self,
        name: str,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        lora: str | None = None,
    ) -> None:
        info = get_model_info(name)
        self.name = name
        self.lora = lora
        self.model_type = info.model_type
        self.n_ctx = n_ctx or info.n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_threads_batch = n_threads_batch or self.n_threads
        self._model: Loaded | None = None

    @property
    def llm(self) -> Any:
        return self._loaded().llm

    def _loaded(self) -> Loaded:
        # Resolved once per backend: locating Gemma checks the SHA-256 of its 241 MB file (~0.14 s).
        if self._model is None:
            with _LOAD_LOCK:
                if self._model is None:
                    if self.lora is not None and not os.path.isfile(self.lora):
                        raise ModelNotInstalled(f"LoRA adapter {self.lora!r} for local/{self.name}: no such file")
                    path = str(model_path(self.name))
                    self._model = _load(path, self.n_ctx, self.n_threads, self.lora, self.n_threads_batch)
        return self._model

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def complete(self, request: Request) -> Response:
        loaded = self._loaded()
        return loaded.run(self._complete, loaded, request)

    def _complete(self, loaded: Loaded, request: Request) -> Response:
        grammar = self._grammar_for(request)
        texts, reasons, usage = [], [], Usage()
        started = time.perf_counter()
        with loaded.lock:
            for i in range(request.n):
                seed = (request.seed or 0) + i if request.n > 1 or request.seed is not None else None
                out = self._run_once(loaded, request, grammar, seed)
                choice = out["choices"][0]
                texts.append(choice.get("text") if "text" in choice else choice["message"].get("content") or "")
                reasons.append(choice.get("finish_reason") or "stop")
                used = out.get("usage", {})
                usage = usage + Usage(used.get("prompt_tokens", 0), used.get("completion_tokens", 0), out["_cached"], 1)
        return Response(texts, usage, reasons, time.perf_counter() - started, f"local/{self.name}")

    def can_score(self) -> bool:
        return True

    def score_choices(self, request: Request) -> Response:
        """Log-probability of each of ``request.choices`` as the continuation of the prompt (no sampling)."""
        loaded = self._loaded()
        return loaded.run(self._score_choices, loaded, request)

    def _score_choices(self, loaded: Loaded, request: Request) -> Response:
        choices = list(request.choices or ())
        llm = loaded.llm
        started = time.perf_counter()
        with loaded.lock:
            prompt = request.prompt if request.prompt is not None else self._chat_prompt(llm, request)
            tokens = loaded.tokens(prompt)
            options = [llm.tokenize(c.encode(), add_bos=False, special=True) for c in choices]
            empty = [c for c, ids in zip(choices, options, strict=True) if not ids]
            if empty:
                raise LMBadRequest(f"choices {empty!r} have no tokens to score")
            longest = len(tokens) + max(len(ids) for ids in options)
            if longest > llm.n_ctx():
                raise LMContextOverflow(
                    f"prompt of {len(tokens)} tokens + the longest choice does not fit local/{self.name}'s "
                    f"context of {llm.n_ctx()} tokens; shorten the inputs or demos"
                )
            cached = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens], tokens)
            scores = score_continuations(llm, tokens, options)
        best = max(range(len(choices)), key=scores.__getitem__)
        usage = Usage(len(tokens), sum(len(ids) for ids in options), cached, 1)
        return Response(
            [choices[best]], usage, ["stop"], time.perf_counter() - started, f"local/{self.name}", logprobs=scores
        )

    def _grammar_for(self, request: Request) -> Any:
        try:
            if request.grammar:
                return _grammar(request.grammar)
            if request.schema:
                return _schema_grammar(json.dumps(request.schema))
        except ValueError as error:
            raise LMBadRequest(f"llama.cpp rejected the output grammar: {error}") from None
        return None

    def stream(self, request: Request) -> Generator[str, None, Response]:
        """Yield the text as llama.cpp decodes it (one completion); return the whole Response.

        The decode runs on the model's worker thread (see ``Loaded``) and hands pieces over a queue.
        """
        loaded = self._loaded()
        if threading.current_thread().name.startswith(WORKER_PREFIX):
            return (yield from self._decode_stream(loaded, request))
        pieces: queue.Queue[Any] = queue.Queue()

        def decode() -> Response:
            try:
                steps = self._decode_stream(loaded, request)
                while True:
                    try:
                        pieces.put(next(steps))
                    except StopIteration as done:
                        return done.value
            finally:
                pieces.put(_END)

        future = loaded.worker.submit(decode)
        while (piece := pieces.get()) is not _END:
            yield piece
        return future.result()  # raises the decode's error, if any

    def _decode_stream(self, loaded: Loaded, request: Request) -> Generator[str, None, Response]:
        llm = loaded.llm
        grammar = self._grammar_for(request)
        started = time.perf_counter()
        texts, reason, produced = [], "stop", 0
        with loaded.lock:
            tokens, sampling, cached = self._prepared(loaded, request, grammar, request.seed)
            for chunk in llm.create_completion(tokens, stream=True, **sampling):
                choice = chunk["choices"][0]
                produced += 1
                reason = choice.get("finish_reason") or reason
                if choice.get("text"):
                    texts.append(choice["text"])
                    yield choice["text"]
        usage = Usage(len(tokens), produced, cached, 1)
        return Response(["".join(texts)], usage, [reason], time.perf_counter() - started, f"local/{self.name}")

    def _run_once(self, loaded: Loaded, request: Request, grammar: Any, seed: int | None) -> dict[str, Any]:
        tokens, sampling, cached = self._prepared(loaded, request, grammar, seed)
        out = loaded.llm.create_completion(tokens, **sampling)
        out["_cached"] = cached
        return out

    def _prepared(
        self, loaded: Loaded, request: Request, grammar: Any, seed: int | None
    ) -> tuple[list[int], dict[str, Any], int]:
        """Prompt tokens, sampling arguments, and how many prompt tokens llama.cpp can reuse."""
        sampling = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop) or None,
            "seed": seed,
            "grammar": grammar,
        }
        llm = loaded.llm
        prompt = request.prompt
        if prompt is None:
            prompt = self._chat_prompt(llm, request)
        tokens = loaded.tokens(prompt)  # the fixed prefix is tokenized once (promptless.lm.prefix_tokens)
        if len(tokens) + request.max_tokens > llm.n_ctx():
            # Fail before evaluating the prompt: shrinking the output budget would cut the answer, and the
            # parse retry would then evaluate the whole prompt again only to overflow.
            raise LMContextOverflow(
                f"prompt of {len(tokens)} tokens + max_tokens={request.max_tokens} does not fit local/{self.name}'s "
                f"context of {llm.n_ctx()} tokens; shorten the inputs or demos, or lower max_tokens"
            )
        cached = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens], tokens)  # what llama.cpp reuses
        return tokens, sampling, cached

    def _chat_prompt(self, llm: Any, request: Request) -> str:
        """Render messages with the model's own chat template, ready for the assistant's turn."""
        return _formatter(llm)(messages=list(request.messages or ())).prompt


@functools.lru_cache(maxsize=8)
def _formatter_for(template: str, eos: str, bos: str) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # lazy: llama-cpp-python loads a native library

    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)


def _formatter(llm: Any) -> Any:
    meta = llm.metadata
    template = meta.get("tokenizer.chat_template")
    if not template:
        raise LMBadRequest("this model has no chat template; prompt it with a completion prompt instead")

    def token(key: str) -> str:
        tid = int(meta.get(key, -1))
        return llm._model.token_get_text(tid) if tid >= 0 else ""

    return _formatter_for(template, token("tokenizer.ggml.eos_token_id"), token("tokenizer.ggml.bos_token_id"))
