"""The Adapter protocol: a signature, demos and inputs become a Request; text becomes typed fields.

Error contract: ``format`` raises ``TypeError``/``ValueError`` on inputs it cannot
render (naming the field); ``parse`` raises ``ParseError`` (with the raw text and
the failing field) and nothing else. Predict turns a ParseError into one retry
that shows the model its mistake, then lets it propagate.

Layout rule for every adapter: what never changes between calls (instructions,
field spec, demos) comes first and the call's inputs last, so a backend's prefix
cache is reused across calls.

A signature's ``History`` input (earlier turns of a conversation) is no field of the
prompt: each adapter renders its turns as the conversation, after the demos and before
the current input, with the signature's ``turn_signature`` (the one without it). A
demo that holds a History has its turns rendered just before it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promptless.adapters.schema import DEFAULT_TEXT_CAP
from promptless.adapters.tracker import FieldTracker
from promptless.adapters.values import render_value
from promptless.fieldtypes import literal_values
from promptless.signature import Field, Signature
from promptless.types import History, Request

_VERSION = operator.attrgetter("_version")  # an Example's change counter


@dataclass(frozen=True)
class Adapter:
    """Base of the adapters; ``constrained=False`` turns off grammar/schema-constrained decoding."""

    constrained: bool = True
    text_cap: int = DEFAULT_TEXT_CAP
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def fixed_part(self, signature: Signature, demos: list[Mapping[str, Any]], render: Callable[[], Any]) -> Any:
        """``render()`` of what never changes between calls (instructions, spec, demos), memoised.

        Keyed by the identities of the signature and the demos, checked against the demos'
        change counters and the signature's instructions and fields (replaced, never edited in
        place, when they change). The memo keeps all of them alive, so an identity cannot be
        reused by another object while its entry exists.
        """
        try:
            versions = tuple(map(_VERSION, demos))
        except AttributeError:  # plain dicts carry no change counter: render every time
            return render()
        key = (id(signature), *map(id, demos))
        hit = self._memo.get(key)
        if hit is None or hit[0] != versions or hit[1] is not signature.instructions or hit[2] is not signature.fields:
            if len(self._memo) > 64:
                self._memo.clear()
            kept = (signature, tuple(demos))  # alive while the entry is: their ids stay theirs
            hit = self._memo[key] = (versions, signature.instructions, signature.fields, kept, render())
        return hit[4]

    def format(
        self, signature: Signature, demos: list[Mapping[str, Any]], inputs: Mapping[str, Any], **sampling: Any
    ) -> Request:
        raise NotImplementedError

    def parse(self, signature: Signature, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def format_retry(self, request: Request, raw: str, error: Exception) -> Request:
        """A follow-up request that shows the model why its last answer could not be read."""
        raise NotImplementedError

    def field_tracker(self, signature: Signature) -> FieldTracker:
        """What reads this adapter's output field by field while it streams: a JSON object, by default."""
        return FieldTracker(signature, lines=False)

    def choice_texts(self, signature: Signature) -> list[tuple[str, Any]] | None:
        """For a signature whose one output has a finite set of values: each value and the exact reply
        text that gives it, so a backend can score the replies instead of sampling one. Else None."""
        values = finite_values(signature)
        if values is None:
            return None
        (name,) = signature.output_fields
        return [(self.reply_text(signature, {name: value}), value) for value in values]

    def reply_text(self, signature: Signature, outputs: Mapping[str, Any]) -> str:
        """The reply, exactly as this adapter expects the model to write it, for these output values."""
        raise NotImplementedError


def finite_values(signature: Signature) -> tuple[Any, ...] | None:
    """The allowed values of the signature's only output (a Literal, Enum or bool), or None."""
    if len(signature.output_fields) != 1:
        return None
    (field,) = signature.output_fields.values()
    if field.annotation is bool:
        return (True, False)
    values = literal_values(field.annotation)
    return values if values and len(values) > 1 else None


def field_hint(field: Field) -> str:
    """A short description of what a field holds, for the field spec at the top of a prompt."""
    choices = literal_values(field.annotation)
    if choices is not None:
        kind = "one of: " + ", ".join(str(c) for c in choices)
    elif field.annotation is str:
        kind = ""
    else:
        kind = field.type_name
    return "; ".join(part for part in (field.desc, kind) if part)


def field_spec(signature: Signature) -> str:
    """Lines like ``Sentiment: one of: positive, negative`` for fields that need explaining."""
    lines = [f"{f.label}: {hint}" for f in signature.fields.values() if (hint := field_hint(f))]
    return "\n".join(lines)


def render_fields(fields: Mapping[str, Field], values: Mapping[str, Any], *, skip_missing: bool = True) -> str:
    """``Label: value`` lines for the fields present in ``values``."""
    lines = []
    for name, spec in fields.items():
        if name not in values:
            if skip_missing:
                continue
            raise KeyError(name)
        value = values[name]
        lines.append(f"{spec.label}: {value if type(value) is str else render_value(value, field=name)}")
    return "\n".join(lines)


def demo_is_usable(signature: Signature, demo: Mapping[str, Any]) -> bool:
    """A demo must show every input and at least one output to teach anything."""
    return all(n in demo for n in signature.input_fields) and any(n in demo for n in signature.output_fields)


def history_turns(signature: Signature, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The earlier turns held by ``values``' History field (none when the signature or the values have none)."""
    name = signature.history_field
    if name is None or values.get(name) is None:
        return []
    return History.coerce(values[name], field=name).messages
