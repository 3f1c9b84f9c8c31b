"""Adapters turn signatures into prompts and LM text back into typed fields."""

import contextlib

from promptless.adapters.base import Adapter
from promptless.adapters.chat import ChatAdapter
from promptless.adapters.completion import CompletionAdapter
from promptless.adapters.json import JSONAdapter
from promptless.adapters.values import ParseError
from promptless.types import History

__all__ = [
    "Adapter",
    "ChatAdapter",
    "CompletionAdapter",
    "History",
    "JSONAdapter",
    "ParseError",
    "default_adapter_for",
]


def default_adapter_for(lm: object) -> Adapter:
    """Base models get plain-text completion prompts; instruct models get chat turns.

    Kept on the LM, so the adapter's memo of rendered demos lives as long as the device.
    """
    adapter = getattr(lm, "_default_adapter", None)
    if adapter is None:
        adapter = CompletionAdapter() if getattr(lm, "model_type", "chat") == "completion" else ChatAdapter()
        with contextlib.suppress(AttributeError):  # an LM-like object that takes no attributes
            lm._default_adapter = adapter  # type: ignore[attr-defined]
    return adapter
