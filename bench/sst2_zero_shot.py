"""Zero-shot SST-2 dev on the embedded models, with and without constrained decoding.

    python bench/sst2_zero_shot.py [--limit N] > results.jsonl

One JSON line per (model, constrained): accuracy, parse failures (no retries),
median prompt tokens per call and seconds per item, run one item at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _data import sst2
from sentiment import Sentiment

import promptless as pl


def run(model: str, constrained: bool, devset: list[pl.Example]) -> dict[str, object]:
    lm = pl.LM(model, cache=False, history_size=len(devset) + 1)
    kind = pl.CompletionAdapter if lm.model_type == "completion" else pl.ChatAdapter
    program = pl.Predict(Sentiment, lm=lm, adapter=kind(constrained=constrained))
    lm(pl.Request(prompt="warm-up: the model loads here", max_tokens=1) if lm.model_type == "completion" else "hi")
    correct = failures = 0
    seconds = []
    with pl.context(max_parse_retries=0):
        for example in devset:
            started = time.perf_counter()
            try:
                correct += program(sentence=example.sentence).sentiment == example.sentiment
            except pl.ParseError:
                failures += 1
            seconds.append(time.perf_counter() - started)
    tokens = [entry.response.usage.prompt_tokens for entry in list(lm.history)[1:]]
    return {
        "model": model,
        "constrained": constrained,
        "n": len(devset),
        "accuracy": round(100 * correct / len(devset), 1),
        "parse_failures": failures,
        "median_prompt_tokens": statistics.median(tokens),
        "median_s_per_item": round(statistics.median(seconds), 4),
        "mean_s_per_item": round(sum(seconds) / len(seconds), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=["local/gemma-3-270m", "local/smollm2-135m"])
    parser.add_argument("--modes", nargs="+", default=["constrained", "unconstrained"])
    args = parser.parse_args()
    devset = sst2("dev", args.limit)
    for model in args.models:
        for mode in args.modes:
            constrained = mode == "constrained"
            print(json.dumps(run(model, constrained, devset)), flush=True)


if __name__ == "__main__":
    main()
