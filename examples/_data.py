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
