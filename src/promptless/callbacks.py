"""Callbacks: user code is told when a module, LM call, parse, tool, evaluation or compile starts and ends.

Register callbacks with ``configure(callbacks=[...])`` or ``context(callbacks=[...])``
(a list or a tuple), or on one object: ``Predict(sig, callbacks=[...])``, ``LM(model,
callbacks=[...])``, or a ``callbacks`` attribute of a Module of your own; those see only that
object's own calls, after the callbacks in force. Copies of a program share them.

Each start/end pair shares a ``call_id`` (uuid4 hex); events nest as the calls do (a
module's LM calls come between its start and its end) and arrive in the thread that runs the
call. ``on_*_end`` gets the outputs, or ``None`` and the exception the call raised (the
exception still propagates).

Error contract: a callback that raises is logged as a warning and skipped; observing
a program never breaks it. With no callback registered, a hooked call costs one
settings lookup: nothing is built, no id is drawn.

Who calls what:

=================  ==============================  ============================================
event              ``instance``                    ``inputs`` / ``outputs``
=================  ==============================  ============================================
module             the Module (Predict too)        forward's arguments / its result
lm                 the LM                          ``{"request": Request}`` / the Response
adapter_format     the Adapter                     ``{"signature", "demos", "inputs"}`` / the Request
adapter_parse      the Adapter                     ``{"signature", "text"}`` / the parsed fields
tool               the Tool                        the tool's arguments / its result
evaluate           the Evaluate                    ``{"program", "metric", "devset"}`` / EvaluationResult
compile            the optimizer or its SearchRun  ``{"optimizer": name, "student", ...}`` / the program
=================  ==============================  ============================================
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

from promptless.settings import current

log = logging.getLogger("promptless.callbacks")

F = TypeVar("F", bound=Callable[..., Any])
Describe = Callable[[Any, tuple[Any, ...], dict[str, Any]], dict[str, Any]]


class BaseCallback:
    """Subclass and override the events you need; every method here does nothing (as in DSPy's BaseCallback)."""

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A module's ``__call__`` (or ``acall``) begins."""

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The module returned ``outputs``, or raised ``exception``."""

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An LM call begins (before the cache is asked): ``inputs["request"]`` is the Request."""

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The LM call returned a Response (``outputs.cached`` tells a cache hit), or raised."""

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter starts writing the request: ``inputs`` has ``signature``, ``demos``, ``inputs``."""

    def on_adapter_format_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The Request the adapter wrote, or its error."""

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter starts reading ``inputs["text"]`` as ``inputs["signature"]``'s outputs."""

    def on_adapter_parse_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The parsed fields (a dict), or the ParseError."""

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A Tool runs with these arguments (before they are validated)."""

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The tool's result, or its error (``Tool.observe`` turns that into text afterwards)."""

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """``Evaluate(...)(program)`` begins."""

    def on_evaluate_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The EvaluationResult, or the error that stopped the evaluation."""

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An optimizer's compile begins; ``inputs["optimizer"]`` is its name."""

    def on_compile_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        """The compiled program (with ``compile_report``), or the error that ended the compile."""


class Call:
    """One observed call: its id, its kind, and the callbacks in force when it began (they also get its end)."""

    __slots__ = ("call_id", "callbacks", "kind")

    def __init__(self, call_id: str, kind: str, callbacks: tuple[Any, ...]) -> None:
        self.call_id, self.kind, self.callbacks = call_id, kind, callbacks

    def __repr__(self) -> str:
        return f"Call({self.kind!r}, {self.call_id!r})"


# -- the low-level pair, for calls that begin and end in different methods (SearchRun) -----------------
def begin(kind: str, instance: Any, inputs: dict[str, Any] | Callable[[], dict[str, Any]]) -> Call | None:
    """Tell the callbacks in force that a call begins; None (and nothing done) when there are none.

    ``inputs`` may be a function, so that a caller pays for building them only when observed.
    """
    callbacks = current().callbacks
    if not callbacks:
        return None
    return _begin(callbacks, kind, instance, inputs() if callable(inputs) else inputs)


def end(call: Call | None, outputs: Any = None, exception: BaseException | None = None) -> None:
    """Tell the callbacks that saw ``call`` begin how it ended; a no-op for ``None``."""
    if call is not None:
        _notify(call, "end", outputs, exception)


def _begin(callbacks: Iterable[Any], kind: str, instance: Any, inputs: dict[str, Any]) -> Call:
    import uuid  # here, not at the top: only observed calls need it, and import time counts

    call = Call(uuid.uuid4().hex, kind, tuple(callbacks))
    _notify(call, "start", instance, inputs)
    return call


def _notify(call: Call, phase: str, *args: Any) -> None:
    name = f"on_{call.kind}_{phase}"
    for callback in call.callbacks:
        method = getattr(callback, name, None)
        if method is None:
            continue
        try:
            method(call.call_id, *args)
        except Exception:
            log.warning("callback %s.%s raised; ignored", type(callback).__name__, name, exc_info=True)


# -- a block ----------------------------------------------------------------------------------------------
class callback_scope:  # noqa: N801 - used like a function, as contextlib's helpers are
    """``with callback_scope("compile", self, inputs) as scope: ...; scope.outputs = result``.

    For paths that are not hot (compiles, async module calls). The end event gets
    ``scope.outputs``, or the exception that leaves the block.
    """

    __slots__ = ("_inputs", "_instance", "call", "kind", "outputs")

    def __init__(self, kind: str, instance: Any, inputs: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        self.kind, self._instance, self._inputs = kind, instance, inputs
        self.call: Call | None = None
        self.outputs: Any = None

    def __enter__(self) -> callback_scope:
        self.call = begin(self.kind, self._instance, self._inputs)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        end(self.call, None if error is not None else self.outputs, error)


# -- the decorator, for hot paths ---------------------------------------------------------------------------
def in_force(instance: Any) -> tuple[Any, ...]:
    """The callbacks in force for a call on ``instance``: the settings', then the instance's own ``callbacks``."""
    callbacks = current().callbacks
    own = getattr(instance, "callbacks", None)
    return (*callbacks, *own) if own else callbacks


def with_callbacks(kind: str | Callable[..., Any], inputs: Describe | None = None) -> Any:
    """Observe a method: sync, async or generator. ``inputs(instance, args, kwargs)`` describes the call.

    By default the call's arguments are bound to the method's parameter names
    (``**kwargs`` merged in). The fast path (no callback in force) adds one settings
    lookup to the call. As in DSPy, it is also a plain decorator (``@with_callbacks``): the
    kind of event then follows the instance (an LM's calls are ``lm`` events, a Tool's
    ``tool``, an Evaluate's ``evaluate``, anything else's ``module``).
    """
    if callable(kind):
        return _with_inferred_kind(kind)

    def decorate(fn: F) -> F:
        describe = inputs or _bound_arguments(fn)
        if inspect.iscoroutinefunction(fn):

            async def async_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
                callbacks = in_force(instance)
                if not callbacks:
                    return await fn(instance, *args, **kwargs)
                call = _begin(callbacks, kind, instance, describe(instance, args, kwargs))
                try:
                    result = await fn(instance, *args, **kwargs)
                except BaseException as error:
                    _notify(call, "end", None, error)
                    raise
                _notify(call, "end", result, None)
                return result

            return functools.wraps(fn)(async_wrapper)  # type: ignore[return-value]

        if inspect.isgeneratorfunction(fn):

            def generator_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
                callbacks = in_force(instance)
                if not callbacks:
                    return fn(instance, *args, **kwargs)
                return _observed_generator(fn, callbacks, kind, instance, args, kwargs, describe)

            return functools.wraps(fn)(generator_wrapper)  # type: ignore[return-value]

        def wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
            callbacks = current().callbacks  # in_force(instance), inlined: this runs on every module and LM call
            own = getattr(instance, "callbacks", None)
            if own:
                callbacks = (*callbacks, *own)
            if not callbacks:
                return fn(instance, *args, **kwargs)
            call = _begin(callbacks, kind, instance, describe(instance, args, kwargs))
            try:
                result = fn(instance, *args, **kwargs)
            except BaseException as error:
                _notify(call, "end", None, error)
                raise
            _notify(call, "end", result, None)
            return result

        return functools.wraps(fn)(wrapper)  # type: ignore[return-value]

    return decorate


def _kind_of(instance: Any) -> str:
    names = {cls.__name__ for cls in type(instance).__mro__}
    if names & {"LM", "BaseLM"}:
        return "lm"
    if "Tool" in names:
        return "tool"
    if "Evaluate" in names:
        return "evaluate"
    return "module"


def _with_inferred_kind(fn: F) -> F:
    """``@with_callbacks`` without a kind: one wrapped method per kind, chosen by the instance on each call."""
    wrapped: dict[str, Any] = {}

    def pick(instance: Any) -> Any:
        kind = _kind_of(instance)
        if kind not in wrapped:
            wrapped[kind] = with_callbacks(kind, module_inputs if kind == "module" else None)(fn)
        return wrapped[kind]

    if inspect.iscoroutinefunction(fn):

        async def async_wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
            return await pick(instance)(instance, *args, **kwargs)

        return functools.wraps(fn)(async_wrapper)  # type: ignore[return-value]

    def wrapper(instance: Any, *args: Any, **kwargs: Any) -> Any:
        return pick(instance)(instance, *args, **kwargs)

    return functools.wraps(fn)(wrapper)  # type: ignore[return-value]


def _observed_generator(
    fn: Callable[..., Any],
    callbacks: tuple[Any, ...],
    kind: str,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    describe: Describe,
) -> Any:
    """The start event fires at the first ``next``; the end gets the generator's return value."""
    call = _begin(callbacks, kind, instance, describe(instance, args, kwargs))
    try:
        result = yield from fn(instance, *args, **kwargs)
    except BaseException as error:
        _notify(call, "end", None, error)
        raise
    _notify(call, "end", result, None)
    return result


def _bound_arguments(fn: Callable[..., Any]) -> Describe:
    """Describe a call by the method's parameter names; the signature is read on first use only."""
    found: list[inspect.Signature] = []

    def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not found:
            found.append(inspect.signature(fn))
        return _bind(found[0], (instance, *args), kwargs, skip_first=True)

    return describe


def module_inputs(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A module call's inputs, named after ``forward``'s parameters."""
    if not args:
        return dict(kwargs)
    try:
        signature = inspect.signature(instance.forward)
    except (TypeError, ValueError):
        return {"args": args, **kwargs}
    return _bind(signature, args, kwargs, skip_first=False)


def _bind(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any], *, skip_first: bool) -> dict:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # the call itself will fail and say why; describe it as it came
        return {"args": args[1:] if skip_first else args, **kwargs}
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(bound.arguments.items()):
        if skip_first and i == 0:
            continue
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def observed_format(adapter: Any, signature: Any, demos: Any, inputs: dict[str, Any], **sampling: Any) -> Any:
    """``adapter.format(signature, demos, inputs, **sampling)``, with the adapter_format events when observed.

    Only callbacks whose class defines an ``on_adapter_format_*`` method are told: formatting is on every
    call's path, and most observers do not ask for it.
    """
    callbacks = current().callbacks
    if callbacks:
        wanted = ("on_adapter_format_start", "on_adapter_format_end")
        callbacks = tuple(cb for cb in callbacks if _defines(cb, *wanted))
    if not callbacks:
        return adapter.format(signature, demos, inputs, **sampling)
    call = _begin(callbacks, "adapter_format", adapter, {"signature": signature, "demos": demos, "inputs": inputs})
    try:
        request = adapter.format(signature, demos, inputs, **sampling)
    except BaseException as error:
        _notify(call, "end", None, error)
        raise
    _notify(call, "end", request, None)
    return request


def _defines(callback: Any, *names: str) -> bool:
    return any(getattr(type(callback), name, None) not in (None, getattr(BaseCallback, name)) for name in names)


def observed_parse(adapter: Any, signature: Any, text: str) -> dict[str, Any]:
    """``adapter.parse(signature, text)``, with the adapter_parse events when callbacks are in force."""
    callbacks = current().callbacks
    if not callbacks:
        return adapter.parse(signature, text)
    call = _begin(callbacks, "adapter_parse", adapter, {"signature": signature, "text": text})
    try:
        fields = adapter.parse(signature, text)
    except BaseException as error:
        _notify(call, "end", None, error)
        raise
    _notify(call, "end", fields, None)
    return fields
