"""The small question-type task both fine-tuning integration tests train on (each takes its own slice)."""

from typing import Literal

import promptless as pl

Kind = Literal["human", "location", "number"]
QUESTIONS = [
    ("Who wrote Hamlet ?", "human"),
    ("Where is the Eiffel Tower ?", "location"),
    ("How many legs does a spider have ?", "number"),
    ("Who was the first president of the United States ?", "human"),
    ("What country is Lima the capital of ?", "location"),
    ("How many days are in a leap year ?", "number"),
    ("Who painted the Mona Lisa ?", "human"),
    ("Where is Mount Kilimanjaro ?", "location"),
    ("How far is the Moon from the Earth ?", "number"),
    ("Who invented the telephone ?", "human"),
    ("Where do kangaroos live ?", "location"),
    ("How old is the universe ?", "number"),
    ("Who discovered penicillin ?", "human"),
    ("What city hosted the 1992 Olympics ?", "location"),
    ("When was the Magna Carta signed ?", "number"),
    ("Who composed the Ninth Symphony ?", "human"),
]


class Classify(pl.Signature):
    """Classify the question by the kind of answer it expects."""

    question: str = pl.InputField()
    kind: Kind = pl.OutputField()


def correct(example, prediction, trace=None):
    return example.kind == prediction.kind


def trainset(n: int) -> list[pl.Example]:
    """The first ``n`` questions as training examples (labels balanced in every multiple of three)."""
    return [pl.Example(question=q, kind=k).with_inputs("question") for q, k in QUESTIONS[:n]]
