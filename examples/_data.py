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


def hotpotqa(limit: int | None = None) -> list[pl.Example]:
    """HotPotQA train questions with their answer and ``gold_titles``, the titles of the supporting paragraphs."""
    import json

    path = DATA / "hotpotqa" / "hotpotqa_train_sample.json"
    if not path.is_file():
        raise SystemExit(f"HotPotQA not found at {path}; set PROMPTLESS_DATA to the folder holding hotpotqa/")
    rows = json.loads(path.read_text(encoding="utf-8"))
    examples = [
        pl.Example(
            question=row["question"],
            answer=row["answer"],
            gold_titles=sorted({title for title, _ in row["supporting_facts"]}),
        ).with_inputs("question")
        for row in rows
    ]
    return examples[:limit] if limit else examples


def hotpotqa_corpus() -> list[dict[str, str]]:
    """The Wikipedia lead paragraphs the HotPotQA sample draws on, as ``{"title", "text"}`` passages."""
    import json

    path = DATA / "hotpotqa" / "wiki_paragraphs_corpus.json"
    if not path.is_file():
        raise SystemExit(f"HotPotQA corpus not found at {path}; set PROMPTLESS_DATA to the folder holding hotpotqa/")
    paragraphs = json.loads(path.read_text(encoding="utf-8"))
    return [{"title": title, "text": "".join(sentences).strip()} for title, sentences in paragraphs.items()]


def gsm8k(limit: int | None = None, seed: int | None = 0) -> list[pl.Example]:
    """GSM8K train problems (the only split in ../shared/data): question -> numeric answer (after '####').

    ``seed`` shuffles deterministically before ``limit`` is applied (None keeps file order).
    """
    import json
    import random

    path = DATA / "gsm8k" / "train.jsonl"
    if not path.is_file():
        raise SystemExit(f"GSM8K not found at {path}; set PROMPTLESS_DATA to the folder holding gsm8k/")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            solution, _, final = row["answer"].rpartition("####")
            number = float(final.strip().replace(",", ""))
            examples.append(
                pl.Example(question=row["question"], answer=number, solution=solution.strip()).with_inputs("question")
            )
    if seed is not None:
        random.Random(seed).shuffle(examples)
    return examples[:limit] if limit else examples
