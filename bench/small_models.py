"""Prompt compilation on the embedded models, each lever alone and together (issue 15).

    python bench/small_models.py [--models smollm2-135m gemma-3-270m] [--tasks sst2 trec ...]
                                 [--configs zero first balanced likelihood calibrated ...]

Per task, one seeded shuffle of a training file (../shared/data) is cut into ``dev`` (held
out: never compiled, selected or calibrated on), ``val`` (the compile's valset) and
``train``. Every row is the dev accuracy of one program with its 95 % CI, the paired 95 % CI
of its difference from zero-shot on the same dev items, the LM calls the compile and the
dev run made (a fresh cache per row) and the compile's wall time. Rows go to
bench/results/small_models.jsonl, one JSON line each; a row already there is not run again.

Configs:
  zero        zero-shot, greedy decoding (constrained)
  first       BootstrapFewShot 4+16 as DSPy chooses demos (first passing traces), valset given
  balanced    the same with demos balanced over the labels and interleaved (the new default)
  likelihood  zero-shot, the label chosen by likelihood of each allowed value
  calibrated  zero-shot, likelihood divided by the prior learned on 32 train inputs (batch calibration)
  cf          zero-shot, calibrated on content-free inputs instead
  balanced+calibrated  the balanced compile, then calibrated
  search      BootstrapFewShotWithRandomSearch with the joint search space (demos count, demo set,
              decoding mode, ensemble), minibatches with finalists, honest selection: the new defaults
For the demo rows the raw compiled program is scored (``fallback_to_baseline=False``) and the
honest selection's verdict is recorded beside it (``significant``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Literal

import promptless as pl
from promptless.evaluate.stats import paired_bootstrap_ci
from promptless.lm.cache import Cache
from promptless.optimizers.calibration import with_label_choice

DATA = Path(os.environ.get("PROMPTLESS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).parent / "results" / "small_models.jsonl"
TREC = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human", "LOC": "location",
        "NUM": "number"}  # fmt: skip
BBH = {"sports": "sports_understanding", "boolean": "boolean_expressions", "date": "date_understanding"}


def rows_of(task: str) -> tuple[list[tuple[str, str]], str, str, str]:
    """(input text, label) pairs, the input and output field names, and the instruction."""
    if task == "sst2":
        with (DATA / "sst2" / "train.tsv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        pairs = [(r["text"], "positive" if r["label"] == "1" else "negative") for r in rows]
        return pairs, "sentence", "sentiment", "Classify the sentiment of the movie review sentence."
    if task == "trec":
        with (DATA / "trec" / "train.tsv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        pairs = [(r["text"], TREC[r["coarse_label"]]) for r in rows]
        return pairs, "question", "category", "Classify the question by the kind of answer it expects."
    if task == "banking77":
        with (DATA / "banking77" / "train.csv").open(encoding="utf-8") as handle:
            pairs = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
        return pairs, "query", "intent", "Classify the banking customer's query by its intent."
    if task in BBH:
        data = json.loads((DATA / "bbh" / f"{BBH[task]}.json").read_text(encoding="utf-8"))["examples"]
        pairs = [(r["input"], r["target"]) for r in data]
        return pairs, "question", "answer", f"Answer the {BBH[task].replace('_', ' ')} question."
    raise SystemExit(f"unknown task {task!r}")


def splits(task: str, n_dev: int, n_val: int, n_train: int) -> tuple[type[pl.Signature], list, list, list]:
    pairs, source, target, instruction = rows_of(task)
    labels = tuple(sorted({label for _, label in pairs}))
    fields = {source: pl.InputField(), target: (Literal[labels], pl.OutputField())}
    signature = pl.Signature(fields, instruction)
    examples = [pl.Example({source: text, target: label}).with_inputs(source) for text, label in pairs]
    random.Random(0).shuffle(examples)
    dev, val = examples[:n_dev], examples[n_dev : n_dev + n_val]
    train = examples[n_dev + n_val : n_dev + n_val + n_train]
    return signature, dev, val, train


def metric_for(target: str) -> Any:
    def correct(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
        return example[target] == prediction[target]

    correct.__name__ = f"{target}_correct"
    return correct


def compile_config(config: str, student: pl.Module, metric: Any, train: list, val: list, threads: int) -> Any:
    """The program a config compiles (and the optimizer's report, when there is one)."""
    demos = {"max_bootstrapped_demos": 4, "max_labeled_demos": 16, "num_threads": threads}
    if config == "zero":
        return student
    if config in ("first", "balanced", "balanced+calibrated"):
        selection = "first" if config == "first" else "balanced"
        optimizer = pl.BootstrapFewShot(metric, demo_selection=selection, fallback_to_baseline=False, **demos)
        program = optimizer.compile(student, trainset=train, valset=val)
        if config == "balanced+calibrated":
            program = with_label_choice(program, "calibrated", train, num_threads=threads)
        return program
    if config == "likelihood":
        return with_label_choice(student, "likelihood")
    if config == "calibrated":
        return with_label_choice(student, "calibrated", train, num_threads=threads)
    if config == "cf":
        return with_label_choice(student, "calibrated", train, source="content-free", num_threads=threads)
    if config == "search":
        optimizer = pl.BootstrapFewShotWithRandomSearch(
            metric, search_space="joint", num_candidate_programs=10, **demos
        )
        return optimizer.compile(student, trainset=train, valset=val)
    raise SystemExit(f"unknown config {config!r}")


def run_row(task: str, model: str, config: str, args: argparse.Namespace, zero: list[float] | None) -> dict[str, Any]:
    signature, dev, val, train = splits(task, args.dev, args.val, args.train)
    target = next(iter(signature.output_fields))
    metric = metric_for(target)
    row: dict[str, Any] = {"task": task, "model": model, "config": config, "n": [len(dev), len(val), len(train)]}
    lm = pl.LM(f"local/{model}", cache=Cache(disk=False))  # a fresh cache per row: its calls are its own
    with pl.context(lm=lm, num_threads=args.threads), pl.track_usage() as usage:
        started = time.perf_counter()
        program = compile_config(config, pl.Predict(signature), metric, train, val, args.threads)
        compile_s = time.perf_counter() - started
        compile_calls = usage.total.calls
        result = pl.Evaluate(dev, metric, num_threads=args.threads)(program)
    report = getattr(program, "compile_report", None)
    row |= {
        "dev": round(result.score, 1),
        "dev_ci": [round(x, 1) for x in result.ci],
        "compile_s": round(compile_s, 1),
        "compile_calls": compile_calls,
        "dev_calls": usage.total.calls - compile_calls,
        "dev_s_per_item": round((time.perf_counter() - started - compile_s) / len(dev), 3),
        "scores": result.scores,
    }
    if report is not None:
        row |= {"chosen": report.chosen, "significant": report.significant, "notes": report.notes[-3:]}
    if zero is not None and config != "zero":
        low, high = paired_bootstrap_ci(zero, result.scores)
        row |= {"delta": round(100 * (sum(result.scores) - sum(zero)) / len(zero), 1),
                "delta_ci": [round(100 * low, 1), round(100 * high, 1)]}  # fmt: skip
    return row


def done() -> dict[tuple[str, str, str], dict[str, Any]]:
    if not RESULTS.is_file():
        return {}
    rows = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(r["task"], r["model"], r["config"]): r for r in rows}


