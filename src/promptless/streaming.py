"""Streaming: ``for event in stream(program, **inputs)`` yields output fields as the LM writes them.

Events, in order, for each predictor call in the program:
``FieldChunk(predictor, field, text)`` as text arrives, then
``FieldValue(predictor, field, value)`` with the parsed, typed value when the
field ends; the last event is the program's result (a Prediction). If the
program raises (a parse error, a tool error that it lets through, an LM
error), the stream ends by raising that error.

The program runs in a worker thread with the caller's settings; Predict sees
the sink in the settings and streams its LM call into it (n=1 calls only).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptless.adapters.tracker import FieldTracker
from promptless.settings import context, run_in_context

if TYPE_CHECKING:
    from promptless.module import Module

__all__ = ["FieldChunk", "FieldTracker", "FieldValue", "stream"]


@dataclass(frozen=True)
class FieldChunk:
    """A piece of an output field's text, as decoded."""

    predictor: str
    field: str
    text: str


@dataclass(frozen=True)
class FieldValue:
    """An output field is complete: its parsed, typed value."""

    predictor: str
    field: str
    value: Any


_DONE = object()


def stream(program: Module, **inputs: Any) -> Iterator[FieldChunk | FieldValue | Any]:
    """Run ``program(**inputs)`` and yield its fields as they are written, then its result."""

    names = {id(p): name for name, p in program.named_predictors()}
    events: queue.Queue[Any] = queue.Queue()

    def sink(event: tuple[Any, str, str, Any]) -> None:
        kind, predictor, field, payload = event
        name = names.get(id(predictor), predictor.signature.signature)
        events.put(FieldChunk(name, field, payload) if kind == "chunk" else FieldValue(name, field, payload))

    def run() -> Any:
        try:
            with context(stream_sink=sink):
                return program(**inputs)
        finally:
            events.put(_DONE)

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_in_context(run))
        while (event := events.get()) is not _DONE:
            yield event
        yield future.result()  # raises the program's error, ending the stream with it
