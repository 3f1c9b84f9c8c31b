"""Loaders for the shared datasets the examples run on (../shared/data, or $PROMPTLESS_DATA)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import promptless as pl

DATA = Path(os.environ.get("PROMPTLESS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def sst2(split: str = "dev", limit: int | None = None) -> list[pl.Example]:
    """SST-2 sentences with labels 'positive'/'negative' (label 1 = positive upstream)."""
    path = DATA / "sst2" / f"{split}.tsv"
    if not path.is_file():
        raise SystemExit(f"SST-2 not found at {path}; set PROMPTLESS_DATA to the folder holding sst2/")
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    examples = [
        pl.Example(sentence=row["text"], sentiment="positive" if row["label"] == "1" else "negative").with_inputs(
            "sentence"
        )
        for row in rows
    ]
    return examples[:limit] if limit else examples


def bbh(task: str) -> list[pl.Example]:
    """A BIG-Bench Hard task as question/answer examples."""
    import json

    path = DATA / "bbh" / f"{task}.json"
    if not path.is_file():
        tasks = sorted(p.stem for p in (DATA / "bbh").glob("*.json"))
        raise SystemExit(f"no BBH task {task!r} at {path}; tasks: {', '.join(tasks)}")
    rows = json.loads(path.read_text(encoding="utf-8"))["examples"]
    return [pl.Example(question=row["input"], answer=row["target"]).with_inputs("question") for row in rows]


TREC_COARSE = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "human",
    "LOC": "location",
    "NUM": "number",
}


def trec(limit: int | None = None) -> list[pl.Example]:
    """TREC questions with their coarse answer category, spelled out."""
    path = DATA / "trec" / "train.tsv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    examples = [
        pl.Example(question=row["text"], category=TREC_COARSE[row["coarse_label"]]).with_inputs("question")
        for row in rows
    ]
    return examples[:limit] if limit else examples
