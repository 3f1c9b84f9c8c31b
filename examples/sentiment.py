"""Zero-shot sentiment on SST-2 dev with the embedded model: accuracy, parse failures, tokens, speed.

python examples/sentiment.py [--model local/gemma-3-270m] [--limit N] [--unconstrained]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).parent))

from _data import sst2
from rich.console import Console
from rich.table import Table

import promptless as pl


class Sentiment(pl.Signature):
    """Classify the sentiment of a movie review sentence."""

    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


def accuracy(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.sentiment == prediction.sentiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--limit", type=int, default=None, help="first N dev sentences (default: all 872)")
    parser.add_argument("--unconstrained", action="store_true", help="turn off grammar-constrained decoding")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parse-retries", type=int, default=1, help="retries after an unreadable answer")
    args = parser.parse_args()
    console = Console()

    lm = pl.LM(args.model, cache=False)  # measure the model, not the cache
    adapter = None
    if args.unconstrained:
        adapter = (
            pl.CompletionAdapter(constrained=False)
            if lm.model_type == "completion"
            else pl.ChatAdapter(constrained=False)
        )
    pl.configure(lm=lm, adapter=adapter, max_parse_retries=args.parse_retries)
    devset = sst2("dev", args.limit)
    console.print(f"SST-2 dev: {len(devset)} sentences · model {args.model} · constrained={not args.unconstrained}")

    program = pl.Predict(Sentiment)
    started = time.perf_counter()
    result = pl.Evaluate(devset=devset, metric=accuracy, num_threads=args.threads, display_progress=True)(program)
    wall = time.perf_counter() - started

    parse_failures = sum("ParseError" in detail for detail in result.error_details.values())
    prompt_tokens = [entry.response.usage.prompt_tokens for entry in lm.history if not entry.response.cached]
    table = Table(title="Zero-shot SST-2 dev")
    for column in ("model", "accuracy (95% CI)", "parse failures", "other errors", "median prompt tokens", "s/item"):
        table.add_column(column)
    table.add_row(
        args.model,
        f"{result.score:.1f}% ({result.ci[0]:.1f}–{result.ci[1]:.1f})",
        str(parse_failures),
        str(result.errors - parse_failures),
        f"{statistics.median(prompt_tokens):.0f}" if prompt_tokens else "-",
        f"{wall / len(devset):.3f}",
    )
    console.print(table)
    console.print(
        f"LM calls {result.usage.total.calls}, prompt tokens {result.usage.total.prompt_tokens}, "
        f"completion tokens {result.usage.total.completion_tokens}, wall {wall:.1f} s"
    )
    console.rule("The exact prompt of one call (promptless.inspect_prompt)")
    console.print(pl.inspect_prompt(program, sentence=devset[0].sentence), markup=False, highlight=False)


if __name__ == "__main__":
    main()
