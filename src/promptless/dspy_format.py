"""Read the JSON state files DSPy 3.x writes (``program.save("p.json")``) as promptless program state.

DSPy's file maps each predictor's path to ``{"demos", "signature": {"instructions", "fields":
[{"prefix", "description"}, ...]}, "lm", "traces", "train"}`` plus a ``"metadata"`` entry. The
fields carry no names: they are matched by position with the program's own signature, so the file
must come from a program of the same shape. Nothing is executed; an ``lm`` entry stays a
description (a file never chooses where requests go); pickled programs are not read at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptless.errors import ArtifactError
from promptless.signature import infer_prefix
from promptless.types import ARTIFACT_FORMAT, ARTIFACT_VERSION

PREDICTOR_KEYS = frozenset({"demos", "signature", "lm", "traces", "train"})


def is_dspy_state(state: Any) -> bool:
    """A DSPy save file: no promptless ``format``, and every entry but ``metadata`` a predictor's state."""
    if not isinstance(state, Mapping) or "format" in state:
        return False
    entries = [v for k, v in state.items() if k != "metadata"]
    return bool(entries) and all(isinstance(v, Mapping) and "signature" in v and v.keys() <= PREDICTOR_KEYS
                                 for v in entries)  # fmt: skip


def from_dspy_state(state: Mapping[str, Any], fields_of: Mapping[str, Sequence[Any]], program: str) -> dict[str, Any]:
    """The promptless state for a DSPy file, given each predictor's fields (``signature.Field``, in order).

    A description or prefix the file leaves at DSPy's default keeps the program's own.
    """
    predictors = {}
    for name, entry in state.items():
        if name == "metadata":
            continue
        mine = fields_of.get(name)
        predictors[name] = _predictor(name, entry, mine) if mine is not None else {"signature": {"fields": []}}
    return {"format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, "program": program, "predictors": predictors}


def _predictor(name: str, entry: Mapping[str, Any], mine: Sequence[Any]) -> dict[str, Any]:
    names = [field.name for field in mine]
    signature = entry.get("signature")
    if not isinstance(signature, Mapping):
        raise ArtifactError(f"predictor {name!r}: the DSPy file has no signature")
    saved = signature.get("fields", [])
    if not isinstance(saved, list) or len(saved) != len(names):
        count = len(saved) if isinstance(saved, list) else "no"
        raise ArtifactError(
            f"predictor {name!r}: the DSPy file has {count} fields, the program's signature {len(names)} ({names})"
        )
    fields = []
    for own, field in zip(mine, saved, strict=True):
        field_name = own.name
        if not isinstance(field, Mapping):
            raise ArtifactError(f"predictor {name!r}: field {field_name!r} in the DSPy file is not an object")
        desc = str(field.get("description") or "")
        prefix = field.get("prefix")
        fields.append(
            {
                "name": field_name,
                "desc": own.desc if desc in ("", f"${{{field_name}}}") else desc,  # DSPy's "no description"
                "prefix": own.prefix if not prefix or prefix == f"{infer_prefix(field_name)}:" else str(prefix),
            }
        )
    demos = entry.get("demos", [])
    if not isinstance(demos, list) or not all(isinstance(d, Mapping) for d in demos):
        raise ArtifactError(f"predictor {name!r}: 'demos' must be a list of objects")
    return {
        "signature": {"instructions": str(signature.get("instructions", "")), "fields": fields},
        "demos": [{k: v for k, v in demo.items() if k != "augmented"} for demo in demos],
        "lm": entry.get("lm") if isinstance(entry.get("lm"), Mapping) else None,
        "config": {},
    }
