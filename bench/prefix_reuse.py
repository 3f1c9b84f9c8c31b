"""How much the embedded backend's prefix reuse saves: a long shared prefix, then short varying suffixes.

    python bench/prefix_reuse.py [--model local/gemma-3-270m] [--prefix-tokens 1500] [--runs 5]

Each run sends the same prompt twice with a different last line: the first call
evaluates the whole prompt (cold: a different prompt ran before it), the second
reuses the shared prefix. Prints medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import promptless as pl
from promptless.lm.base import Request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--prefix-tokens", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lm = pl.LM(args.model, cache=False)
    backend = lm.backend
    sentence = "The committee reviewed the annual report and found the figures consistent with the forecast. "
    per_sentence = backend.count_tokens(sentence)
    cold, warm = [], []
    for run in range(args.runs):
        prefix = f"Document {run}.\n" + sentence * (args.prefix_tokens // per_sentence)
        lm(Request(prompt=f"Unrelated warm-up {run}.", max_tokens=1))  # evict the previous prefix
        for times, suffix in ((cold, "Question: is the report consistent?"), (warm, "Question: was it reviewed?")):
            started = time.perf_counter()
            response = lm(Request(prompt=f"{prefix}\n{suffix}\nAnswer:", max_tokens=1))
            times.append(time.perf_counter() - started)
        reused = response.usage.cached_tokens
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"{args.model}: prompt of {response.usage.prompt_tokens} tokens, {reused} reused on the second call")
    print(f"cold {c * 1000:.0f} ms, warm {w * 1000:.0f} ms (medians of {args.runs}): {c / w:.1f}x faster")


if __name__ == "__main__":
    main()
