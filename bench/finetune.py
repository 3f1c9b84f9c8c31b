"""Compiling into weights with an embedded model on CPU: TREC, BANKING77, SST-2, a two-step program.

    python bench/finetune.py --task trec|banking77|sst2|trec-2step [--model smollm2-135m|gemma-3-270m]
                             [--train 400 --val 100 --dev 150] [--phases zero prompt finetune together]

Splits are carved from the task's training file in /work/shared/data with a fixed seed: ``dev``
(held out, never trained or selected on), ``val`` (the compile's valset, for honest selection) and
``train``. Rows: zero-shot; the best prompt-only compile (LabeledFewShot k=16 and BootstrapFewShot
4+16, each selected on val); BootstrapFinetune (LoRA, train_on_labels unless --no-labels); with
``together``, BetterTogether (BootstrapFewShot 4+16 and the same BootstrapFinetune). Each row has
accuracy and 95 % CI on dev, the per-item dev scores, the paired CI of the gain over the best
prompt-only compile, training examples, steps, wall time, peak RSS and s/item before/after, and
goes to bench/results/finetune.jsonl as one JSON line.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import promptless as pl
from promptless.evaluate.stats import paired_bootstrap_ci
from promptless.optimizers.finetune import BootstrapFinetune

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("PROMPTLESS_DATA", "/work/shared/data"))
RESULTS = HERE / "results" / "finetune.jsonl"
MODELS = ("smollm2-135m", "gemma-3-270m")  # the embedded models BootstrapFinetune trains

Category = Literal["abbreviation", "description", "entity", "human", "location", "number"]
COARSE = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human", "LOC": "location",
          "NUM": "number"}  # fmt: skip
Sentiment = Literal["negative", "positive"]


class Classify(pl.Signature):
    """Classify the question by the kind of answer it expects."""

    question: str = pl.InputField()
    category: Category = pl.OutputField()


class AnswerKind(pl.Signature):
    """Say in two or three words what kind of thing the answer to the question is."""

    question: str = pl.InputField()
    answer_kind: str = pl.OutputField(desc="e.g. 'a person', 'a city', 'a year', 'a reason'")


class ClassifyWithKind(pl.Signature):
    """Classify the question by the kind of answer it expects."""

    question: str = pl.InputField()
    answer_kind: str = pl.InputField()
    category: Category = pl.OutputField()


class QuestionType(pl.Module):
    """Two steps, labels only on the last: a short note on the answer's kind, then the category."""

    def __init__(self) -> None:
        self.describe = pl.Predict(AnswerKind, max_tokens=24)  # a few words; a 135M model may ramble on
        self.classify = pl.Predict(ClassifyWithKind)

    def forward(self, question: str) -> pl.Prediction:
        kind = self.describe(question=question).answer_kind
        return self.classify(question=question, answer_kind=kind)


class Sentiment2(pl.Signature):
    """Classify the sentiment of the movie review sentence."""

    sentence: str = pl.InputField()
    sentiment: Sentiment = pl.OutputField()


def _banking_signature() -> type[pl.Signature]:
    intents = json.loads((DATA / "banking77" / "categories.json").read_text(encoding="utf-8"))

    class Intent(pl.Signature):
        """Classify the banking customer's message by its intent."""

        text: str = pl.InputField()
        intent: Literal[tuple(intents)] = pl.OutputField()  # type: ignore[valid-type]

    return Intent


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def _trec() -> list[pl.Example]:
    rows = _tsv(DATA / "trec" / "train.tsv")
    return [pl.Example(question=r["text"], category=COARSE[r["coarse_label"]]).with_inputs("question") for r in rows]


