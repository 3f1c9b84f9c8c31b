"""OpenTelemetry export: a span per module call, LM call, tool call, evaluation and compile.

``configure(callbacks=[OpenTelemetryCallback()])`` sends spans to the global tracer
provider (or pass ``tracer_provider=``). LM and tool spans carry the OpenTelemetry
GenAI semantic-convention attributes (``gen_ai.*``), so any GenAI-aware backend
reads them: span name ``"{gen_ai.operation.name} {gen_ai.request.model}"``, e.g.
``"chat gpt-4o-mini"``; kind CLIENT. A call answered from promptless' own cache
reports 0 tokens and ``promptless.cache_hit=true``, so summing ``gen_ai.usage.*``
counts what was really spent. Module, evaluate and compile spans use
``promptless.*`` attributes only.

Parenting follows the calls: a span becomes the current OpenTelemetry context while
its call runs, and that context lives in a ContextVar, so it follows the work into
Evaluate's and the optimizers' worker threads (they run in a copy of the caller's
context). Prompts, outputs and tool arguments are recorded only with
``capture_content=True`` (the convention makes them opt-in: they may hold personal data).

Needs the ``otel`` extra (``pip install 'promptless[otel]'``); imported only when
the callback is constructed.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Mapping
from typing import Any

from promptless._version import __version__
from promptless.callbacks import BaseCallback
from promptless.cost import call_cost
from promptless.redact import redact
from promptless.types import Usage

CONTENT_CAP = 8_000  # characters of captured content per attribute
PROVIDERS = {"local": "llama_cpp"}  # LM name prefix -> gen_ai.provider.name, where the prefix is not the provider


class OpenTelemetryCallback(BaseCallback):
    """Emit OpenTelemetry spans for promptless calls; see the module docstring for what each span holds."""

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError:
            raise ImportError(
                "OpenTelemetryCallback needs OpenTelemetry: pip install 'promptless[otel]' (opentelemetry-sdk>=1.25)"
            ) from None
        self._otel_context = context
        self._trace = trace
        self._tracer = trace.get_tracer("promptless", __version__, tracer_provider=tracer_provider)
        self.capture_content = capture_content
        self._open: dict[str, tuple[Any, Any, str | None]] = {}  # call_id -> (span, context token, LM name)
        self._lock = threading.Lock()

    # -- span bookkeeping ---------------------------------------------------------------------------------
    def _start(self, call_id: str, name: str, attributes: Mapping[str, Any], *, lm: str | None = None) -> None:
        kind = self._trace.SpanKind.CLIENT if lm is not None else self._trace.SpanKind.INTERNAL
        span = self._tracer.start_span(name, kind=kind, attributes=_clean(attributes))
        token = self._otel_context.attach(self._trace.set_span_in_context(span))
        with self._lock:
            self._open[call_id] = (span, token, lm)

    def _lm_of(self, call_id: str) -> str | None:
        with self._lock:
            entry = self._open.get(call_id)
        return entry[2] if entry is not None else None

    def _end(self, call_id: str, exception: BaseException | None, attributes: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            entry = self._open.pop(call_id, None)
        if entry is None:
            return
        span, token, _ = entry
        self._otel_context.detach(token)
        span.set_attributes(_clean(attributes or {}))
        if exception is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", type(exception).__qualname__)
            span.record_exception(exception, attributes=_exception_attributes(exception))
            span.set_status(Status(StatusCode.ERROR, redact(f"{type(exception).__name__}: {exception}")[:500]))
        span.end()

    def _content(self, value: Any) -> str | None:
        if not self.capture_content:
            return None
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=_plain)
        return text[:CONTENT_CAP]

    # -- modules -------------------------------------------------------------------------------------------
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        signature = getattr(getattr(instance, "signature", None), "signature", None)
        attributes = {
            "promptless.module": type(instance).__qualname__,
            "promptless.signature": signature if isinstance(signature, str) else None,
            "promptless.inputs": self._content(inputs),
        }
        self._start(call_id, type(instance).__qualname__, attributes)

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        content = outputs.toDict() if hasattr(outputs, "toDict") else outputs
        self._end(call_id, exception, {"promptless.outputs": self._content(content) if outputs is not None else None})

    # -- LM calls --------------------------------------------------------------------------------------------
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        request = inputs["request"]
        model = getattr(instance, "model", "unknown")
        operation = "chat" if request.messages is not None else "text_completion"
        requested = model.split("/", 1)[1] if "/" in model else model
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(model, getattr(instance, "api_base", None)),
            "gen_ai.request.model": requested,
            "gen_ai.request.temperature": request.temperature,
            "gen_ai.request.max_tokens": request.max_tokens,
            "gen_ai.request.seed": request.seed,
            "gen_ai.request.choice.count": request.n if request.n != 1 else None,
            "gen_ai.request.stop_sequences": list(request.stop) or None,
            "gen_ai.output.type": "json" if request.schema is not None or request.grammar is not None else "text",
            "promptless.lm": model,
            "gen_ai.input.messages": self._content(_input_messages(request)) if self.capture_content else None,
        }
        self._start(call_id, f"{operation} {requested}", attributes, lm=model)

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        if outputs is None:
            self._end(call_id, exception)
            return
        model = self._lm_of(call_id) or outputs.model
        usage = Usage() if outputs.cached else outputs.usage  # a hit in promptless' cache used no tokens
        answered_by = outputs.model or model
        if answered_by == model and "/" in model:  # the backend did not say: the LM's name, as requested
            answered_by = model.split("/", 1)[1]
        attributes = {
            "gen_ai.response.model": answered_by,
            "gen_ai.response.finish_reasons": list(outputs.finish_reasons) or None,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cached_tokens or None,
            "promptless.cache_hit": outputs.cached,
            "promptless.cost_usd": call_cost(model, outputs),
            "gen_ai.output.messages": self._content(_output_messages(outputs)) if self.capture_content else None,
        }
        self._end(call_id, exception, attributes)

    # -- parsing: no span of its own; a failure is an event on the module's span -------------------------
    def on_adapter_parse_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        if exception is not None:
            span = self._trace.get_current_span()
            details = {"error.type": type(exception).__qualname__, "message": redact(exception)[:500]}
            span.add_event("promptless.parse_error", details)

    # -- tools ---------------------------------------------------------------------------------------------
    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        name = getattr(instance, "name", type(instance).__name__)
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": getattr(instance, "desc", None) or None,
            "gen_ai.tool.call.arguments": self._content(inputs),
        }
        self._start(call_id, f"execute_tool {name}", attributes)

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        result = self._content(outputs) if exception is None else None
        self._end(call_id, exception, {"gen_ai.tool.call.result": result})

    # -- evaluation and compiles -----------------------------------------------------------------------------
    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        devset = inputs.get("devset")
        devset = devset if devset is not None else getattr(instance, "devset", ())
        program = inputs.get("program")
        attributes = {
            "promptless.program": type(program).__qualname__,
            "promptless.evaluate.examples": len(devset) if hasattr(devset, "__len__") else None,
        }
        self._start(call_id, "evaluate", attributes)

    def on_evaluate_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        attributes = {}
        if outputs is not None:
            attributes = {"promptless.evaluate.score": outputs.score, "promptless.evaluate.errors": outputs.errors}
            attributes["promptless.cost_usd"] = outputs.usage.cost
        self._end(call_id, exception, attributes)

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        optimizer = str(inputs.get("optimizer") or type(instance).__name__)
        attributes = {"promptless.optimizer": optimizer, "promptless.program": type(inputs.get("student")).__qualname__}
        self._start(call_id, f"compile {optimizer}", attributes)

    def on_compile_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        report = getattr(outputs, "compile_report", None)
        attributes = {}
        if report is not None:
            attributes = {
                "promptless.compile.chosen": report.chosen,
                "promptless.compile.lm_calls": report.total_calls,
                "promptless.compile.input_tokens": report.prompt_tokens,  # not gen_ai.*: the LM spans hold those
                "promptless.compile.output_tokens": report.completion_tokens,
                "promptless.cost_usd": report.cost,
                "promptless.compile.stopped_by_budget": report.stopped_by_budget,
            }
        self._end(call_id, exception, attributes)


def provider_name(model: str, api_base: str | None = None) -> str:
    """``gen_ai.provider.name`` from an LM name: its prefix (``openai/...`` -> ``openai``), ``local/`` -> llama_cpp."""
    if "/" not in model:
        return "openai" if api_base else "unknown"  # a bare name with api_base speaks the OpenAI API
    prefix = model.split("/", 1)[0]
    return PROVIDERS.get(prefix, prefix)


def _input_messages(request: Any) -> list[dict[str, Any]]:
    """The request in the convention's message form: role plus text parts."""
    messages = request.messages if request.messages is not None else ({"role": "user", "content": request.prompt},)
    return [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in messages]


def _output_messages(response: Any) -> list[dict[str, Any]]:
    reasons = list(response.finish_reasons) + [None] * len(response.texts)
    return [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": reasons[i]}
        for i, text in enumerate(response.texts)
    ]


def _exception_attributes(exception: BaseException) -> dict[str, str]:
    """The exception event's message and stack trace, redacted: a key a server echoed never reaches a span."""
    trace = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    return {"exception.message": redact(exception), "exception.stacktrace": redact(trace)}


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float and lists of them; None means "not set"."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out


def _plain(value: Any) -> Any:
    """JSON fallback for captured content: Examples and Predictions as dicts, anything else as text."""
    if hasattr(value, "toDict"):
        return value.toDict()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return str(value)
