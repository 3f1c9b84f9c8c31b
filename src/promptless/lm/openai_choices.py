"""Scoring given continuations over HTTP: ``/completions`` with ``echo`` reports every prompt token's log-probability.

For each choice the backend sends ``prompt + choice`` with ``echo=true, logprobs=0,
max_tokens=1`` (``max_tokens=0`` means "no limit" to llama-cpp-python's server) and sums
the log-probabilities of the echoed tokens from the one where the prompt ends (found by
``text_offset``) to the end of the choice; the one generated token is ignored. The K
choices go as one request with a list of prompts where the server takes one (the OpenAI API
allows it), else as K requests (llama-cpp-python's server answers a list with an HTTP 500).

Nothing about the server is assumed, and nothing missing becomes a zero: a reply without
the prompt's log-probabilities (a server that ignores ``echo``, or llama.cpp's own server,
which reports only generated tokens) is refused with ``LMBadRequest``. The echoed numbers are
also checked once per backend against the server's own log-probability of a token it
generates (``probe_verdict``): llama-cpp-python's server (0.3.36) reports for a model without a
BOS token, such as SmolLM2, each echoed token's log-probability at the *next* position (its
issue #1983), which ranks labels by nonsense; such a server is refused too.

The chat API reports log-probabilities of generated tokens only, never of text it is given,
so a chat model cannot be scored over HTTP. (Its ``top_logprobs`` of one generated token
would give the first token of each label at best: the chat replies of every label start with
the same tokens, and a label of several tokens would be scored by its first.)

Tokens the choices share are left out of the sums, as on the embedded backend, so the two
backends' scores compare. The server tokenizes ``prompt + choice`` as one text, the embedded
backend the two apart: they agree where the tokenizer splits at the prompt's end (the
adapters' choices begin with a space or a line break after ``Label:``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from promptless.errors import LMBadRequest
from promptless.lm.llama_choices import common_start

PROBE = "Monday, Tuesday,"  # short (a server may pay per echoed token), ending at a clean token boundary
PROBE_TOLERANCE = 0.25  # nats: batching moves a logprob by ~0.05 on llama.cpp; a shift by one position, by nats
CHAT_CANNOT = (
    "an OpenAI-compatible chat model cannot score choices: the chat API returns log-probabilities of "
    "generated tokens only; use model_type='completion' on a server whose /completions echoes logprobs"
)

Span = list[tuple[str, float]]  # (token text, log-probability) of one choice's tokens


def scoring_body(model: str, params: dict[str, Any], prompt: str | list[str]) -> dict[str, Any]:
    """A /completions body that echoes ``prompt`` with each token's log-probability and generates one token."""
    return {**params, "model": model, "prompt": prompt, "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0}


def echoed_choices(data: dict[str, Any], count: int) -> list[dict[str, Any]] | None:
    """The reply's ``count`` choices in prompt order (by ``index``), or None if it does not answer ``count`` prompts."""
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != count or not all(isinstance(c, dict) for c in choices):
        return None
    indices = [c.get("index") for c in choices]
    if sorted(i for i in indices if isinstance(i, int)) == list(range(count)):
        return sorted(choices, key=lambda c: c["index"])
    return choices if all(i is None for i in indices) else None


def choice_span(choice: dict[str, Any], prompt: str, text: str, where: str) -> Span:
    """The echoed tokens of ``text[len(prompt):]`` with their log-probabilities; LMBadRequest if the reply lacks them.

    The span starts at the token starting at ``len(prompt)``, or, if none does, at the token
    across that boundary; it ends before the next token starting at or after ``len(text)``
    (the generated one). A correct echo has the prompt's tokens before it, starting at offset 0.
    """
    echoed = choice.get("text")
    if isinstance(echoed, str) and not echoed.startswith(text):
        raise LMBadRequest(f"{where}: the server did not echo the prompt (echo=true), so it cannot score choices")
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        raise LMBadRequest(f"{where}: the reply has no logprobs, so the server cannot score choices")
    tokens, offsets, values = (logprobs.get(k) for k in ("tokens", "text_offset", "token_logprobs"))
    lists = [x for x in (tokens, offsets, values) if isinstance(x, list)]
    if len(lists) != 3 or len({len(x) for x in lists}) != 1 or not all(isinstance(o, int) for o in offsets):
        shape = f"logprobs need tokens, text_offset and token_logprobs of one length: {logprobs!r}"[:300]
        raise LMBadRequest(f"{where}: {shape}")
    cut, end = len(prompt), len(text)
    start = next((i for i, offset in enumerate(offsets) if offset == cut), None)
    if start is None:  # no token starts where the choice does: the one across the boundary starts it
        start = max((i for i, offset in enumerate(offsets) if offset < cut), default=None)
    if start is None or start == 0 or offsets[0] != 0:
        raise LMBadRequest(
            f"{where}: the reply's logprobs do not cover the echoed prompt (text_offset {offsets[:4]}... for a prompt "
            f"of {cut} characters), so the server cannot score choices"
        )
    stop = next((i for i in range(start + 1, len(offsets)) if offsets[i] >= end), len(offsets))
    span: Span = []
    for token, value in zip(tokens[start:stop], values[start:stop], strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LMBadRequest(f"{where}: no log-probability for the choice's token {token!r} (got {value!r})")
        span.append((str(token), float(value)))
    return span


def summed(spans: Sequence[Span]) -> list[float]:
    """Each choice's summed log-probability, leaving out the leading tokens all choices share (as embedded)."""
    shared = common_start([[token for token, _ in span] for span in spans]) if len(spans) > 1 else 0
    return [sum(value for _, value in span[shared:]) for span in spans]


def probe_verdict(generated: dict[str, Any], echoed: dict[str, Any]) -> str | None:
    """None if the echoed log-probability of the probe's generated token is the one the server gave when generating it.

    ``generated`` answers ``PROBE`` with one token (its logprobs); ``echoed`` answers ``PROBE +
    that token`` with echo. Else the reason the server's echoed numbers cannot be used.
    """
    first = (generated.get("choices") or [{}])[0]
    logprobs = first.get("logprobs") if isinstance(first, dict) else None
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not tokens or not values or not isinstance(values[0], (int, float)):
        return "the server returns no logprobs on /completions, so it cannot score choices"
    token, expected = str(tokens[0]), float(values[0])
    choices = echoed_choices(echoed, 1)
    if choices is None:
        return "the server's echo reply has no choice, so it cannot score choices"
    try:
        span = choice_span(choices[0], PROBE, PROBE + token, "probe")
    except LMBadRequest as error:
        return str(error)
    if len(span) != 1 or span[0][0] != token:
        return f"the server's echo splits the probe differently ({span!r} for {token!r}): its logprobs are unchecked"
    got = span[0][1]
    if abs(got - expected) > PROBE_TOLERANCE:
        return (
            f"the server's echoed log-probabilities are not those of the echoed tokens: {token!r} after the probe "
            f"scores {got:.3f} echoed but {expected:.3f} when generated (llama-cpp-python's server shifts them by one "
            "position for models without a BOS token); refusing to score choices with them"
        )
    return None
