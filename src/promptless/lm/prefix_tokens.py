"""Tokenize only what changed: the fixed prefix of a program's prompts is tokenized once, not on every call.

Adapters put what never changes (instructions, field spec, demos) first, so consecutive
prompts of one predictor share a long prefix. ``PrefixTokens`` learns that prefix from
two consecutive prompts (their common text, cut back to a paragraph break), keeps its token
ids, and afterwards tokenizes only the per-call suffix. A tokenizer may merge tokens across
the cut, so each learned prefix is checked once: joined ids must equal the ids of the whole
prompt, or the prefix is never used (the prompt is then tokenized whole, as before).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

Tokenize = Callable[[str, bool], list[int]]  # (text, add_bos) -> token ids

MIN_PREFIX_CHARS = 200  # shorter shared text is not worth an entry
MAX_PREFIXES = 16
BREAKS = ("\n\n", "\n")  # where a prefix may end: the adapters' block and line separators


class PrefixTokens:
    """Token ids of prompts, reusing the ids of a learned, verified prefix; thread-safe."""

    def __init__(self, tokenize: Tokenize) -> None:
        self._tokenize = tokenize
        self._prefixes: OrderedDict[str, list[int] | None] = OrderedDict()  # None: checked, does not join
        self._previous = ""
        self._lock = threading.Lock()
        self.reused = 0  # prompts whose prefix ids were reused (for benchmarks and tests)

    def __call__(self, text: str) -> list[int]:
        with self._lock:
            for prefix, ids in reversed(self._prefixes.items()):
                if ids is not None and text.startswith(prefix):
                    self._prefixes.move_to_end(prefix)
                    self.reused += 1
                    return ids + self._tokenize(text[len(prefix) :], False)
            previous, self._previous = self._previous, text
        whole = self._tokenize(text, True)
        prefix = _shared_prefix(previous, text)
        if prefix is not None:
            self._learn(prefix, text, whole)
        return whole

    def _learn(self, prefix: str, text: str, whole: list[int]) -> None:
        ids = self._tokenize(prefix, True)
        joins = ids + self._tokenize(text[len(prefix) :], False) == whole
        with self._lock:
            self._prefixes[prefix] = ids if joins else None
            while len(self._prefixes) > MAX_PREFIXES:
                self._prefixes.popitem(last=False)


def _shared_prefix(a: str, b: str) -> str | None:
    """The longest common start of ``a`` and ``b`` that ends just after a break, if long enough."""
    limit = min(len(a), len(b))
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    common = b[:n]
    for separator in BREAKS:
        cut = common.rfind(separator)
        if cut >= MIN_PREFIX_CHARS:
            return common[: cut + len(separator)]
    return None
