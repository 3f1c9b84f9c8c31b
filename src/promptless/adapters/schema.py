"""A signature's outputs as a constraint the backend enforces while decoding.

Two shapes: a JSON schema of the output object (servers take it as
``response_format``; llama.cpp turns it into a grammar), and a GBNF grammar for
the plain ``Label: value`` lines that base models are prompted with. Free-text
fields get a length cap, so a looping model stops instead of filling ``max_tokens``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from promptless.adapters.values import json_schema_for
from promptless.fieldtypes import is_optional, literal_values
from promptless.signature import Field, Signature

DEFAULT_TEXT_CAP = 600
NESTED_TEXT_CAP = 200
ITEMS_CAP = 10


def capped(schema: Any, *, text_cap: int = NESTED_TEXT_CAP, items_cap: int = ITEMS_CAP) -> Any:
    """Bound every free string and array in a schema, unless the type already bounds it.

    A small model that starts repeating itself inside a list or a string would
    otherwise run to ``max_tokens`` and leave unparseable, truncated JSON.
    """
    if isinstance(schema, list):
        return [capped(item, text_cap=text_cap, items_cap=items_cap) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: capped(value, text_cap=text_cap, items_cap=items_cap) for key, value in schema.items()}
    if out.get("type") == "string" and not {"enum", "const", "maxLength", "pattern", "format"} & out.keys():
        out["maxLength"] = text_cap
    if out.get("type") == "array" and "maxItems" not in out:
        out["maxItems"] = items_cap
    return out


@functools.lru_cache(maxsize=256)
def output_json_schema(signature: Signature, *, text_cap: int = DEFAULT_TEXT_CAP) -> dict[str, Any]:
    """``{"type": "object", "properties": {...}, "required": [...]}`` for the output fields, in order.

    Memoised per signature (treat the result as read-only): it is the same for every call.
    """
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for name, field in signature.output_fields.items():
        schema = dict(json_schema_for(field.annotation))
        defs.update(capped(schema.pop("$defs", {})))
        properties[name] = capped(schema, text_cap=text_cap) if schema.get("type") == "string" else capped(schema)
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if defs:
        out["$defs"] = defs
    return out


def _literal(text: str) -> str:
    return json.dumps(text)  # a GBNF string literal uses the same escapes as JSON


_GBNF_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[A-Za-z][A-Za-z0-9-]*')


def _rename_rules(grammar: str, prefix: str) -> str:
    """Prefix every rule name of a GBNF grammar, leaving string literals and classes alone."""
    return _GBNF_TOKEN.sub(lambda m: m.group(0) if m.group(0)[0] in '"[' else f"{prefix}{m.group(0)}", grammar)


def _value_rule(field: Field, index: int, text_cap: int, rules: list[str]) -> str:
    """The GBNF expression for one field's value on a line; extra rules go to ``rules``."""
    annotation = field.annotation
    choices = literal_values(annotation)
    optional = is_optional(annotation)
    if choices is not None:
        expr = "(" + " | ".join(_literal(str(c)) for c in choices) + ")"
    elif annotation is str:
        expr = f"[^\\n]{{1,{text_cap}}}"
    elif annotation is int:
        expr = '"-"? [0-9]{1,15}'
    elif annotation is float:
        expr = '"-"? [0-9]{1,15} ("." [0-9]{1,10})?'
    elif annotation is bool:
        expr = '("true" | "false")'
    else:
        expr = _json_rule(field, index, rules)
    return f'({expr} | "null")' if optional and choices is not None else expr


def _json_rule(field: Field, index: int, rules: list[str]) -> str:
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:  # no llama.cpp here: the value stays free text on its line
        return "[^\\n]{1,2000}"
    grammar = json_schema_to_gbnf(json.dumps(capped(json_schema_for(field.annotation))))
    prefix = f"f{index}-"
    rules.extend(line for line in _rename_rules(grammar, prefix).splitlines() if line.strip())
    return f"{prefix}root"


@functools.lru_cache(maxsize=256)
def output_line_grammar(signature: Signature, *, text_cap: int = DEFAULT_TEXT_CAP) -> str:
    """GBNF for ``" value0\\nLabel1: value1...\\n"``: the prompt already ends with ``Label0:``.

    The closing newline matters: without it a base model that may write more
    digits (or words) after a complete value tends to, until ``max_tokens``.
    """
    rules: list[str] = []
    parts = []
    for index, field in enumerate(signature.output_fields.values()):
        head = '" "' if index == 0 else _literal(f"\n{field.label}: ")
        parts.append(f"{head} {_value_rule(field, index, text_cap, rules)}")
    return "\n".join([f'root ::= {" ".join(parts)} "\\n"', *rules]) + "\n"
