"""Signatures: what a step takes and what it gives, as typed, described fields.

Two forms, as in DSPy: a string ``"context: list[str], question -> answer: int"``
and a class whose docstring is the instruction and whose annotated attributes are
``InputField()``/``OutputField()``. Both become the same immutable value; every
"change" returns a new signature.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from promptless.errors import SignatureError, TypeSyntaxError
from promptless.fieldtypes import is_history, parse_type, type_to_str

FieldKind = Literal["input", "output"]

# Names a field cannot have. ``demos``, ``config`` and ``lm`` are what a Predict call takes besides its inputs;
# ``instructions``, ``signature`` and ``fields`` name a signature's own attributes (DSPy refuses them too). Names of
# Example/Prediction methods (``items``, ``inputs``, ``keys`` ...) are allowed, as in DSPy: read such a field as
# ``pred["items"]``, since ``pred.items`` is the method.
RESERVED_NAMES = frozenset({"instructions", "signature", "fields", "demos", "config", "lm"})


@dataclass(frozen=True)
class FieldInfo:
    """What ``InputField()``/``OutputField()`` return, before the field has a name."""

    kind: FieldKind
    desc: str = ""
    prefix: str | None = None


# Keywords DSPy's fields pass on to pydantic that DSPy programs use; accepted and ignored (``description`` = ``desc``).
IGNORED_FIELD_KEYWORDS = frozenset({"description", "format", "parser", "default", "json_schema_extra", "title"})


def InputField(*, desc: str = "", prefix: str | None = None, **dspy_keywords: Any) -> Any:  # noqa: N802
    """An input field of a class signature: ``question: str = InputField(desc="...")``.

    Untyped, as DSPy's tutorials write it (``question = InputField()``), the field is a ``str``.
    """
    return FieldInfo("input", _desc(desc, dspy_keywords), prefix)


def OutputField(*, desc: str = "", prefix: str | None = None, **dspy_keywords: Any) -> Any:  # noqa: N802
    """An output field of a class signature: ``answer: int = OutputField(desc="...")`` (untyped: a ``str``)."""
    return FieldInfo("output", _desc(desc, dspy_keywords), prefix)


def _desc(desc: str, keywords: dict[str, Any]) -> str:
    unknown = sorted(set(keywords) - IGNORED_FIELD_KEYWORDS)
    if unknown:
        raise TypeError(f"unknown field keyword(s) {unknown}; a field takes desc=, prefix= (and DSPy's "
                        f"{sorted(IGNORED_FIELD_KEYWORDS)}, ignored)")
    return desc or str(keywords.get("description") or "")


@dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    annotation: Any = str
    desc: str = ""
    prefix: str | None = None

    @functools.cached_property  # a field never changes; prompts read its label on every call
    def label(self) -> str:
        """How the field is named in a prompt: ``question`` -> ``Question``."""
        return self.prefix.rstrip(": ") if self.prefix else self.name.replace("_", " ").capitalize()

    @property
    def type_name(self) -> str:
        return type_to_str(self.annotation)


class _HybridMethod:
    """Lets ``QA.with_instructions(...)`` work on a class-form signature as on an instance."""

    def __init__(self, fn: typing.Callable[..., Any]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __get__(self, obj: Any, cls: type) -> Any:
        return functools.partial(self.fn, obj if obj is not None else cls())


class Signature:
    """An immutable list of typed input and output fields plus an instruction."""

    instructions: str = ""
    fields: ClassVar[dict[str, Field]] = {}  # a class-form signature's own; instances get theirs

    def __init__(
        self,
        spec: str | dict[str, Any] | Signature | None = None,
        instructions: str | None = None,
        *,
        custom_types: dict[str, Any] | None = None,
    ) -> None:
        if spec is None:
            if not type(self).fields:
                raise SignatureError("Signature() needs a spec such as 'question -> answer'")
            fields, inherited = dict(type(self).fields), type(self).instructions
        elif isinstance(spec, Signature):
            fields, inherited = dict(spec.fields), spec.instructions
        elif isinstance(spec, str):
            fields, inherited = _parse_spec(spec, custom_types, _defining_namespace), ""
        elif isinstance(spec, dict):
            fields, inherited = _fields_from_dict(spec), ""
        else:
            raise SignatureError(f"a signature is a string like 'question -> answer', got {type(spec).__name__}")
        _validate(fields, spec if isinstance(spec, str) else None)
        self.fields = _inputs_first(fields)
        self.instructions = instructions if instructions is not None else (inherited or default_instructions(fields))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = dict(cls.fields)  # inherited from a parent signature class
        try:
            try:
                hints = typing.get_type_hints(cls)
            except NameError:  # a type defined in the function that defines the class: its locals, read once
                hints = typing.get_type_hints(cls, localns=dict(sys._getframe(1).f_locals))
        except Exception as error:
            raise SignatureError(f"signature class {cls.__name__}: cannot resolve its type hints ({error})") from None
        annotated = inspect.get_annotations(cls)
        # Declaration order, typed (``q: int = InputField()``) or not (``q = InputField()``, a str, as in DSPy).
        for name, info in list(cls.__dict__.items()):
            if isinstance(info, FieldInfo):
                fields[name] = Field(name, info.kind, hints.get(name, str), info.desc, info.prefix)
                delattr(cls, name)
        bare = [n for n in annotated if n not in fields and n not in cls.__dict__ and not n.startswith("_")]
        bare = [n for n in bare if typing.get_origin(hints.get(n)) is not ClassVar]
        if bare:
            raise SignatureError(
                f"signature class {cls.__name__}: {bare} have a type but no InputField()/OutputField(); "
                f"write e.g. `{bare[0]}: {type_to_str(hints.get(bare[0], str))} = InputField()`"
            )
        _validate(fields, None, where=f"signature class {cls.__name__}")
        cls.fields = _inputs_first(fields)
        cls.instructions = inspect.cleandoc(cls.__doc__ or "") or default_instructions(fields)
        # Plain class attributes, so ``QA.input_fields`` reads as it does on an instance.
        cls.input_fields = {n: f for n, f in cls.fields.items() if f.kind == "input"}  # type: ignore[misc]
        cls.output_fields = {n: f for n, f in cls.fields.items() if f.kind == "output"}  # type: ignore[misc]

    # -- views --------------------------------------------------------------------------
    @functools.cached_property
    def input_fields(self) -> dict[str, Field]:  # cached: a signature never changes after it is made
        return {n: f for n, f in self.fields.items() if f.kind == "input"}

    @functools.cached_property
    def output_fields(self) -> dict[str, Field]:
        return {n: f for n, f in self.fields.items() if f.kind == "output"}

    @functools.cached_property
    def history_field(self) -> str | None:
        """The input field typed ``History`` (earlier turns), if any; adapters render it as the conversation."""
        return next((n for n, f in self.input_fields.items() if is_history(f.annotation)), None)

    @functools.cached_property
    def turn_signature(self) -> Signature:
        """This signature without its History field: each turn (earlier ones, demos, the current one) is one of it."""
        name = self.history_field
        return self if name is None else self.delete(name)

    @property
    def has_default_instructions(self) -> bool:
        """True when the instruction only names the fields; adapters then say it more briefly."""
        return self.instructions == default_instructions(self.fields)

    @functools.cached_property
    def signature(self) -> str:
        def side(fs: dict[str, Field]) -> str:
            return ", ".join(n if f.annotation is str else f"{n}: {f.type_name}" for n, f in fs.items())

        return f"{side(self.input_fields)} -> {side(self.output_fields)}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and (self.fields, self.instructions) == (other.fields, other.instructions)

    def __hash__(self) -> int:
        return hash((self.signature, self.instructions))

    def __repr__(self) -> str:
        return f"Signature({self.signature!r}, instructions={self.instructions[:60]!r})"

    # -- edits (each returns a new signature) ------------------------------------------------
    def _with_fields(self, fields: dict[str, Field], instructions: str | None = None) -> Signature:
        clone = Signature.__new__(Signature)
        _validate(fields, None)
        clone.fields = _inputs_first(fields)
        if instructions is None:
            # A default instruction names the fields, so it follows them when they change.
            instructions = default_instructions(clone.fields) if self.has_default_instructions else self.instructions
        clone.instructions = instructions
        return clone

    @_HybridMethod
    def with_instructions(self, instructions: str) -> Signature:
        return self._with_fields(dict(self.fields), instructions)

    @_HybridMethod
    def append_instructions(self, text: str) -> Signature:
        """DSPy's name: the instructions with ``text`` added as a new paragraph."""
        return self._with_fields(dict(self.fields), f"{self.instructions}\n\n{text}" if self.instructions else text)

    @_HybridMethod
    def equals(self, other: Any) -> bool:
        """DSPy's name for ``==``; a class-form signature compares as its instance."""
        if isinstance(other, type) and issubclass(other, Signature):
            other = other()
        return self == other

    @_HybridMethod
    def with_updated_fields(self, name: str, type_: Any = None, **changes: Any) -> Signature:
        if name not in self.fields:
            raise SignatureError(f"no field {name!r} in {self.signature!r}")
        if type_ is not None:
            changes["annotation"] = type_
        return self._with_fields({**self.fields, name: replace(self.fields[name], **changes)})

    @_HybridMethod
    def insert(self, index: int, name: str, field: FieldInfo, type_: Any = str) -> Signature:
        """Insert a field at ``index`` among the fields of its own kind (-1 = last)."""
        if not isinstance(field, FieldInfo):
            raise SignatureError(f"insert({name!r}, ...) needs InputField() or OutputField(), got {field!r}")
        new = Field(name, field.kind, type_, field.desc, field.prefix)
        same = [f for f in self.fields.values() if f.kind == field.kind]
        other = [f for f in self.fields.values() if f.kind != field.kind]
        same.insert(len(same) + 1 + index if index < 0 else index, new)
        ordered = same + other if field.kind == "input" else other + same
        if name in self.fields:
            raise SignatureError(f"field {name!r} already exists in {self.signature!r}")
        return self._with_fields({f.name: f for f in ordered})

    @_HybridMethod
    def append(self, name: str, field: FieldInfo, type_: Any = str) -> Signature:
        return self.insert(-1, name, field, type_)

    @_HybridMethod
    def prepend(self, name: str, field: FieldInfo, type_: Any = str) -> Signature:
        return self.insert(0, name, field, type_)

    @_HybridMethod
    def delete(self, name: str) -> Signature:
        if name not in self.fields:
            raise SignatureError(f"cannot delete {name!r}: no such field in {self.signature!r}")
        return self._with_fields({n: f for n, f in self.fields.items() if n != name})

    # -- artifacts ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "fields": [
                {"name": f.name, "kind": f.kind, "type": f.type_name, "desc": f.desc, "prefix": f.prefix}
                for f in self.fields.values()
            ],
        }


