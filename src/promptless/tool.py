"""Tool: a typed Python function an agent may call, with its name, description and argument schema inferred.

The argument schema is a pydantic model built from the function's signature, so
arguments the LM writes are validated (and coerced: ``"3"`` for an ``int``)
before the function runs, and the same schema constrains the LM's decoding.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from promptless.adapters.values import render_value
from promptless.callbacks import with_callbacks
from promptless.errors import ToolArgumentError
from promptless.primitives import Prediction

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class Tool:
    """Wrap ``func`` as a tool: ``Tool(search)`` or ``Tool(search, name="wiki", desc="...")``.

    ``args`` maps each argument to its JSON schema; ``__call__`` validates the
    arguments and runs the function; ``observe`` is what an agent uses: it turns
    any exception into an ``Error: ...`` text instead of ending the run.
    """

    def __init__(self, func: Callable[..., Any], *, name: str | None = None, desc: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"Tool(func=) needs a callable, got {type(func).__name__}: {func!r:.80}")
        self.func = func
        self.name = name or getattr(func, "__name__", type(func).__name__)
        if not self.name or not set(self.name) <= _NAME_OK:
            raise ValueError(f"Tool name must be letters, digits and '_' only, got {self.name!r}; pass name=")
        self.desc = desc if desc is not None else _first_paragraph(inspect.getdoc(func) or "")
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)

    @functools.cached_property
    def args_model(self) -> Any:
        """A pydantic model of the arguments (built on first use: pydantic loads lazily)."""
        from pydantic import ConfigDict, create_model

        fields: dict[str, Any] = {}
        for param in inspect.signature(self.func).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        hints = _resolved_hints(self.func)
        fields = {name: (hints.get(name, spec[0]), spec[1]) for name, spec in fields.items()}
        config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
        return create_model(f"{self.name}_args", __config__=config, **fields)

    @property
    def args(self) -> dict[str, Any]:
        """Each argument's JSON schema, by name."""
        return self.args_model.model_json_schema().get("properties", {})

    def validate(self, arguments: Any) -> dict[str, Any]:
        """The arguments coerced to their types, or a ToolArgumentError saying what is wrong."""
        from pydantic import ValidationError

        if hasattr(arguments, "model_dump"):
            arguments = arguments.model_dump()
        if not isinstance(arguments, dict):
            raise ToolArgumentError(f"tool {self.name!r}: arguments must be an object, got {arguments!r:.120}")
        try:
            model = self.args_model.model_validate(arguments)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in error.errors()
            )
            raise ToolArgumentError(f"tool {self.name!r}: {problems}; received {arguments!r:.200}") from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    @with_callbacks("tool")
    def __call__(self, **kwargs: Any) -> Any:
        arguments = self.validate(kwargs)
        if self.is_async:
            return asyncio.run(self.func(**arguments))
        return self.func(**arguments)

    @with_callbacks("tool")
    async def acall(self, **kwargs: Any) -> Any:
        arguments = self.validate(kwargs)
        if self.is_async:
            return await self.func(**arguments)
        return await asyncio.to_thread(self.func, **arguments)

    def observe(self, arguments: Any) -> str:
        """Run the tool for an agent: the result as text, or the error as text (the agent reads it and goes on)."""
        try:
            return _as_text(self(**(self._as_dict(arguments))))
        except Exception as error:
            return f"Error: {type(error).__name__}: {error}"

    async def aobserve(self, arguments: Any) -> str:
        try:
            return _as_text(await self.acall(**(self._as_dict(arguments))))
        except Exception as error:
            return f"Error: {type(error).__name__}: {error}"

    def _as_dict(self, arguments: Any) -> dict[str, Any]:
        if hasattr(arguments, "model_dump"):
            arguments = arguments.model_dump()
        if not isinstance(arguments, dict):
            raise ToolArgumentError(f"tool {self.name!r}: arguments must be an object, got {arguments!r:.120}")
        return arguments

    def describe(self) -> str:
        """One line for a prompt, as a call: ``add(a: integer, b: integer = 1): Add two integers.``"""
        import json

        params = []
        for name, schema in self.args.items():
            kind = schema.get("type") or "/".join(s.get("type", "any") for s in schema.get("anyOf", [])) or "any"
            if "enum" in schema:
                kind = " | ".join(json.dumps(v) for v in schema["enum"])
            default = f" = {json.dumps(schema['default'])}" if "default" in schema else ""
            params.append(f"{name}: {kind}{default}")
        return f"{self.name}({', '.join(params)}): {self.desc}".rstrip(": ")

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def as_tool(value: Tool | Callable[..., Any]) -> Tool:
    return value if isinstance(value, Tool) else Tool(value)


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n", 1)[0].split())


def _resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """Annotations with string forms (``from __future__ import annotations``) resolved where possible."""
    import typing

    try:
        return typing.get_type_hints(func)
    except Exception:
        return {}


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Prediction):
        value = dict(value.items())
    try:
        return render_value(value, field="observation")
    except TypeError:
        return str(value)
