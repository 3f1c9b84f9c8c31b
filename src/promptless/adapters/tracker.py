"""Reading an output field by field while the LM is still writing it, for streaming.

Each adapter picks the tracker that knows its output layout (``Adapter.field_tracker``):
JSON objects for the chat adapters, ``Label: value`` lines for the completion adapter.
"""

from __future__ import annotations

import json
import re
from typing import Any

from promptless.adapters.parsing import parse_lines
from promptless.adapters.values import validate_value
from promptless.errors import ParseError
from promptless.signature import Signature


class FieldTracker:
    """Splits a growing output text into its fields: JSON objects, or ``Label: value`` lines.

    ``feed`` returns new ("chunk", field, text) and ("value", field, parsed)
    events; a field's value is parsed when the next field starts (the last
    one's by ``finish``). Parsing here never raises: Predict parses the whole
    text afterwards and raises there, with its retries.
    """

    def __init__(self, signature: Signature, *, lines: bool) -> None:
        self.signature = signature
        self.lines = lines
        self.fields = list(signature.output_fields.values())
        if lines:  # the prompt ends with the first label, so the first field starts at once
            self.markers = [None] + [
                re.compile(rf"\n\s*{re.escape(f.label)}\s*:[ \t]?", re.IGNORECASE) for f in self.fields[1:]
            ]
        else:
            self.markers = [re.compile(rf'"{re.escape(f.name)}"\s*:\s*') for f in self.fields]
        self.text = ""
        self.emitted: dict[str, str] = {}
        self.finished: set[str] = set()

    def feed(self, piece: str) -> list[tuple[str, str, Any]]:
        self.text += piece
        return self._events(final=False)

    def finish(self) -> list[tuple[str, str, Any]]:
        return self._events(final=True)

    def _spans(self) -> list[tuple[int, int | None]]:
        """(value start, value end or None while open) for each field found so far, in order."""
        starts: list[int] = []
        position = 0
        for marker in self.markers:
            if marker is None:
                starts.append(0)
                continue
            found = marker.search(self.text, position)
            if found is None:
                break
            starts.append(found.end())
            position = found.end()
        spans = []
        for i, start in enumerate(starts):
            end = None
            if i + 1 < len(starts):
                end = self.markers[i + 1].search(self.text, start).start()  # type: ignore[union-attr]
            spans.append((start, end))
        return spans

    def _events(self, *, final: bool) -> list[tuple[str, str, Any]]:
        events: list[tuple[str, str, Any]] = []
        spans = self._spans()
        for index, (start, end) in enumerate(spans):
            field = self.fields[index]
            raw = self.text[start:end] if end is not None else self.text[start:]
            closed = end is not None or final
            shown = self._display(raw, closed)
            before = self.emitted.get(field.name, "")
            if shown.startswith(before) and len(shown) > len(before):
                events.append(("chunk", field.name, shown[len(before) :]))
                self.emitted[field.name] = shown
            if closed and field.name not in self.finished:
                self.finished.add(field.name)
                value = self._value(index, raw)
                if value is not _UNPARSED:
                    events.append(("value", field.name, value))
        return events

    def _display(self, raw: str, closed: bool) -> str:
        """The readable text of a value so far: JSON strings unescaped, nothing that may still change."""
        if self.lines:
            if closed:
                return raw.strip()
            if "\n" in raw:
                raw = raw[: raw.rfind("\n")]  # may be the start of the next label
            return raw.lstrip()
        raw = raw.lstrip()
        if not raw.startswith('"'):
            try:  # a complete value: cut it where it ends (before the outer object's "," or "}")
                return raw[: json.JSONDecoder().raw_decode(raw)[1]]
            except ValueError:  # still growing: everything so far belongs to it
                return raw.rstrip()
        out, i = [], 1
        escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/", "r": "\r", "b": "\b", "f": "\f"}
        while i < len(raw):
            char = raw[i]
            if char == '"':
                break
            if char == "\\":
                if i + 1 >= len(raw):
                    break  # an escape cut in half: wait for the rest
                if raw[i + 1] == "u":
                    if i + 6 > len(raw):
                        break
                    out.append(chr(int(raw[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                out.append(escapes.get(raw[i + 1], raw[i + 1]))
                i += 2
                continue
            out.append(char)
            i += 1
        return "".join(out)

    def _value(self, index: int, raw: str) -> Any:
        field = self.fields[index]
        try:
            if self.lines:
                upto = self.signature
                for later in self.fields[index + 1 :]:
                    upto = upto.delete(later.name)
                text = self.text[: self._spans()[index][1] or len(self.text)]
                return parse_lines(upto, text, first_label_in_prompt=True)[field.name]
            decoded, _ = json.JSONDecoder().raw_decode(raw.strip())
            return validate_value(field.annotation, decoded, field=field.name, raw=raw)
        except (ParseError, ValueError, TypeError):
            return _UNPARSED


_UNPARSED = object()
