"""Compiling into weights on TREC (coarse, 6 classes) with SmolLM2-135M-Instruct embedded, on CPU.

    python bench/finetune.py [--train 400 --val 100 --dev 150] [--phases zero prompt finetune]

Splits are carved from /work/shared/data/trec/train.tsv with a fixed seed: ``dev`` (held out,
never trained or selected on), ``val`` (the compile's valset, for honest selection) and
``train``. Rows: zero-shot; the best prompt-only compile (LabeledFewShot k=16 and
BootstrapFewShot 4+16, each selected on val); BootstrapFinetune (LoRA, train_on_labels, teacher
= the student), with accuracy and 95 % CI on dev, training examples, steps, training wall
time, peak RSS and s/item before/after. One JSON line per row goes to
bench/results/finetune.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Literal

import promptless as pl
from promptless.evaluate.stats import paired_bootstrap_ci
from promptless.optimizers.finetune import BootstrapFinetune

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("PROMPTLESS_DATA", "/work/shared/data"))
RESULTS = HERE / "results" / "finetune.jsonl"

Category = Literal["abbreviation", "description", "entity", "human", "location", "number"]
COARSE = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human", "LOC": "location",
          "NUM": "number"}  # fmt: skip


class Classify(pl.Signature):
    """Classify the question by the kind of answer it expects."""

    question: str = pl.InputField()
    category: Category = pl.OutputField()


def correct(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.category == prediction.category


def splits(n_dev: int, n_val: int, n_train: int) -> tuple[list[pl.Example], list[pl.Example], list[pl.Example]]:
    with (DATA / "trec" / "train.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    examples = [
        pl.Example(question=r["text"], category=COARSE[r["coarse_label"]]).with_inputs("question") for r in rows
    ]
    random.Random(0).shuffle(examples)
    dev, val = examples[:n_dev], examples[n_dev : n_dev + n_val]
    train = examples[n_dev + n_val : n_dev + n_val + n_train]
    return dev, val, train


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seconds_per_item(program: pl.Module, items: list[pl.Example]) -> float:
    """Wall time per item with the cache off (a copy of the program on uncached LMs)."""
    copy = program.deepcopy()
    for predictor in copy.predictors():
        lm = predictor.lm or pl.settings.current().lm
        predictor.lm = pl.LM(lm.model, lora=lm.lora, cache=False)
    started = time.perf_counter()
    for example in items:
        copy(**example.inputs())
    return round((time.perf_counter() - started) / max(1, len(items)), 3)


def evaluate(program: pl.Module, dev: list[pl.Example]) -> pl.EvaluationResult:
    return pl.Evaluate(dev, correct, num_threads=1)(program)


def row(name: str, result: pl.EvaluationResult, **extra: object) -> dict:
    out = {
        "bench": "finetune",
        "task": "trec",
        "model": "smollm2-135m",
        "program": name,
        "accuracy": round(result.score, 1),
        "ci": [round(result.ci[0], 1), round(result.ci[1], 1)],
        "n": result.n,
        "errors": result.errors,
        "s_per_item": round(result.wall_time_s / max(1, result.n), 3),
        **extra,
    }
    print(json.dumps(out), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(out) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--dev", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--lora-layers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--timing-items", type=int, default=40)
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--teacher", choices=["student", "labeled16"], default="student")
    parser.add_argument("--no-labels", action="store_true", help="learn teacher traces only, as DSPy does")
    parser.add_argument("--max-time", type=float, default=None)
    parser.add_argument("--phases", nargs="+", default=["zero", "prompt", "finetune"])
    parser.add_argument("--output-dir", default=None, help="where adapters go (default ~/.cache/promptless/finetune)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "promptless.lm", "promptless.lm.llama"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    pl.configure(lm=pl.LM("local/smollm2-135m"), num_threads=1)
    dev, val, train = splits(args.dev, args.val, args.train)
    student = pl.Predict(Classify)
    zero = None
    best_prompt: tuple[str, pl.EvaluationResult] | None = None
    if "zero" in args.phases or "finetune" in args.phases:
        zero = evaluate(student, dev)
        row("zero-shot", zero)
    if "prompt" in args.phases:
        for name, optimizer in (
            ("LabeledFewShot k=16", pl.LabeledFewShot(k=16)),
            ("BootstrapFewShot 4+16", pl.BootstrapFewShot(correct, max_bootstrapped_demos=4, max_labeled_demos=16)),
        ):
            started = time.perf_counter()
            kwargs = {"valset": val} if name.startswith("Bootstrap") else {}
            compiled = optimizer.compile(student, trainset=train, **kwargs)
            compile_s = time.perf_counter() - started
            result = evaluate(compiled, dev)
            report = getattr(compiled, "compile_report", None)
            row(name, result, compile_s=round(compile_s, 1), chosen=getattr(report, "chosen", None))
            if best_prompt is None or result.score > best_prompt[1].score:
                best_prompt = (name, result)
    if "finetune" in args.phases:
        optimizer = BootstrapFinetune(
            correct,
            epochs=args.epochs,
            lr=args.lr,
            lora_rank=args.rank,
            lora_layers=args.lora_layers,
            batch_size=args.batch_size,
            train_threads=args.train_threads,
            checkpoint=args.checkpoint,
            max_steps=args.max_steps,
            max_time_s=args.max_time,
            train_on_labels=not args.no_labels,
            output_dir=args.output_dir,
            num_threads=1,
        )
        teacher = pl.LabeledFewShot(k=16).compile(student, trainset=train) if args.teacher == "labeled16" else None
        optimizer.teacher = teacher
        plan = optimizer.plan(student, train, val)
        print(plan.summary(), file=sys.stderr, flush=True)
        started = time.perf_counter()
        compiled = optimizer.compile(student, trainset=train, valset=val)
        compile_s = time.perf_counter() - started
        report = compiled.compile_report
        print(report.summary(), file=sys.stderr, flush=True)
        training = report.training[0] if getattr(report, "training", None) else None
        finetuned = student.deepcopy()  # the trained candidate, whichever program the honest choice returned
        finetuned.lm = pl.LM("local/smollm2-135m", lora=training.weights) if training else None
        result = evaluate(finetuned, dev)
        timing = {
            "s_per_item_before": seconds_per_item(student, dev[: args.timing_items]),
            "s_per_item_after": seconds_per_item(finetuned, dev[: args.timing_items]),
        }
        gain = None
        if zero is not None:
            lo, hi = paired_bootstrap_ci(zero.scores, result.scores)
            gain = [round(100 * lo, 1), round(100 * hi, 1)]
        versus_prompt = None
        if best_prompt is not None:
            lo, hi = paired_bootstrap_ci(best_prompt[1].scores, result.scores)
            delta = result.score - best_prompt[1].score
            versus_prompt = {
                "best": best_prompt[0],
                "delta": round(delta, 1),
                "ci": [round(100 * lo, 1), round(100 * hi, 1)],
            }
        name = "BootstrapFinetune" + ("" if args.no_labels else " +labels")
        row(
            name + ("" if args.teacher == "student" else f" (teacher {args.teacher})"),
            result,
            chosen=report.chosen,
            compile_s=round(compile_s, 1),
            train_examples=training.examples if training else None,
            train_steps=training.steps if training else None,
            train_s=round(training.wall_time_s, 1) if training else None,
            train_tokens=training.train_tokens if training else None,
            loss=[training.first_loss, training.last_loss] if training else None,
            val_loss=[training.val_loss_before, training.val_loss_after] if training else None,
            gain_vs_zero_ci=gain,
            vs_best_prompt=versus_prompt,
            resumed_epochs=training.resumed_epochs if training else None,
            forecast_steps=plan.train_steps,
            forecast_train_s=round(plan.train_time_s, 1),
            peak_rss_mb=round(peak_rss_mb()),
            significant=report.significant,
            **timing,
            settings={
                "epochs": args.epochs,
                "lr": args.lr,
                "rank": args.rank,
                "lora_layers": args.lora_layers,
                "batch_size": args.batch_size,
                "train_threads": args.train_threads,
                "train": len(train),
            },
        )


if __name__ == "__main__":
    main()
