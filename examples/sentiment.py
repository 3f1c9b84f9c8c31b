"""Sentiment on SST-2 with the embedded model: zero-shot, then compiled with BootstrapFewShot.

    python examples/sentiment.py                  # the `make demo` run: 90 held-out dev sentences, 110 s measured
    python examples/sentiment.py --dev 0          # all 872 dev sentences (bench/sentiment_full.py), ~5 min
    python examples/sentiment.py --zero-shot-only --model local/smollm2-135m --unconstrained

Prints a before/after table (accuracy with a 95 % CI, parse failures, prompt
tokens per call, s/item, LM calls spent compiling) and the gain with its paired
95 % CI on the same held-out sentences, saves the compiled program to JSON and
loads it back into a fresh program.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).parent))

from _data import sst2
from rich.console import Console
from rich.table import Table

import promptless as pl
from promptless.evaluate.stats import paired_bootstrap_ci

DEMO_DEV = 90  # held-out dev sentences `make demo` scores on: a paired CI clear of zero in under 2 minutes


class Sentiment(pl.Signature):
    """Classify the sentiment of a movie review sentence."""

    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


def accuracy(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.sentiment == prediction.sentiment


def row(name: str, result: pl.EvaluationResult, extra: str = "-") -> list[str]:
    parse_failures = sum("ParseError" in detail for detail in result.error_details.values())
    usage = result.usage.total
    return [
        name,
        f"{result.score:.1f}% ({result.ci[0]:.1f}–{result.ci[1]:.1f})",
        str(parse_failures),
        str(result.errors - parse_failures),
        f"{usage.prompt_tokens / max(1, usage.calls):.0f}",
        f"{result.wall_time_s / max(1, result.n):.3f}",
        extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--train", type=int, default=100, help="SST-2 train sentences to compile from")
    parser.add_argument(
        "--dev", type=int, default=DEMO_DEV, help=f"SST-2 dev sentences to evaluate on ({DEMO_DEV}; 0 = all 872)"
    )
    parser.add_argument("--zero-shot-only", action="store_true", help="evaluate zero-shot and stop")
    parser.add_argument("--unconstrained", action="store_true", help="turn off grammar-constrained decoding")
    parser.add_argument("--parse-retries", type=int, default=1, help="retries after an unreadable answer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="artifacts/sentiment.json", help="where to save the compiled program")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)

    lm = pl.LM(args.model, cache=False)  # measure the model, not the cache
    adapter = None
    if args.unconstrained:
        kind = pl.CompletionAdapter if lm.model_type == "completion" else pl.ChatAdapter
        adapter = kind(constrained=False)
    pl.configure(lm=lm, adapter=adapter, max_parse_retries=args.parse_retries, num_threads=args.threads)
    devset = sst2("dev")
    devset = random.Random(0).sample(devset, args.dev) if args.dev else devset
    trainset = random.Random(0).sample(sst2("train"), args.train)
    console.print(
        f"model {args.model} · constrained={not args.unconstrained} · SST-2 train sample {len(trainset)} "
        f"· dev sample {len(devset)} of 872"
    )

    table = Table(title="SST-2 dev")
    for column in ("program", "accuracy (95% CI)", "parse fail", "errors", "tokens/call", "s/item", "compile"):
        table.add_column(column)
    program = pl.Predict(Sentiment)
    evaluate = pl.Evaluate(devset=devset, metric=accuracy, display_progress=True)
    before = evaluate(program)
    table.add_row(*row("zero-shot", before))

    if not args.zero_shot_only:
        optimizer = pl.BootstrapFewShot(accuracy, max_bootstrapped_demos=4, max_labeled_demos=8)
        compiled = optimizer.compile(program, trainset=trainset)
        report = compiled.compile_report
        cost = f"{report.lm_calls} calls, {report.wall_time_s:.1f} s"
        after = evaluate(compiled)
        table.add_row(*row(f"compiled, {len(compiled.demos)} demos", after, cost))
        path = compiled.save(args.out)
        reloaded = pl.Predict(Sentiment).load(path)
        sample = devset[0].sentence
        same = reloaded(sentence=sample).sentiment == compiled(sentence=sample).sentiment
    console.print(table)
    if not args.zero_shot_only:
        lo, hi = paired_bootstrap_ci(before.scores, after.scores)
        gain = 100 * (sum(after.scores) - sum(before.scores)) / len(after.scores)
        console.print(
            f"gain from compiling: {gain:+.1f} points (paired 95% CI {100 * lo:+.1f}..{100 * hi:+.1f}) on the same "
            f"{len(devset)} held-out dev sentences (none of them in the {len(trainset)} training sentences)"
        )

    console.rule("The exact prompt of one call (promptless.inspect_prompt)")
    shown = program if args.zero_shot_only else compiled
    console.print(pl.inspect_prompt(shown, sentence=devset[0].sentence), markup=False, highlight=False)
    if not args.zero_shot_only:
        console.rule("Saved artifact")
        console.print(f"saved to {path}; load it into a fresh program with:")
        console.print(f'    program = pl.Predict(Sentiment).load("{path}")', markup=False, highlight=False)
        console.print(f"reloaded program gives the same answer on a dev sentence: {same}")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    Console().print(f"total wall time {time.perf_counter() - started:.0f} s")
