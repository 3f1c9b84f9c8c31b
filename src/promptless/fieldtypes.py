"""Field types: read them safely from signature text, and write them back for artifacts.

The string form ``"context: list[str], k: Literal['a','b']"`` is parsed with ``ast``
and a whitelist of names; nothing is ``eval``-ed. A name outside the whitelist comes from
``custom_types=``, else from ``lookup`` (the signature's defining namespace, asked once per
unknown name when the signature is made), and must name a type.
"""

from __future__ import annotations

import ast
import enum
import types
import typing
from typing import Any, Literal, Optional, Union

from promptless.errors import TypeSyntaxError
from promptless.types import History

BUILTIN_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "Any": Any,
    "List": list,
    "Dict": dict,
    "Tuple": tuple,
    "Optional": Optional,
    "Union": Union,
    "Literal": Literal,
    "None": type(None),
    "History": History,  # earlier turns of a conversation (an input field; adapters render it as turns)
}


Lookup = typing.Callable[[str], Any]


def parse_type(text: str, custom_types: dict[str, Any] | None = None, lookup: Lookup | None = None) -> Any:
    """Turn ``"list[str]"`` into ``list[str]`` using only known names.

    ``lookup(name)`` (a dotted name, too) is asked for a name that is neither built in nor in
    ``custom_types``; it returns the object or raises ``KeyError``. Only types are accepted from it.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise TypeSyntaxError(f"{text!r} is not a type expression ({error.msg})") from None
    return _build(node, _Names({**BUILTIN_TYPES, **(custom_types or {})}, lookup), text)


class _Names(dict):
    """The known names, then the lookup (its answers kept, and only if they are types)."""

    def __init__(self, known: dict[str, Any], lookup: Lookup | None) -> None:
        super().__init__(known)
        self.lookup = lookup

    def __missing__(self, name: str) -> Any:
        if self.lookup is None:
            raise KeyError(name)
        value = self.lookup(name)
        if not (isinstance(value, type) or typing.get_origin(value) is not None):
            raise KeyError(name)
        self[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True


def _build(node: ast.AST, names: dict[str, Any], text: str) -> Any:
    if isinstance(node, ast.Constant) and node.value is Ellipsis:  # tuple[int, ...]
        return Ellipsis
    if isinstance(node, ast.Name):
        if node.id not in names:
            known = ", ".join(n for n in BUILTIN_TYPES if n[0].islower() and n != "None")
            raise TypeSyntaxError(
                f"unknown type {node.id!r} in {text!r}; known: {known}, Optional, Literal, Union "
                "(pass others with custom_types={...})"
            )
        return names[node.id]
    if isinstance(node, ast.Attribute):  # e.g. "mymodule.Answer" given as custom_types={"mymodule.Answer": ...}
        dotted = ast.unparse(node)
        if dotted in names:
            return names[dotted]
        raise TypeSyntaxError(f"unknown type {dotted!r} in {text!r}; pass it with custom_types={{{dotted!r}: ...}}")
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return Union[_build(node.left, names, text), _build(node.right, names, text)]  # noqa: UP007
    if isinstance(node, ast.Subscript):
        origin = _build(node.value, names, text)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if origin is Literal:
            values = []
            for item in items:
                if not isinstance(item, ast.Constant):
                    raise TypeSyntaxError(f"Literal[...] takes constants only, got {ast.unparse(item)!r} in {text!r}")
                values.append(item.value)
            return Literal[tuple(values)]
        args = tuple(_build(item, names, text) for item in items)
        try:
            return origin[args if len(args) > 1 else args[0]]
        except TypeError as error:
            raise TypeSyntaxError(f"{text!r}: {error}") from None
    raise TypeSyntaxError(f"{ast.unparse(node)!r} is not a type in {text!r}")


def type_to_str(annotation: Any) -> str:
    """A readable, stable name for a type: ``list[str]``, ``Literal['a', 'b']``, ``Optional[int]``."""
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1 and len(args) == 2:
            return f"Optional[{type_to_str(non_none[0])}]"
        return "Union[" + ", ".join(type_to_str(a) for a in args) + "]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[" + ", ".join("..." if a is Ellipsis else type_to_str(a) for a in args) + "]"
    if annotation is Any:
        return "Any"
    return getattr(annotation, "__name__", str(annotation))


def is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in typing.get_args(annotation)


def is_history(annotation: Any) -> bool:
    """True for a field typed ``History`` (or ``Optional[History]``): earlier turns, not a value of this turn."""
    return annotation is History or (is_optional(annotation) and History in typing.get_args(annotation))


def literal_values(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` or an ``Enum`` (its members' values; also inside ``Optional``), else None."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(member.value for member in annotation)
    if is_optional(annotation):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return literal_values(inner[0])
    return None
