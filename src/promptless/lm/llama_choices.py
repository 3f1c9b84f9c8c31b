"""Score given continuations of a prompt on an embedded model: log P(choice | prompt), the prompt evaluated once.

The prompt (and whatever start all choices share) is evaluated once, reusing llama.cpp's
cached prefix as a generation would; then each choice's remaining tokens go through in one
batch that asks for the logits of every position, after dropping the previous choice's
tokens from the KV cache. So K choices cost one prompt evaluation and K short batches, and
no sampling or grammar work: about what greedy decoding of a short label costs.

Tokens the choices share add the same log-probability to each, so only the tokens after the
shared start are summed: the scores rank the choices and their differences are exact.
This reaches into llama-cpp-python's context and batch (``_ctx``, ``_batch``), the only way
to get every position's logits without a context that keeps logits for the whole window;
``tests/integration`` checks the scores against the model's own greedy choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def common_start(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all ``sequences`` share, leaving each at least one token of its own if it can."""
    shortest = min(len(s) for s in sequences)
    n = 0
    while n < shortest - 1 and all(s[n] == sequences[0][n] for s in sequences):
        n += 1
    return n


def token_logprob(logits: Any, token: int) -> float:
    """log softmax(logits)[token], computed stably."""
    import numpy as np  # lazy: only scoring needs it

    peak = float(np.max(logits))
    return float(logits[token]) - peak - math.log(float(np.sum(np.exp(logits - peak))))


def score_continuations(llm: Any, prompt: list[int], choices: Sequence[list[int]]) -> list[float]:
    """Summed log-probabilities of each choice's tokens after ``prompt`` (the shared start left out)."""
    import llama_cpp  # lazy: a native library
    import numpy as np

    n_vocab = llm.n_vocab()

    def logits_at(i: int) -> Any:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, i), shape=(n_vocab,)).copy()

    shared = common_start(choices)
    head = prompt + list(choices[0][:shared])
    reuse = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens], head)
    llm.n_tokens = min(reuse, len(head) - 1)  # at least the last token is evaluated: its logits score the first
    llm.eval(head[llm.n_tokens :])
    after_head = logits_at(-1)
    base = llm.n_tokens
    scores = []
    try:
        for tokens in choices:
            rest = list(tokens[shared:])
            score = token_logprob(after_head, rest[0])
            if len(rest) > 1:
                llm._ctx.kv_cache_seq_rm(-1, base, -1)
                llm._batch.set_batch(batch=rest[:-1], n_past=base, logits_all=True)
                llm._ctx.decode(llm._batch)
                for j, token in enumerate(rest[1:]):
                    score += token_logprob(logits_at(j), token)
            scores.append(score)
    finally:  # the KV cache holds exactly the head again, as llama-cpp-python's bookkeeping says
        llm._ctx.kv_cache_seq_rm(-1, base, -1)
        llm.n_tokens = base
    return scores