def table() -> str:
    """The results as one markdown table per model: a row per task, a column per config."""
    rows = done()
    out = []
    for model in sorted({m for _, m, _ in rows}):
        configs = [c for c in CONFIG_ORDER if any(m == model and k == c for _, m, k in rows)]
        out += [f"**{model}** (dev accuracy %, 95 % CI; paired gain over zero-shot with its 95 % CI)", ""]
        out.append("| task | " + " | ".join(configs) + " |")
        out.append("|---" * (len(configs) + 1) + "|")
        for task in [t for t in TASK_ORDER if any(m == model and k == t for k, m, _ in rows)]:
            cells = []
            for config in configs:
                row = rows.get((task, model, config))
                if row is None:
                    cells.append("–")
                    continue
                cell = f"{row['dev']:.0f} ({row['dev_ci'][0]:.0f}–{row['dev_ci'][1]:.0f})"
                if "delta" in row:
                    low, high = row["delta_ci"]
                    mark = "**" if low > 0 else ""
                    cell += f"<br>{mark}{row['delta']:+.0f} ({low:+.0f}..{high:+.0f}){mark}"
                if row.get("chosen") and config.startswith("search"):
                    cell += f"<br>chosen: {row['chosen']}"
                cells.append(cell)
            out.append(f"| {task} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


CONFIG_ORDER = [
    "zero", "first", "balanced", "likelihood", "calibrated", "cf", "balanced+calibrated", "search", "search@val100",
]  # fmt: skip
TASK_ORDER = ["sst2", "trec", "banking77", "sports", "boolean", "date"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma-3-270m"])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "trec", "banking77", "sports", "boolean", "date"])
    parser.add_argument("--configs", nargs="+", default=["zero", "first", "balanced", "likelihood", "calibrated"])
    parser.add_argument("--dev", type=int, default=100)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="print the results as markdown tables and stop")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    RESULTS.parent.mkdir(exist_ok=True)
    for model in args.models:  # config by config over the tasks, so an interrupted run has whole columns
        for config in ["zero", *[c for c in args.configs if c != "zero"]]:
            # dev is the first slice of the shuffle whatever the valset's size: zero-shot rows stay comparable
            label = config if args.val == 50 or config == "zero" else f"{config}@val{args.val}"
            for task in args.tasks:
                existing = done()
                if (task, model, label) in existing:
                    continue
                zero = existing.get((task, model, "zero"), {}).get("scores")
                row = run_row(task, model, config, args, zero)
                row["config"] = label
                row["load"] = os.getloadavg()[0]
                with RESULTS.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                shown = {k: v for k, v in row.items() if k not in ("scores", "notes")}
                print(json.dumps(shown), flush=True)


if __name__ == "__main__":
    sys.exit(main())