def ensure_signature(signature: str | Signature | type[Signature], instructions: str | None = None) -> Signature:
    """Accept every form a user may pass and return a Signature instance."""
    if isinstance(signature, type) and issubclass(signature, Signature):
        signature = signature()
    elif isinstance(signature, str):
        signature = Signature(signature)
    elif not isinstance(signature, Signature):
        raise SignatureError(f"expected a signature string or Signature, got {type(signature).__name__}: {signature!r}")
    return signature if instructions is None else signature.with_instructions(instructions)


def make_signature(
    signature: str | Mapping[str, Any],
    instructions: str | None = None,
    signature_name: str = "StringSignature",
    *,
    custom_types: dict[str, Any] | None = None,
) -> Signature:
    """DSPy's ``make_signature``: from a string, or a dict of ``name -> (type, InputField())`` (or a bare field).

    ``signature_name`` is accepted for DSPy's sake; promptless signatures have no class name to give.
    """
    if isinstance(signature, str):
        return Signature(signature, instructions, custom_types=custom_types)
    return Signature(dict(signature), instructions)


def infer_prefix(name: str) -> str:
    """DSPy's default prefix of a field: ``"question"`` -> ``"Question"``, ``"some_field"`` -> ``"Some Field"``."""
    words = name.replace("_", " ").split()
    return " ".join(w[:1].upper() + w[1:] for w in words)


