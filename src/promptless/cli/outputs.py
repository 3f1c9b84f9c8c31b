"""Output types from the data: a label-like output column becomes a ``Literal`` of its values.

``promptless compile`` on ``text -> label`` with a ``label`` column holding a few values,
each seen at least twice, types ``label`` as ``Literal[...]`` of those values, so the
embedded model's decoding is constrained to them, and says so in one line. ``--labels``
names the values instead; ``--free-text`` keeps the output free text. An output the
signature types itself (``label: int``, ``label: str``) is left as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from promptless.cli.data import MAX_LABELS, Record, infer_labels
from promptless.cli.errors import CLIError

if TYPE_CHECKING:
    from promptless.signature import Signature


def typed_in_text(signature_text: str, name: str) -> bool:
    """Does the signature string give ``name`` a type of its own (``-> label: str``)?"""
    outputs = signature_text.rpartition("->")[2]
    return re.search(rf"(^|,)\s*{re.escape(name)}\s*:", outputs) is not None


def type_outputs(
    task: Signature,
    signature_text: str,
    records: Sequence[Record],
    outputs: Sequence[str],
    *,
    labels: str | None = None,
    free_text: bool = False,
) -> tuple[Signature, list[str]]:
    """The task with label-like outputs typed as Literals, and one line per output typed so."""
    if labels is not None and free_text:
        raise CLIError("--labels and --free-text contradict each other; pass one of them")
    lines: list[str] = []
    for index, name in enumerate(outputs):
        if labels is not None and index == 0:
            values = _given_labels(labels, records, name)
            task = task.with_updated_fields(name, Literal[tuple(values)])  # type: ignore[valid-type]
            lines.append(f"typed {name} as {task.output_fields[name].type_name} (--labels)")
            continue
        if free_text or task.output_fields[name].annotation is not str or typed_in_text(signature_text, name):
            continue
        values = infer_labels(records, name)
        if values is None:
            continue
        task = task.with_updated_fields(name, Literal[tuple(values)])  # type: ignore[valid-type]
        lines.append(
            f"typed {name} as {_shown(task.output_fields[name].type_name)}: {len(values)} values, each seen at "
            "least twice in the data (--labels a,b,... to name them, --free-text to keep free text)"
        )
    return task, lines


def describe_labels(text: str, task: Signature, name: str) -> tuple[Signature, dict[str, str], str]:
    """``--label-names``: readable descriptions of a label answer's codes, put in the field's ``desc``.

    ``text`` is ``ABBR=abbreviation,NUM=number`` or a JSON file holding such an object. The
    field spec at the top of the prompt then reads ``Answer: ABBR = abbreviation, NUM = number;
    one of: ABBR, NUM``: the model sees what each code means, and still answers with the code.
    """
    from promptless.fieldtypes import literal_values

    codes = literal_values(task.output_fields[name].annotation)
    if codes is None:
        raise CLIError(
            f"--label-names: {name} is free text; label names describe the values of a label answer "
            "(typed from the data, or named with --labels)"
        )
    names = _read_label_names(text)
    known = {str(code): code for code in codes}
    unknown = [code for code in names if code not in known]
    if unknown:
        raise CLIError(f"--label-names: {unknown} are not values of {name}; its values are {list(known)}")
    described = ", ".join(f"{code} = {names[code]}" for code in known if code in names)
    field = task.output_fields[name]
    task = task.with_updated_fields(name, desc=f"{field.desc}; {described}" if field.desc else described)
    missing = [code for code in known if code not in names]
    rest = f"; no name for {', '.join(missing)}" if missing else ""
    return (
        task,
        {c: names[c] for c in known if c in names},
        f"{name}'s labels described: {described} (the answer stays the code{rest})",
    )


def _read_label_names(text: str) -> dict[str, str]:
    """``A=alpha,B=beta``, or a ``.json`` file holding ``{"A": "alpha", ...}``; each name on one line."""
    import json
    from pathlib import Path

    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CLIError(f"--label-names {text}: cannot read it as a JSON object ({error})") from None
        if not isinstance(data, dict) or not all(isinstance(v, (str, int, float)) for v in data.values()):
            raise CLIError(f'--label-names {text}: expected a JSON object of code -> name, e.g. {{"NUM": "number"}}')
        pairs = [(str(k), str(v)) for k, v in data.items()]
    else:
        pairs = []
        for item in (part for part in text.split(",") if part.strip()):
            code, sep, label = item.partition("=")
            if not sep or not code.strip() or not label.strip():
                raise CLIError(f"--label-names: {item.strip()!r} is not of the form CODE=name (e.g. NUM=number)")
            pairs.append((code, label))
    names = {code.strip(): " ".join(label.split()) for code, label in pairs}
    if not names or not all(names.values()):
        raise CLIError("--label-names: give at least one CODE=name, e.g. --label-names NUM=number,LOC=location")
    return names


def free_text_warning(task: Signature, field: str, metric: str) -> str | None:
    """A warning when exact match scores a free-text answer: it rarely matches word for word."""
    if metric != "exact" or task.output_fields[field].annotation is not str:
        return None
    return (
        f"{field} is free text, and --metric exact counts an answer right only when it matches the gold text; "
        "free text rarely does: consider --metric f1, contains or judge (or --labels for a fixed set of answers)"
    )


def _given_labels(text: str, records: Sequence[Record], name: str) -> list[Any]:
    values = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not values:
        raise CLIError("--labels: give the labels separated by commas, e.g. --labels positive,negative")
    if len(values) > 4 * MAX_LABELS:
        raise CLIError(f"--labels: {len(values)} labels is too many for a constrained answer")
    unknown = sorted({str(r.get(name)) for r in records} - set(values))
    if unknown:
        shown = ", ".join(repr(v) for v in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise CLIError(f"--labels: the data's {name} column also holds {shown}; add them to --labels or fix the data")
    return values


def _shown(type_name: str, width: int = 160) -> str:
    return type_name if len(type_name) <= width else type_name[: width - 1] + "…"
