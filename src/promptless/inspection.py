"""Looking inside: the exact prompt a call would send, and what recent calls sent and got.

``inspect_history`` shows, per call: the model, tokens, latency and cost; then, for
calls made by a Predict, its signature, the demos and inputs it formatted and the
fields parsed from the output; then the exact prompt and the raw output.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptless.cost import call_cost
from promptless.lm import LM, resolve_lm
from promptless.module import Module
from promptless.modules.predict import Predict

if TYPE_CHECKING:
    from promptless.types import HistoryEntry, Response

VALUE_CAP = 500  # characters of one value shown in the structured sections (the prompt is shown whole)


def inspect_prompt(program: Module, *, predictor: str | None = None, **inputs: Any) -> str:
    """The exact prompt text for these inputs, without calling the LM.

    For a program with several predictors, name the one to show with ``predictor=``
    (its path from ``named_predictors()``); the inputs are that predictor's inputs.
    """
    named = dict(program.named_predictors())
    if isinstance(program, Predict):
        target = program
    elif predictor is not None:
        if predictor not in named:
            raise KeyError(f"no predictor {predictor!r}; this program has {list(named)}")
        target = named[predictor]
    elif len(named) == 1:
        target = next(iter(named.values()))
    else:
        raise ValueError(f"this program has {len(named)} predictors; pick one with predictor= from {list(named)}")
    return target.inspect_prompt(**inputs)


def note_call(
    response: Response,
    signature: Any,
    demos: Sequence[Any],
    inputs: Mapping[str, Any],
    outputs: list[dict[str, Any]],
) -> None:
    """Attach what a caller knows (signature, demos, inputs, parsed fields) to the history entry of ``response``.

    Predict does this itself; this stays for modules of one's own that call an LM directly.
    """
    entry = response.history
    if entry is None:
        return
    entry.signature = getattr(signature, "signature", str(signature))
    entry.demos = list(demos)
    entry.inputs = dict(inputs)
    entry.outputs = outputs


def format_history(lm: LM | None = None, n: int = 1) -> str:
    """The last ``n`` calls of an LM (default: the configured one) as readable text."""
    lm = resolve_lm(lm)
    entries = list(lm.history)[-n:]
    if not entries:
        return f"(no calls recorded on {lm.model})"
    return "\n\n".join(format_entry(entry) for entry in entries)


def format_entry(entry: HistoryEntry) -> str:
    """One call: a header line, the structured sections Predict filled, the prompt, the raw and parsed output."""
    r = entry.response
    usage = r.usage
    cost = call_cost(entry.model, r)
    head = (
        f"── {entry.model} · {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
        f" · {r.latency_s * 1000:.0f} ms{' · cached' if r.cached else ''}"
        + (f" · ${cost:.6f}" if cost is not None else "")
    )
    parts = [head]
    if entry.signature is not None:
        parts.append(f"Signature: {entry.signature}")
    if entry.demos is not None:
        parts.append(_demos(entry.demos))
    if entry.inputs is not None:
        parts.append("Inputs:\n" + _fields(entry.inputs))
    parts.append("Prompt:\n" + entry.request.text)
    parts.extend(f"Raw output [{i}]:\n{text}" for i, text in enumerate(r.texts))
    if entry.outputs is not None:
        parts.extend(f"Parsed [{i}]:\n{_fields(fields)}" for i, fields in enumerate(entry.outputs))
    return "\n".join(parts)


def _demos(demos: Sequence[Any]) -> str:
    if not demos:
        return "Demos: none"
    blocks = [f"Demos ({len(demos)}):"]
    for i, demo in enumerate(demos, 1):
        values = dict(demo.items()) if hasattr(demo, "items") else {"demo": demo}
        blocks.append(f"  [{i}]\n" + _fields(values, indent="    "))
    return "\n".join(blocks)


def _fields(values: Mapping[str, Any], indent: str = "  ") -> str:
    if not values:
        return f"{indent}(none)"
    return "\n".join(f"{indent}{name}: {_short(value)}" for name, value in values.items())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\n      ")
    return text if len(text) <= VALUE_CAP else text[:VALUE_CAP] + f"… ({len(text)} characters)"


def inspect_history(n: int = 1, lm: LM | None = None) -> str:
    """Show the last ``n`` calls on standard output (and return the text)."""
    text = format_history(lm, n)
    sys.stdout.write(text + "\n")
    return text
