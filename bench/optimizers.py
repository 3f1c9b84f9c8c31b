"""Optimizers side by side on BBH with the embedded model: accuracy with CI, LM calls, wall time, forecast vs actual.

    python bench/optimizers.py --tasks sports_understanding boolean_expressions \
        --model local/smollm2-135m --optimizers zero-shot bootstrap mipro-light gepa-light

Per task: train / val / test are disjoint slices of the BBH file. Each optimizer
compiles on train (selection on val, under the honest-selection rule) and its
chosen program is scored once on test; `plan()` is called first and its forecast
is set beside the calls the compile made (backend calls + cache hits). Each
optimizer gets a fresh on-disk cache, so no run is helped by another's calls.
One JSON line per (task, optimizer) is appended to bench/results/optimizers.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from _data import bbh

import promptless as pl
from promptless.lm.cache import Cache

RESULTS = Path(__file__).parent / "results" / "optimizers.jsonl"


def signature_for(task: str, examples: list[pl.Example]) -> pl.Signature:
    labels = tuple(sorted({ex.answer for ex in examples}))
    answer: Any = Literal[labels] if len(labels) <= 12 else str
    fields = {"question": pl.InputField(), "answer": (answer, pl.OutputField(desc="the final answer only"))}
    return pl.Signature(fields, f"Answer the {task.replace('_', ' ')} question.")


def exact(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> float:
    return float(str(example.answer).strip().lower() == str(prediction.answer).strip().lower())


def exact_with_feedback(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> Any:
    from promptless.evaluate.feedback import ScoreWithFeedback

    score = exact(example, prediction)
    feedback = "correct" if score else f"expected {example.answer!r}, got {prediction.answer!r}"
    return ScoreWithFeedback(score, feedback)


def make_optimizer(name: str, threads: int) -> Any:
    if name == "bootstrap":
        return pl.BootstrapFewShot(exact, max_bootstrapped_demos=4, max_labeled_demos=4, num_threads=threads)
    if name == "mipro-light":
        from promptless.optimizers.mipro import MIPROv2

        return MIPROv2(exact, auto="light", num_threads=threads)
    if name == "gepa-light":
        from promptless.optimizers.reflective import GEPA

        return GEPA(exact_with_feedback, auto="light", num_threads=threads)
    raise SystemExit(f"unknown optimizer {name!r}")


def run_one(task: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    examples = bbh(task)
    n_train, n_val, n_test = args.train, args.val, args.test
    train = examples[:n_train]
    val = examples[n_train : n_train + n_val]
    test = examples[n_train + n_val : n_train + n_val + n_test]
    student = pl.Predict(signature_for(task, examples))
    row: dict[str, Any] = {"task": task, "model": args.model, "optimizer": name, "n": [n_train, n_val, n_test]}
    with tempfile.TemporaryDirectory() as cache_dir:
        lm = pl.LM(args.model, cache=Cache(cache_dir))
        with pl.context(lm=lm, num_threads=args.threads):
            started = time.perf_counter()
            if name == "zero-shot":
                result = pl.Evaluate(test, exact, num_threads=args.threads)(student)
                row |= {"test": round(result.score, 1), "test_ci": [round(x, 1) for x in result.ci]}
                row |= {"lm_calls": result.usage.total.calls, "seconds": round(time.perf_counter() - started)}
                return row
            optimizer = make_optimizer(name, args.threads)
            forecast = optimizer.plan(student, train, val)
            forecast_s = time.perf_counter() - started
            compiled = optimizer.compile(student, trainset=train, valset=val, testset=test)
            report = compiled.compile_report
    others = [c for c in report.candidates if c.delta is not None]
    best = max(others, key=lambda c: c.delta, default=None)
    row |= {
        "chosen": report.chosen,
        "best_candidate": best.name if best else None,
        "best_val_delta": round(best.delta, 1) if best else None,
        "best_val_delta_ci": [round(x, 1) for x in best.delta_ci] if best and best.delta_ci else None,
        "significant": report.significant,
        "val_candidates": len(report.candidates),
        "test": round(report.test.score, 1) if report.test else None,
        "test_ci": [round(x, 1) for x in report.test.ci] if report.test else None,
        "forecast_calls": forecast.lm_calls,
        "actual_calls": report.total_calls,
        "backend_calls": report.lm_calls,
        "tokens": report.prompt_tokens + report.completion_tokens,
        "stopped_by_budget": report.stopped_by_budget,
        "seconds": round(time.perf_counter() - started),
        "plan_seconds": round(forecast_s),
        "summary": report.summary(),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["sports_understanding", "boolean_expressions"])
    parser.add_argument("--optimizers", nargs="+", default=["zero-shot", "bootstrap", "mipro-light", "gepa-light"])
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--val", type=int, default=30)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    RESULTS.parent.mkdir(exist_ok=True)
    for task in args.tasks:
        for name in args.optimizers:
            row = run_one(task, name, args)
            print(row.pop("summary", ""), file=sys.stderr)
            print(json.dumps(row), flush=True)
            with RESULTS.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
