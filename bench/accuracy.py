"""One framework, one model, one task: zero-shot and BootstrapFewShot accuracy, parse failures, LM calls, wall time.

    python bench/accuracy.py --framework promptless|dspy --task sst2|<bbh task> \
        --model smollm2 --api-base http://127.0.0.1:PORT/v1 [--model-type chat|completion]
    python bench/accuracy.py --framework promptless --task sst2 --model local/smollm2-135m   # embedded

Runs in either framework's venv (it imports only the one it measures), so the
data loading below is plain stdlib. Both sides get the same signature (a class
whose docstring is the instruction, the label typed as a Literal), the same
examples, temperature 0, the same max_tokens, no cache, one item at a time,
and BootstrapFewShot with 4 bootstrapped + 4 labelled demos, one round.
Prints one JSON line; peak RSS is this process's own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Literal

DATA = Path(os.environ.get("PROMPTLESS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MAX_TOKENS = 128
DEMOS = 4


def load_task(task: str, n_train: int, n_test: int) -> tuple[list[dict], list[dict], str, str, str, tuple[str, ...]]:
    """(train, test, instruction, input name, output name, labels) as plain dicts."""
    if task == "sst2":

        def rows(split: str) -> list[dict]:
            with (DATA / "sst2" / f"{split}.tsv").open(encoding="utf-8") as handle:
                reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
                return [
                    {"sentence": r["text"], "sentiment": "positive" if r["label"] == "1" else "negative"}
                    for r in reader
                ]

        labels = ("negative", "positive")
        instruction = "Classify the sentiment of a movie-review sentence."
        return rows("train")[:n_train], rows("dev")[:n_test], instruction, "sentence", "sentiment", labels
    examples = json.loads((DATA / "bbh" / f"{task}.json").read_text(encoding="utf-8"))["examples"]
    items = [{"question": e["input"], "answer": e["target"]} for e in examples]
    labels = tuple(sorted({item["answer"] for item in items}))
    instruction = f"Answer the {task.replace('_', ' ')} question with the final answer only."
    return items[:n_train], items[n_train : n_train + n_test], instruction, "question", "answer", labels


def build_signature(fw: Any, instruction: str, input_name: str, output_name: str, labels: tuple[str, ...]) -> Any:
    """The same class-form signature in either framework (the port-by-import promise)."""
    namespace = {
        "__doc__": instruction,
        "__annotations__": {input_name: str, output_name: Literal[labels]},
        input_name: fw.InputField(),
        output_name: fw.OutputField(),
    }
    return type("TaskSignature", (fw.Signature,), namespace)


def make_lm(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.framework == "dspy":
        import dspy

        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        # litellm sends max_tokens as `max_completion_tokens`, which llama.cpp's server ignores (measured: 375
        # tokens written for max_tokens=16); extra_body puts the plain field back so both sides stop at MAX_TOKENS.
        lm = dspy.LM(
            f"openai/{args.model}", api_base=args.api_base, api_key="local", temperature=0.0,
            max_tokens=MAX_TOKENS, cache=False, num_retries=0, extra_body={"max_tokens": MAX_TOKENS},
        )  # fmt: skip
        return dspy, lm
    import promptless as pl

    if args.api_base:
        lm = pl.LM(
            f"openai/{args.model}", api_base=args.api_base, api_key="local", model_type=args.model_type,
            max_tokens=MAX_TOKENS, cache=False, history_size=100_000,
        )  # fmt: skip
    else:
        lm = pl.LM(args.model, max_tokens=MAX_TOKENS, cache=False, history_size=100_000)
    return pl, lm


def lm_calls(args: argparse.Namespace, lm: Any) -> int:
    return len(lm.history)


def evaluate(program: Any, testset: list[Any], input_name: str, output_name: str) -> dict[str, Any]:
    """Sequential: a failure to parse is counted, not scored (it also scores 0 in accuracy)."""
    correct = failures = 0
    for example in testset:
        try:
            prediction = program(**{input_name: example[input_name]})
            correct += str(prediction[output_name]).strip() == example[output_name]
        except Exception as error:
            failures += 1
            if failures <= 3:
                print(f"  {type(error).__name__}: {str(error)[:200]}", file=sys.stderr)
    return {"accuracy": round(100 * correct / len(testset), 1), "parse_failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=["promptless", "dspy"], required=True)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--model", required=True, help="server alias, or local/<name> for the embedded backend")
    parser.add_argument("--api-base")
    parser.add_argument("--model-type", default="chat", choices=["chat", "completion"])
    parser.add_argument("--train", type=int, default=30)
    parser.add_argument("--test", type=int, default=100)
    args = parser.parse_args()

    train_rows, test_rows, instruction, input_name, output_name, labels = load_task(args.task, args.train, args.test)
    fw, lm = make_lm(args)
    fw.configure(lm=lm)
    trainset = [fw.Example(**row).with_inputs(input_name) for row in train_rows]
    testset = [fw.Example(**row).with_inputs(input_name) for row in test_rows]
    signature = build_signature(fw, instruction, input_name, output_name, labels)

    def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
        return str(prediction[output_name]).strip() == example[output_name]

    result: dict[str, Any] = {"framework": args.framework, "task": args.task, "model": args.model,
                              "backend": "server" if args.api_base else "embedded",
                              "n_train": len(trainset), "n_test": len(testset)}  # fmt: skip
    started = time.perf_counter()
    zero_shot = evaluate(fw.Predict(signature), testset, input_name, output_name)
    result["zero_shot"] = {**zero_shot, "lm_calls": lm_calls(args, lm), "seconds": round(time.perf_counter() - started)}

    calls_before, started = lm_calls(args, lm), time.perf_counter()
    optimizer = fw.BootstrapFewShot(
        metric=metric, max_bootstrapped_demos=DEMOS, max_labeled_demos=DEMOS, max_rounds=1
    )
    compile_error = None
    try:
        compiled = optimizer.compile(fw.Predict(signature), trainset=trainset)
    except Exception as error:
        compile_error, compiled = f"{type(error).__name__}: {str(error)[:200]}", None
    compile_calls, compile_seconds = lm_calls(args, lm) - calls_before, time.perf_counter() - started
    if compiled is not None:
        calls_before, started = lm_calls(args, lm), time.perf_counter()
        scores = evaluate(compiled, testset, input_name, output_name)
        eval_calls, eval_seconds = lm_calls(args, lm) - calls_before, time.perf_counter() - started
        demos = sum(len(predictor.demos) for _, predictor in compiled.named_predictors())
    else:
        scores, eval_calls, eval_seconds, demos = {"accuracy": None, "parse_failures": None}, 0, 0.0, 0
    result["compiled"] = {
        **scores, "demos": demos, "compile_lm_calls": compile_calls, "compile_seconds": round(compile_seconds),
        "eval_lm_calls": eval_calls, "eval_seconds": round(eval_seconds), "error": compile_error,
    }  # fmt: skip
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
