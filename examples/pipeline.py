"""A two-stage program compiled end to end, with labels only on the final answer.

Stage 1 says in a few words what kind of thing a question asks for; stage 2
classifies the question (TREC's six coarse categories) using that note.
BootstrapFewShot runs the whole program, keeps the runs whose final category is
right, and gives *each stage* demos from those runs: stage 1 learns from its
own intermediate outputs, which nobody labelled.

    python examples/pipeline.py [--train 40 --test 100]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).parent))

from _data import trec
from rich.console import Console

import promptless as pl

Category = Literal["abbreviation", "description", "entity", "human", "location", "number"]


class AnswerKind(pl.Signature):
    """Say in two or three words what kind of thing the answer to the question is."""

    question: str = pl.InputField()
    answer_kind: str = pl.OutputField(desc="e.g. 'a person', 'a city', 'a year', 'a reason'")


class Classify(pl.Signature):
    """Classify the question by the kind of answer it expects."""

    question: str = pl.InputField()
    answer_kind: str = pl.InputField()
    category: Category = pl.OutputField()


class QuestionType(pl.Module):
    def __init__(self) -> None:
        self.describe = pl.Predict(AnswerKind)
        self.classify = pl.Predict(Classify)

    def forward(self, question: str) -> pl.Prediction:
        kind = self.describe(question=question).answer_kind
        return self.classify(question=question, answer_kind=kind)


def correct(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.category == prediction.category


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--test", type=int, default=100)
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)
    pl.configure(lm=pl.LM(args.model), num_threads=2)

    examples = random.Random(0).sample(trec(), args.train + args.test)
    trainset, testset = examples[: args.train], examples[args.train :]
    evaluate = pl.Evaluate(devset=testset, metric=correct, display_progress=True)

    program = QuestionType()
    before = evaluate(program)
    compiled = pl.BootstrapFewShot(correct, max_bootstrapped_demos=4, max_labeled_demos=4).compile(
        program, trainset=trainset
    )
    after = evaluate(compiled)

    console.print(f"zero-shot: {before.summary()}")
    console.print(f"compiled:  {after.summary()}")
    console.print(compiled.compile_report.summary(), markup=False)
    for name, predictor in compiled.named_predictors():
        console.rule(f"demos of stage {name!r} ({predictor.signature.signature})")
        for demo in predictor.demos:
            console.print(demo.toDict(), markup=False)


if __name__ == "__main__":
    main()
