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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptless.adapters.tracker import FieldTracker
from promptless.settings import context, run_in_context

if TYPE_CHECKING:
    from promptless.module import Module

__all__ = ["FieldChunk", "FieldTracker", "FieldValue", "StreamListener", "StreamResponse", "asyncify", "stream"]
__all__ += ["streamify"]


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


# -- DSPy's faces over stream() and acall() ---------------------------------------------------------
@dataclass(frozen=True)
class StreamResponse:
    """DSPy's streamed piece of one listened-to field; the field's last piece has ``is_last_chunk``."""

    predict_name: str
    signature_field_name: str
    chunk: str
    is_last_chunk: bool


class StreamListener:
    """Listen to one output field: of ``predict`` (a predictor of the program), of the predictor named
    ``predict_name``, or, with neither, of every predictor that has the field."""

    def __init__(
        self, signature_field_name: str, predict: Any = None, predict_name: str | None = None, allow_reuse: bool = False
    ) -> None:
        self.signature_field_name = signature_field_name
        self.predict = predict
        self.predict_name = predict_name
        self.allow_reuse = allow_reuse  # accepted for DSPy's sake: a listener here hears every call

    def hears(self, event: FieldChunk | FieldValue, names: dict[int, str]) -> bool:
        if event.field != self.signature_field_name:
            return False
        if self.predict is not None:
            return names.get(id(self.predict)) == event.predictor
        return self.predict_name is None or self.predict_name == event.predictor


def streamify(
    program: Module,
    status_message_provider: Any = None,
    stream_listeners: list[StreamListener] | None = None,
    include_final_prediction_in_output_stream: bool = True,
    is_async_program: bool = False,
    async_streaming: bool = True,
) -> Callable[..., Any]:
    """DSPy's ``streamify``: a function whose call yields ``StreamResponse`` pieces, then the Prediction.

    A thin face over ``stream``: with ``async_streaming`` (DSPy's default) the call returns an async
    generator, else a plain one. Without listeners only the final Prediction comes out (as in DSPy).
    Status messages are not produced (``status_message_provider`` is accepted and ignored).
    """
    listeners = list(stream_listeners or [])

    def run(**inputs: Any) -> Iterator[Any]:
        names = {id(p): name for name, p in program.named_predictors()}
        for event in stream(program, **inputs):
            if isinstance(event, (FieldChunk, FieldValue)):
                if any(listener.hears(event, names) for listener in listeners):
                    last = isinstance(event, FieldValue)
                    yield StreamResponse(event.predictor, event.field, "" if last else event.text, last)
            elif include_final_prediction_in_output_stream:
                yield event

    if not async_streaming:
        return run

    async def arun(**inputs: Any) -> AsyncIterator[Any]:
        import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

        events = run(**inputs)
        done = object()
        while (event := await asyncio.to_thread(next, events, done)) is not done:
            yield event

    return arun


def asyncify(program: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """DSPy's ``asyncify``: ``await asyncify(program)(**inputs)``, a face over ``program.acall``."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        acall = getattr(program, "acall", None)
        if acall is not None:
            return await acall(*args, **kwargs)
        import asyncio  # lazy: asyncio costs ~35 ms of import time; only async callers pay it

        return await asyncio.to_thread(run_in_context(program), *args, **kwargs)

    return run
