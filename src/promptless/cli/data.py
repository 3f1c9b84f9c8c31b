"""Reading examples from JSONL, JSON, CSV and TSV files, with errors that say exactly what is wrong.

Every failure is a ``DataError`` naming the file and, where it helps, the line or
row: a missing file, a file that is not UTF-8, an empty file, a JSONL line that is
not a JSON object, a ragged CSV row, columns that do not match the signature.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptless.cli.errors import DataError

if TYPE_CHECKING:
    from promptless.primitives import Example

Record = dict[str, Any]
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
STDIN = "-"  # a data argument of "-" reads the examples from standard input
MAX_LABELS = 50  # an output with at most this many distinct values, each seen twice, is typed as their Literal
MAX_LABEL_CHARS = 60  # longer values are sentences, not labels


def is_stdin(path: Path | str) -> bool:
    return str(path) == STDIN


def read_text(path: Path) -> str:
    """The file as text: UTF-8, with or without a byte-order mark; ``-`` reads standard input."""
    if is_stdin(path):
        import sys

        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        return _decode(path, data)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror})") from None
    return _decode(path, data)


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise DataError(f"{path} is not UTF-8 text (byte 0x{byte:02x} at position {error.start})") from None


def read_records(path: str | Path) -> list[Record]:
    """The file's rows as dicts; the format is chosen by suffix (.jsonl, .json, .csv, .tsv), else sniffed."""
    path = Path(path)
    text = read_text(path)
    if is_stdin(path):
        path = Path("<stdin>")
    if not text.strip():
        raise DataError(f"{path} has no examples (the file is empty)")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        records = list(parse_jsonl(path, text))
    elif suffix == ".json":
        records = _parse_json(path, text)
    elif suffix in (".csv", ".tsv"):
        records = _parse_csv(path, text, "\t" if suffix == ".tsv" else ",")
    else:
        records = _sniff(path, text)
    if not records:
        raise DataError(f"{path} has no examples")
    return records