def _banking() -> list[pl.Example]:
    with (DATA / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [pl.Example(text=r["text"], intent=r["category"]).with_inputs("text") for r in rows]


def _sst2() -> list[pl.Example]:
    names = {"0": "negative", "1": "positive"}
    rows = _tsv(DATA / "sst2" / "train.tsv")
    return [pl.Example(sentence=r["text"], sentiment=names[r["label"]]).with_inputs("sentence") for r in rows]


@dataclass(frozen=True)
class Task:
    """One benchmark task: its data (the training file), its program and the label its metric compares."""

    load: Callable[[], list[pl.Example]]
    program: Callable[[], pl.Module]
    label: str


TASKS = {
    "trec": Task(_trec, lambda: pl.Predict(Classify), "category"),
    "banking77": Task(_banking, lambda: pl.Predict(_banking_signature()), "intent"),
    "sst2": Task(_sst2, lambda: pl.Predict(Sentiment2), "sentiment"),
    "trec-2step": Task(_trec, QuestionType, "category"),
}


def metric_for(label: str) -> Callable[..., bool]:
    def correct(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
        return example[label] == getattr(prediction, label, None)

    return correct


def splits(task: Task, n_dev: int, n_val: int, n_train: int) -> tuple[list[pl.Example], ...]:
    """Held-out dev, the compile's valset and the trainset: disjoint slices of one seeded shuffle."""
    examples = task.load()
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


def evaluate(program: pl.Module, dev: list[pl.Example], metric: Callable[..., bool]) -> pl.EvaluationResult:
    return pl.Evaluate(dev, metric, num_threads=1)(program)


def with_weights(student: pl.Module, trainings: list) -> pl.Module:
    """The student on the trained adapters, whichever program the compile's honest choice returned."""
    program = student.deepcopy()
    predictors = dict(program.named_predictors())
    model = pl.settings.current().lm.model
    for training in trainings:
        for name in predictors if training.task == "*" else [training.task]:
            predictors[name].lm = pl.LM(model, lora=training.weights)
    return program


class Rows:
    """Rows of one run, printed and appended to bench/results/finetune.jsonl as they are measured."""

    def __init__(self, task: str, model: str, path: Path = RESULTS) -> None:
        self.task, self.model, self.path = task, model, path

    def __call__(self, name: str, result: pl.EvaluationResult, **extra: object) -> dict:
        out = {
            "bench": "finetune",
            "task": self.task,
            "model": self.model,
            "program": name,
            "accuracy": round(result.score, 1),
            "ci": [round(result.ci[0], 1), round(result.ci[1], 1)],
            "n": result.n,
            "errors": result.errors,
            "s_per_item": round(result.wall_time_s / max(1, result.n), 3),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            **extra,
            "scores": [round(x, 3) for x in result.scores],  # per dev item, in split order: paired CIs across runs
        }
        print(json.dumps(out), flush=True)
        self.path.parent.mkdir(exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(out) + "\n")
        return out


def compare(
    result: pl.EvaluationResult, zero: pl.EvaluationResult | None, best: tuple[str, pl.EvaluationResult] | None
) -> dict:
    """Paired 95 % CIs of the gain over zero-shot and over the best prompt-only compile, on the same dev items."""
    out: dict[str, object] = {}
    if zero is not None:
        lo, hi = paired_bootstrap_ci(zero.scores, result.scores)
        out["gain_vs_zero_ci"] = [round(100 * lo, 1), round(100 * hi, 1)]
    if best is not None:
        lo, hi = paired_bootstrap_ci(best[1].scores, result.scores)
        out["vs_best_prompt"] = {
            "best": best[0],
            "delta": round(result.score - best[1].score, 1),
            "ci": [round(100 * lo, 1), round(100 * hi, 1)],
        }
    return out


def training_fields(trainings: list) -> dict:
    if not trainings:
        return {}
    return {
        "train_examples": sum(t.examples for t in trainings),
        "train_steps": sum(t.steps for t in trainings),
        "train_s": round(sum(t.wall_time_s for t in trainings), 1),
        "train_tokens": sum(t.train_tokens for t in trainings),
        "loss": [[t.first_loss, t.last_loss] for t in trainings],
        "val_loss": [[t.val_loss_before, t.val_loss_after] for t in trainings],
        "stopped_by": [t.stopped_by for t in trainings],
        "resumed_epochs": [t.resumed_epochs for t in trainings],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="trec")
    parser.add_argument("--model", choices=MODELS, default=MODELS[0])
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
    parser.add_argument(
        "--teacher", choices=["student", "labeled16", "best-prompt"], default="student",
        help="best-prompt: the best prompt-only compile of this run (DSPy's recipe for a multi-step program)",
    )  # fmt: skip
    parser.add_argument("--no-labels", action="store_true", help="learn teacher traces only, as DSPy does")
    parser.add_argument("--max-time", type=float, default=None)
    parser.add_argument("--min-examples", type=int, default=8)
    parser.add_argument("--strategy", default="p -> w -> p", help="BetterTogether's strategy (phase 'together')")
    parser.add_argument("--phases", nargs="+", default=["zero", "prompt", "finetune"],
                        choices=["zero", "prompt", "finetune", "together"])  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON-lines file rows are appended to")
    parser.add_argument("--output-dir", default=None, help="where adapters go (default ~/.cache/promptless/finetune)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "promptless.lm", "promptless.lm.llama"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    task = TASKS[args.task]
    metric = metric_for(task.label)
    row = Rows(args.task, args.model, args.results)
    pl.configure(lm=pl.LM(f"local/{args.model}"), num_threads=1)
    dev, val, train = splits(task, args.dev, args.val, args.train)
    student = task.program()
    settings = {
        "epochs": args.epochs, "lr": args.lr, "rank": args.rank, "lora_layers": args.lora_layers,
        "batch_size": args.batch_size, "train_threads": args.train_threads, "train": len(train), "val": len(val),
        "max_steps": args.max_steps, "max_time_s": args.max_time,
    }  # fmt: skip
    zero = None
    best_prompt: tuple[str, pl.EvaluationResult, pl.Module] | None = None
    if {"zero", "finetune", "together"} & set(args.phases):
        zero = evaluate(student, dev, metric)
        row("zero-shot", zero)
    if "prompt" in args.phases:
        for name, optimizer in (
            ("LabeledFewShot k=16", pl.LabeledFewShot(k=16)),
            ("BootstrapFewShot 4+16", pl.BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=16)),
        ):
            started = time.perf_counter()
            kwargs = {"valset": val} if name.startswith("Bootstrap") else {}
            compiled = optimizer.compile(student, trainset=train, **kwargs)
            compile_s = time.perf_counter() - started
            result = evaluate(compiled, dev, metric)
            report = getattr(compiled, "compile_report", None)
            row(name, result, compile_s=round(compile_s, 1), chosen=getattr(report, "chosen", None))
            if best_prompt is None or result.score > best_prompt[1].score:
                best_prompt = (name, result, compiled)
    best = best_prompt[:2] if best_prompt is not None else None

    def weight_optimizer() -> BootstrapFinetune:
        return BootstrapFinetune(
            metric,
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
            min_examples=args.min_examples,
            num_threads=1,
        )

    if "finetune" in args.phases:
        optimizer = weight_optimizer()
        if args.teacher == "labeled16":
            optimizer.teacher = pl.LabeledFewShot(k=16).compile(student, trainset=train)
        elif args.teacher == "best-prompt":
            if best_prompt is None:
                parser.error("--teacher best-prompt needs the 'prompt' phase")
            optimizer.teacher = best_prompt[2]
        plan = optimizer.plan(student, train, val)
        print(plan.summary(), file=sys.stderr, flush=True)
        started = time.perf_counter()
        compiled = optimizer.compile(student, trainset=train, valset=val)
        compile_s = time.perf_counter() - started
        report = compiled.compile_report
        print(report.summary(), file=sys.stderr, flush=True)
        trainings = list(getattr(report, "training", None) or [])
        finetuned = with_weights(student, trainings)
        result = evaluate(finetuned, dev, metric)
        timing = {
            "s_per_item_before": seconds_per_item(student, dev[: args.timing_items]),
            "s_per_item_after": seconds_per_item(finetuned, dev[: args.timing_items]),
        }
        name = "BootstrapFinetune" + ("" if args.no_labels else " +labels")
        row(
            name + ("" if args.teacher == "student" else f" (teacher {args.teacher})"),
            result,
            chosen=report.chosen,
            compile_s=round(compile_s, 1),
            **training_fields(trainings),
            **compare(result, zero, best),
            forecast_steps=plan.train_steps,
            forecast_train_s=round(plan.train_time_s, 1),
            peak_rss_mb=round(peak_rss_mb()),
            significant=report.significant,
            notes=report.notes,
            **timing,
            settings=settings,
        )
    if "together" in args.phases:
        optimizer = pl.BetterTogether(
            metric,
            prompt_optimizer=pl.BootstrapFewShot(metric, max_bootstrapped_demos=4, max_labeled_demos=16),
            weight_optimizer=weight_optimizer(),
            strategy=args.strategy,
        )
        started = time.perf_counter()
        compiled = optimizer.compile(student, trainset=train, valset=val)
        compile_s = time.perf_counter() - started
        report = compiled.compile_report
        print(report.summary(), file=sys.stderr, flush=True)
        result = evaluate(compiled, dev, metric)
        row(
            f"BetterTogether {optimizer.strategy}",
            result,
            chosen=report.chosen,
            compile_s=round(compile_s, 1),
            val_scores={c.name: None if c.score is None else round(c.score, 1) for c in report.candidates},
            **training_fields(list(getattr(report, "training", None) or [])),
            **compare(result, zero, best),
            peak_rss_mb=round(peak_rss_mb()),
            significant=report.significant,
            notes=report.notes,
            s_per_item_before=seconds_per_item(student, dev[: args.timing_items]),
            s_per_item_after=seconds_per_item(compiled, dev[: args.timing_items]),
            settings=settings,
        )


if __name__ == "__main__":
    main()
