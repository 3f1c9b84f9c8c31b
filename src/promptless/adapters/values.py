"""Typed values in and out of prompts: render inputs as text, validate parsed outputs.

pydantic is imported on first use only, so ``import promptless`` stays light.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from typing import Any

from promptless.errors import ParseError
from promptless.fieldtypes import literal_values
from promptless.types import History


def to_jsonable(value: Any, *, field: str = "value") -> Any:
    """Plain JSON data for a value; pydantic models are dumped. Raises a TypeError naming the field."""
    if isinstance(value, History):  # as saved in demos and artifacts: {"messages": [...]}
        return {"messages": [to_jsonable(m, field=field) for m in value.messages]}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):  # an Enum field's value is written as its member's value, as it is read
        return to_jsonable(value.value, field=field)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, field=field) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, field=field) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(
        f"field {field!r}: cannot put a {type(value).__name__} into a prompt ({value!r:.80}); "
        "pass str, numbers, lists, dicts or pydantic models"
    )


def render_value(value: Any, *, field: str) -> str:
    """Text for one input value: strings as they are, everything else as compact JSON."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return value
    data = to_jsonable(value, field=field)
    if isinstance(data, list) and all(isinstance(v, str) for v in data):
        return "\n".join(f"[{i + 1}] {v}" for i, v in enumerate(data)) if data else "[]"
    return json.dumps(data, ensure_ascii=False)


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(annotation)


def validate_value(annotation: Any, value: Any, *, field: str, raw: str) -> Any:
    """Coerce a parsed value to the field's type, or raise ParseError naming the field."""
    if annotation is str:
        if isinstance(value, str):
            return value.strip()
        return value if value is None else json.dumps(value, ensure_ascii=False)
    choices = literal_values(annotation)
    if choices is not None and isinstance(value, str):
        value = _match_choice(value, choices)
    from pydantic import ValidationError

    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError as error:
        detail = error.errors()[0].get("msg", str(error)) if error.errors() else str(error)
        raise ParseError(f"field {field!r}: {detail}; got {value!r:.80}", raw=raw, field=field) from None


def parse_text_value(annotation: Any, text: str, *, field: str, raw: str) -> Any:
    """Read a value written as text (a line of a completion): JSON first, then the bare text."""
    text = text.strip()
    if annotation is str:
        return text
    if text.startswith("```"):
        text = re.sub(r"^```\w*\s*|\s*```$", "", text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text.strip("'\"` ")
    return validate_value(annotation, value, field=field, raw=raw)


def _match_choice(value: str, choices: tuple[Any, ...]) -> Any:
    cleaned = value.strip().strip("'\"` .").lower()
    for choice in choices:
        if str(choice).lower() == cleaned:
            return choice
    return value


@functools.lru_cache(maxsize=512)
def json_schema_for(annotation: Any) -> dict[str, Any]:
    """The JSON schema of one field's type (pydantic's, so models and constraints come along)."""
    return _adapter(annotation).json_schema()
