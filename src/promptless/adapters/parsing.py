"""Reading an LM's text back into typed fields, tolerant of the usual small-model slips."""

from __future__ import annotations

import json
import re
from typing import Any

from promptless.adapters.values import ParseError, parse_text_value, validate_value
from promptless.signature import Signature

# Small models put raw newlines inside strings; keep them. Stateless between calls (as json's own shared decoder).
_DECODER = json.JSONDecoder(strict=False)


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in the text, also when wrapped in prose or a code fence."""
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def _cut_json_object(signature: Signature, text: str) -> dict[str, Any] | None:
    """A JSON object cut off inside its last value, a free-text output (``max_tokens`` ran out): closed.

    Only a ``str`` field is completed so: its text so far is what the token limit allowed, while a
    number or list cut short would be a different value.
    """
    start = text.find("{")
    if start < 0:
        return None
    for ending in ('"}', "}"):  # cut inside the string, or just after it
        try:
            value, _ = _DECODER.raw_decode(text[start:].rstrip("\n") + ending)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and value:
            last = signature.output_fields.get(list(value)[-1])
            return value if last is not None and last.annotation is str else None
    return None


def parse_json_object(signature: Signature, text: str) -> dict[str, Any]:
    """Output fields from a JSON object; falls back to ``Label: value`` lines if there is none."""
    data = _first_json_object(text)
    if data is None:
        data = _cut_json_object(signature, text)
    if data is None:
        return parse_lines(signature, text, first_label_in_prompt=False)
    out = {}
    for name, field in signature.output_fields.items():
        if name not in data:
            raise ParseError(f"the JSON object has no key {name!r} (keys: {list(data)})", raw=text, field=name)
        out[name] = validate_value(field.annotation, data[name], field=name, raw=text)
    return out


def parse_lines(signature: Signature, text: str, *, first_label_in_prompt: bool) -> dict[str, Any]:
    """Output fields from ``Label: value`` lines.

    With ``first_label_in_prompt`` the text continues a prompt that ended with the
    first output label, so the text before any other label is the first field.
    """
    fields = list(signature.output_fields.values())
    labels = {f.label.lower(): f for f in fields} | {f.name.lower(): f for f in fields}
    pattern = re.compile(r"^\s*(" + "|".join(re.escape(k) for k in labels) + r")\s*:", re.IGNORECASE | re.MULTILINE)
    chunks: dict[str, str] = {}
    if first_label_in_prompt:
        first = pattern.search(text)
        chunks[fields[0].name] = text[: first.start() if first else len(text)]
    matches = list(pattern.finditer(text))
    for i, match in enumerate(matches):
        field = labels[match.group(1).lower()]
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        chunks.setdefault(field.name, text[match.end() : end])
    out = {}
    for field in fields:
        if field.name not in chunks:
            raise ParseError(f"no {field.label!r} in the output", raw=text, field=field.name)
        value = re.split(r"\n\s*\n|\n---", chunks[field.name].strip(), maxsplit=1)[0]
        if not value.strip() and field.annotation is not str:
            raise ParseError(f"field {field.name!r} is empty", raw=text, field=field.name)
        out[field.name] = parse_text_value(field.annotation, value, field=field.name, raw=text)
    return out
