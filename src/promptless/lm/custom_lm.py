"""``BaseLM``: DSPy's base class for a custom LM, a subclass of ``LM`` whose ``forward`` is the backend.

It lives apart from ``LM`` so the call pipeline (promptless.lm.base) stays one job;
turning a ``forward`` reply into a ``Response`` is ``ForwardBackend``'s (promptless.lm.forward).
"""

from __future__ import annotations

from typing import Any

from promptless.lm.base import LM, Backend
from promptless.lm.forward import ForwardBackend
from promptless.types import ModelType

__all__ = ["BaseLM"]


class BaseLM(LM):
    """DSPy's base class for a custom LM: subclass it and implement ``forward``.

    ``forward(prompt=None, messages=None, **kwargs)`` gets the chat messages (or the prompt of a
    completion model) and ``temperature``, ``max_tokens`` (``n``, ``stop``, ``seed`` when set), and
    returns an OpenAI-shaped response (``choices[i].message.content``, ``usage``, ``model``), a string,
    or a list of strings. Everything else comes from ``LM``: the cache (``cache=False`` to turn it off),
    ``history``, usage tracking, callbacks, retries of an ``LMError`` marked transient, budgets.
    """

    def __init__(
        self,
        model: str,
        model_type: ModelType | str = "chat",
        temperature: float | None = 0.0,
        max_tokens: int | None = 1000,
        cache: bool | Any = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, model_type, temperature, max_tokens, cache, **kwargs)

    def forward(self, prompt: str | None = None, messages: list[dict] | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(prompt=None, messages=None, **kwargs)")

    def _build_backend(self) -> Backend:
        return ForwardBackend(self.forward, self._model_type or "chat")
