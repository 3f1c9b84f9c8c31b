"""A DSPy-style ``forward(prompt=, messages=, **kwargs)`` method as a promptless Backend.

DSPy's custom LMs subclass ``BaseLM`` (or ``LM``) and implement ``forward``, returning an
OpenAI-shaped response (``choices[i].message.content``, ``usage``, ``model``). Here that method
becomes the backend of an ``LM``, so the one call pipeline (cache, budget, retries, history,
usage, callbacks) wraps it as it wraps every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from promptless.types import ModelType, Request, Response, Usage


class ForwardBackend:
    """``complete(request)`` by calling ``forward(prompt=..., messages=..., temperature=..., max_tokens=...)``.

    ``forward`` may return an OpenAI-shaped response (objects or dicts), a promptless ``Response``,
    a string, or a list of strings. An ``LMError`` it raises is retried or not as any backend's.
    """

    def __init__(self, forward: Callable[..., Any], model_type: ModelType = "chat") -> None:
        self.forward = forward
        self.model_type = model_type

    def complete(self, request: Request) -> Response:
        kwargs: dict[str, Any] = {"temperature": request.temperature, "max_tokens": request.max_tokens}
        if request.n != 1:
            kwargs["n"] = request.n
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        messages = [dict(m) for m in request.messages] if request.messages is not None else None
        return to_response(self.forward(prompt=request.prompt, messages=messages, **kwargs))


def to_response(out: Any) -> Response:
    """What a DSPy-style ``forward`` returned, as a Response."""
    if isinstance(out, Response):
        return out
    if isinstance(out, str):
        return Response([out], Usage(calls=1), ["stop"])
    if isinstance(out, list) and all(isinstance(t, str) for t in out):
        return Response(list(out), Usage(calls=1), ["stop"] * len(out))
    choices = _get(out, "choices")
    if not choices:
        raise TypeError(
            f"forward() returned {type(out).__name__}: return an OpenAI-shaped response (with .choices), "
            "a string or a list of strings"
        )
    texts, reasons = [], []
    for choice in choices:
        message = _get(choice, "message")
        text = _get(message, "content") if message is not None else _get(choice, "text")
        texts.append(text or "")
        reasons.append(_get(choice, "finish_reason") or "stop")
    usage = _get(out, "usage")
    prompt, completion = (_get(usage, "prompt_tokens") or 0, _get(usage, "completion_tokens") or 0) if usage else (0, 0)
    return Response(texts, Usage(int(prompt), int(completion), 0, 1), reasons, model=str(_get(out, "model") or ""))


def _get(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)