def _defining_namespace(name: str) -> Any:
    """A type named in a string signature, from the namespace of the code that made the signature.

    Asked only for a name that is neither built in nor in ``custom_types``, once, while the signature is made:
    the first frame outside promptless, its locals then its module's globals; a dotted name is followed.
    """
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] == "promptless":
        frame = frame.f_back
    if frame is None:
        raise KeyError(name)
    head, *rest = name.split(".")
    for namespace in (frame.f_locals, frame.f_globals):
        if head in namespace:
            value = namespace[head]
            for part in rest:
                if not hasattr(value, part):
                    raise KeyError(name)
                value = getattr(value, part)
            return value
    raise KeyError(name)


def default_instructions(fields: dict[str, Field]) -> str:
    ins = ", ".join(f"`{n}`" for n, f in fields.items() if f.kind == "input")
    outs = ", ".join(f"`{n}`" for n, f in fields.items() if f.kind == "output")
    return f"Given the fields {ins}, produce the fields {outs}."


def _fields_from_dict(spec: dict[str, Any]) -> dict[str, Field]:
    fields = {}
    for name, value in spec.items():
        type_, info = value if isinstance(value, tuple) else (str, value)
        if not isinstance(info, FieldInfo):
            raise SignatureError(f"field {name!r}: expected InputField()/OutputField() or (type, field), got {value!r}")
        fields[name] = Field(name, info.kind, type_, info.desc, info.prefix)
    return fields


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets or quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _parse_spec(spec: str, custom_types: dict[str, Any] | None, lookup: Any = None) -> dict[str, Field]:
    if spec.count("->") != 1:
        what = "has no '->'" if "->" not in spec else "has more than one '->'"
        raise SignatureError(f"signature {spec!r} {what}; write it as 'inputs -> outputs', e.g. 'question -> answer'")
    fields: dict[str, Field] = {}
    for kind, side in zip(("input", "output"), spec.split("->"), strict=True):
        if not side.strip():
            raise SignatureError(
                f"signature {spec!r} has no {kind} fields on the {'left' if kind == 'input' else 'right'} of '->'"
            )
        for item in _split_top_level(side):
            name, _, type_text = item.partition(":")
            name = name.strip()
            if not name:
                raise SignatureError(f"signature {spec!r} has an empty {kind} field (a stray comma?)")
            if name in fields:
                raise SignatureError(f"signature {spec!r} names field {name!r} twice")
            try:
                annotation = parse_type(type_text, custom_types, lookup) if type_text.strip() else str
            except TypeSyntaxError as error:
                raise SignatureError(f"signature {spec!r}, field {name!r}: {error}") from None
            fields[name] = Field(name, kind, annotation)  # type: ignore[arg-type]
    return fields


def _inputs_first(fields: dict[str, Field]) -> dict[str, Field]:
    """Inputs before outputs, each in declaration order: prompts and artifacts rely on it."""
    ordered = [f for f in fields.values() if f.kind == "input"] + [f for f in fields.values() if f.kind == "output"]
    return {f.name: f for f in ordered}


def _validate(fields: dict[str, Field], spec: str | None, where: str | None = None) -> None:
    where = where or (f"signature {spec!r}" if spec else "signature")
    for name in fields:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SignatureError(f"{where}: {name!r} is not a valid field name (use a Python identifier)")
        if name.startswith("_") or name in RESERVED_NAMES:
            raise SignatureError(f"{where}: field name {name!r} is reserved; choose another name")
    if fields and not any(f.kind == "output" for f in fields.values()):
        raise SignatureError(f"{where} has no output fields")
