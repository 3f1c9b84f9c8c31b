"""Test doubles for programs built on promptless. ``ScriptedLM`` is not a model.

It answers from a script so unit tests of a program's control flow run in
milliseconds and deterministically; it goes through the same LM wrapper
(history, usage, retries) as a real backend. Integration tests should use a
real model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any

from promptless.lm.base import LM, ModelType, Request, Response, Usage
from promptless.lm.errors import LMError

Reply = str | dict[str, Any] | LMError | list[float]  # a list answers a request with choices
Script = Iterable[Reply] | Callable[[Request], Reply]


class ScriptExhausted(AssertionError):
    """The program made more LM calls than the script has replies."""


class ScriptedBackend:
    def __init__(self, script: Script, model_type: ModelType, default: Reply | None) -> None:
        self.model_type = model_type
        self._fn = script if callable(script) else None
        self._replies = [] if callable(script) else list(script)
        self._default = default
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.chunk_size = 3
        self._word_counts: dict[str, int] = {}  # per message text: a program's fixed messages recur on every call

    def complete(self, request: Request) -> Response:
        texts = []
        for _ in range(request.n):
            reply = self._next(request)
            if isinstance(reply, LMError):
                raise reply
            texts.append(render_reply(reply, request))
        words = self._prompt_words(request)
        return Response(texts, Usage(words, sum(map(len, map(str.split, texts))), 0, 1), ["stop"] * len(texts))

    def _prompt_words(self, request: Request) -> int:
        """``len(request.text.split())``, the "tokens" of the prompt, without joining and splitting it every call.

        ``request.text`` writes each message as ``[role]`` then its content, so its word count is one per
        message plus the words of each content; the counts of the fixed messages are kept.
        """
        if request.messages is None:
            return len(request.text.split())
        counts, total = self._word_counts, 0
        for message in request.messages:
            content = message["content"]
            words = counts.get(content)
            if words is None:  # a new message (the call's input, usually): count it
                if len(counts) >= 1024:
                    counts.clear()
                words = counts[content] = len(content.split())
            total += 1 + words
        return total

    def can_score(self) -> bool:
        return True

    def score_choices(self, request: Request) -> Response:
        """A reply to a ``Request.choices`` call: a list of log-probabilities, one per choice, in order.

        A text or dict reply scores the choice it renders to at 0 and every other at -10, as a
        model that would answer it greedily puts its mass there; so a script written for
        generation serves scored requests too.
        """
        reply = self._next(request)
        if isinstance(reply, LMError):
            raise reply
        choices = list(request.choices or ())
        if isinstance(reply, (str, dict)):
            reply = _scores_for(reply, request, choices)
        if not isinstance(reply, (list, tuple)) or len(reply) != len(choices):
            raise AssertionError(f"a scored request needs {len(choices)} log-probabilities as its reply, got {reply!r}")
        scores = [float(x) for x in reply]
        best = max(range(len(scores)), key=scores.__getitem__)
        return Response([choices[best]], Usage(len(request.text.split()), 0, 0, 1), ["stop"], logprobs=scores)

    def stream(self, request: Request) -> Generator[str, None, Response]:
        """The reply in pieces of ``chunk_size`` characters, to exercise streaming code."""
        response = self.complete(request)
        text = response.text
        for start in range(0, len(text), self.chunk_size):
            yield text[start : start + self.chunk_size]
        return response

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._fn is not None:
                return self._fn(request)
            if self._replies:
                return self._replies.pop(0)
            if self._default is not None:
                return self._default
        raise ScriptExhausted(f"ScriptedLM has no reply left for call #{len(self.requests)}:\n{request.text[-400:]}")


def _scores_for(reply: str | dict[str, Any], request: Request, choices: list[str]) -> list[float] | str | dict:
    """0 for the choice ``reply`` renders to, -10 for the others; ``reply`` itself if it matches none."""
    rendered = _comparable(render_reply(reply, request))
    scores = [0.0 if _comparable(choice) == rendered else -10.0 for choice in choices]
    return scores if 0.0 in scores else reply


def _comparable(text: str) -> Any:
    """A reply text as a value: parsed JSON when it is JSON, else the stripped text."""
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def render_reply(reply: str | dict[str, Any], request: Request) -> str:
    """A dict of output fields, written the way the adapter in use expects to read it."""
    if isinstance(reply, str):
        return reply
    if request.prompt is None:
        return json.dumps(reply)
    lines = []
    for i, (name, value) in enumerate(reply.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        lines.append(f" {text}" if i == 0 else f"{name.replace('_', ' ').capitalize()}: {text}")
    return "\n".join(lines)


class ScriptedLM(LM):
    """An LM that replies from ``script``: a list of replies, or a function of the Request.

    A reply is raw text, a dict of output fields (rendered for the adapter in use),
    an ``LMError`` instance to raise, or, for a request with ``choices``, a list of
    log-probabilities, one per choice. ``requests`` records every request seen.
    """

    def __init__(
        self,
        script: Script = (),
        *,
        model_type: ModelType = "chat",
        default: Reply | None = None,
        model: str = "scripted/test",
        cache: Any = False,
        num_retries: int = 0,
        **kwargs: Any,
    ) -> None:
        backend = ScriptedBackend(script, model_type, default)
        super().__init__(model, model_type=model_type, cache=cache, num_retries=num_retries, backend=backend, **kwargs)

    @property
    def requests(self) -> list[Request]:
        return self.backend.requests  # type: ignore[attr-defined]

    def worker_recipe(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        """How a Ray worker builds its own copy: the same script function (a list of replies cannot be shared)."""
        backend: ScriptedBackend = self.backend  # type: ignore[assignment]
        if backend._fn is None and backend._replies:
            raise TypeError(
                "a ScriptedLM with a list of replies cannot run on Ray workers (each would replay the whole list); "
                "give it a function of the Request (a module-level function travels)"
            )
        kwargs = {"model_type": backend.model_type, "default": backend._default, "model": self.model}
        kwargs |= {"temperature": self.temperature, "max_tokens": self.max_tokens}
        return ScriptedLM, {"script": backend._fn or (), **kwargs}


DummyLM = ScriptedLM  # the name DSPy users know
