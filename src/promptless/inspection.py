"""Looking inside: the exact prompt a call would send, and what recent calls sent and got."""

from __future__ import annotations

import sys
from typing import Any

from promptless.lm import LM, resolve_lm
from promptless.module import Module


def inspect_prompt(program: Module, *, predictor: str | None = None, **inputs: Any) -> str:
    """The exact prompt text for these inputs, without calling the LM.

    For a program with several predictors, name the one to show with ``predictor=``
    (its path from ``named_predictors()``); the inputs are that predictor's inputs.
    """
    from promptless.modules.predict import Predict

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


def format_history(lm: LM | None = None, n: int = 1) -> str:
    """The last ``n`` calls of an LM (default: the configured one) as readable text."""
    lm = resolve_lm(lm)
    entries = list(lm.history)[-n:]
    if not entries:
        return f"(no calls recorded on {lm.model})"
    blocks = []
    for entry in entries:
        r = entry.response
        usage = r.usage
        head = (
            f"── {entry.model} · {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens"
            f" · {r.latency_s * 1000:.0f} ms{' · cached' if r.cached else ''}"
        )
        outputs = "\n".join(f"[output {i}] {t}" for i, t in enumerate(r.texts))
        blocks.append(f"{head}\n{entry.request.text}\n{outputs}")
    return "\n\n".join(blocks)


def inspect_history(n: int = 1, lm: LM | None = None) -> str:
    """Show the last ``n`` calls on standard output (and return the text)."""
    text = format_history(lm, n)
    sys.stdout.write(text + "\n")
    return text