def parse_jsonl(path: Path, text: str) -> Iterator[Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield parse_jsonl_line(path, number, line)


def parse_jsonl_line(path: Path | str, number: int, line: str) -> Record:
    """One JSONL line as a dict; a DataError naming the line otherwise."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} line {number} is not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise DataError(f'{path} line {number} is a JSON {json_kind(value)}, not an object like {{"question": ...}}')
    return value


def _parse_json(path: Path, text: str) -> list[Record]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):  # one object per line in a .json file
            return list(parse_jsonl(path, text))
        where = f"line {error.lineno}, column {error.colno}"
        raise DataError(f"{path} is not valid JSON ({error.msg} at {where})") from None
    if isinstance(value, dict) and value.get("format") == "promptless.program":
        raise DataError(f"{path} is a promptless program artifact, not a data file")
    rows = value.get("examples") if isinstance(value, dict) else value
    if not isinstance(rows, list):
        raise DataError(f'{path} holds a JSON {json_kind(value)}; expected a list of objects or {{"examples": [...]}}')
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{path}: example {index} is a JSON {json_kind(row)}, not an object")
    return rows


def _parse_csv(path: Path, text: str, delimiter: str) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise DataError(f"{path} has no examples")
        header = [cell.strip() for cell in header]
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates or "" in header:
            problem = f"repeats column(s) {duplicates}" if duplicates else "has an empty column name"
            raise DataError(f"{path}: the header row {problem}")
        rows: list[Record] = []
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path} row {len(rows) + 1} (line {reader.line_num}) has {len(row)} columns; "
                    f"the header has {len(header)} ({', '.join(header)})"
                )
            rows.append(dict(zip(header, row, strict=True)))
    except csv.Error as error:
        raise DataError(f"{path} line {reader.line_num} is not valid CSV ({error})") from None
    return rows


def _sniff(path: Path, text: str) -> list[Record]:
    """No known suffix: JSON if it looks like JSON, else CSV (tab-separated if the header has tabs)."""
    start = text.lstrip()[:1]
    if start == "[":
        return _parse_json(path, text)
    if start == "{":
        first_line = text.lstrip().splitlines()[0]
        try:
            json.loads(first_line)
        except json.JSONDecodeError:
            return _parse_json(path, text)
        return list(parse_jsonl(path, text))
    header = text.lstrip().splitlines()[0]
    return _parse_csv(path, text, "\t" if "\t" in header else ",")


# -- matching the signature ------------------------------------------------------------------------
def check_columns(path: Path | str, records: Sequence[Record], needed: Sequence[str]) -> None:
    """Every record has every needed field; else an error listing the columns found and the ones needed."""
    found = _columns(records)
    if missing := [n for n in needed if n not in found]:
        raise DataError(
            f"{path} has columns [{', '.join(found)}]; the signature needs [{', '.join(needed)}] "
            f"(missing: {', '.join(missing)})"
        )
    for index, record in enumerate(records):
        if missing := [n for n in needed if n not in record]:
            raise DataError(f"{path}: example {index + 1} lacks {', '.join(missing)} (it has [{', '.join(record)}])")


def to_examples(records: Iterable[Record], inputs: Sequence[str], outputs: Sequence[str]) -> list[Example]:
    """Examples holding the signature's fields only, with the inputs marked."""
    from promptless.primitives import Example

    keep = [*inputs, *outputs]
    return [Example({k: r[k] for k in keep if k in r}).with_inputs(*inputs) for r in records]


def deduplicate(
    records: Sequence[Record], inputs: Sequence[str], outputs: Sequence[str]
) -> tuple[list[Record], list[str]]:
    """The records without exact repeats (same inputs and outputs), and notes on repeats and conflicting labels.

    A repeated row would land in train and val alike and flatter the score; an input seen with two different
    outputs is kept (both rows) and counted, since no program can get both right.
    """
    kept: list[Record] = []
    seen: set[str] = set()
    outputs_of: dict[str, set[str]] = {}
    for record in records:
        key = _key(record, [*inputs, *outputs])
        if key in seen:
            continue
        seen.add(key)
        kept.append(record)
        outputs_of.setdefault(_key(record, inputs), set()).add(_key(record, outputs))
    notes = []
    if dropped := len(records) - len(kept):
        notes.append(
            f"{dropped} duplicate row(s) dropped (same inputs and outputs as an earlier row), so no example is "
            "both trained and validated on"
        )
    if conflicts := sum(1 for values in outputs_of.values() if len(values) > 1):
        notes.append(f"{conflicts} input(s) appear with different outputs; no program can get all of them right")
    return kept, notes


def _key(record: Record, fields: Sequence[str]) -> str:
    return json.dumps([record.get(f) for f in fields], sort_keys=True, default=str, ensure_ascii=False)


def infer_labels(records: Sequence[Record], field: str) -> list[Any] | None:
    """The field's values if they look like class labels: 2 to 50 distinct short strings or ints, each seen twice."""
    counts: dict[Any, int] = {}
    for record in records:
        value = record.get(field)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        if isinstance(value, str) and (not value.strip() or len(value) > MAX_LABEL_CHARS):
            return None
        counts[value] = counts.get(value, 0) + 1
    if not 2 <= len(counts) <= MAX_LABELS or min(counts.values()) < 2:
        return None
    if len({type(v) for v in counts}) > 1:
        return None
    return sorted(counts)


def split(examples: Sequence[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle, then train/val; ``val_fraction=0`` validates on the trainset (optimistic)."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be at least 0 and below 1, got {val_fraction}")
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    if val_fraction == 0:
        return shuffled, shuffled
    if len(shuffled) < 2:
        raise DataError(f"{len(shuffled)} example is too few to split into train and val; add examples")
    n_val = min(len(shuffled) - 1, max(1, round(len(shuffled) * val_fraction)))
    return shuffled[n_val:], shuffled[:n_val]


def _columns(records: Sequence[Record]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def json_kind(value: Any) -> str:
    names = {list: "list", dict: "object", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
