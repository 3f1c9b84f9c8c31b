"""A BIG-Bench Hard task on the embedded model: zero-shot vs BootstrapFewShot, with Predict and ChainOfThought.

    python examples/bbh.py --task sports_understanding [--train 40 --test 100]

When a task's answers come from a small set (yes/no, True/False, ...) the answer
field is typed as that Literal, so constrained decoding can only produce one of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).parent))

from _data import bbh
from rich.console import Console
from rich.table import Table

import promptless as pl


def answer_type(examples: list[pl.Example]) -> Any:
    labels = sorted({ex.answer for ex in examples})
    return Literal[tuple(labels)] if len(labels) <= 12 else str


def task_signature(task: str, examples: list[pl.Example]) -> pl.Signature:
    fields = {
        "question": pl.InputField(),
        "answer": (answer_type(examples), pl.OutputField(desc="the final answer only")),
    }
    return pl.Signature(fields, f"Answer the {task.replace('_', ' ')} question.")


def exact(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return str(example.answer).strip().lower() == str(prediction.answer).strip().lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sports_understanding")
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--demos", type=int, default=4, help="max bootstrapped demos")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)
    pl.configure(lm=pl.LM(args.model), num_threads=2)

    examples = bbh(args.task)
    trainset, testset = examples[: args.train], examples[args.train : args.train + args.test]
    signature = task_signature(args.task, examples)
    console.print(f"{args.task}: train {len(trainset)}, test {len(testset)}; {signature.signature}")
    evaluate = pl.Evaluate(devset=testset, metric=exact, display_progress=True)

    table = Table(title=f"BBH {args.task} on {args.model}")
    for column in ("program", "zero-shot", "BootstrapFewShot", "compile LM calls", "compile s"):
        table.add_column(column)
    for name, make in (("Predict", pl.Predict), ("ChainOfThought", pl.ChainOfThought)):
        program = make(signature)
        before = evaluate(program)
        optimizer = pl.BootstrapFewShot(exact, max_bootstrapped_demos=args.demos, max_labeled_demos=args.demos)
        compiled = optimizer.compile(program, trainset=trainset)
        after = evaluate(compiled)
        report = compiled.compile_report
        table.add_row(
            name,
            f"{before.score:.1f}% ({before.ci[0]:.0f}–{before.ci[1]:.0f})",
            f"{after.score:.1f}% ({after.ci[0]:.0f}–{after.ci[1]:.0f})",
            str(report.lm_calls),
            f"{report.wall_time_s:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
