"""Accuracy side by side: each model served by one llama.cpp server, reached by DSPy and by promptless, plus embedded.

    python bench/accuracy_suite.py --dspy-python ../.bench-dspy-venv/bin/python [--test 50 --train 30]

For each model a fresh `python -m llama_cpp.server` starts on 127.0.0.1; per
task the runs alternate promptless-server, DSPy-server, promptless-embedded
(the order flips on every other task). Each run is a fresh process of its own
venv (bench/accuracy.py). Results append to bench/results/accuracy.jsonl; a run
already there is skipped, so a killed suite resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from server import llama_server  # noqa: E402

RESULTS = HERE / "results" / "accuracy.jsonl"
TASKS = ("sst2", "sports_understanding", "boolean_expressions")
# alias on the server, name of the embedded model, how promptless prompts it (Gemma-3-270M is a base model)
MODELS = {"smollm2": ("smollm2-135m", "chat"), "gemma": ("gemma-3-270m", "completion")}


def done_runs() -> set[tuple[str, str, str, str]]:
    if not RESULTS.is_file():
        return set()
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return {(r["framework"], r["backend"], r["model"], r["task"]) for r in rows}


def run(python: str, args: list[str]) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "true", "TQDM_DISABLE": "1"}
    print("$", Path(python).parent.parent.name, "accuracy.py", " ".join(args), flush=True)
    completed = subprocess.run(
        [python, str(HERE / "accuracy.py"), *args], env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        print(f"  failed ({completed.returncode}):\n{completed.stderr[-2000:]}", flush=True)
        return
    print("  ", lines[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(lines[-1] + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dspy-python", required=True)
    parser.add_argument("--promptless-python", default=sys.executable)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--train", type=int, default=30)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    from promptless.lm.models import model_path

    size = ["--train", str(args.train), "--test", str(args.test)]
    for alias in args.models:
        local_name, model_type = MODELS[alias]
        with llama_server(model_path(local_name), alias, args.threads) as api_base:
            for index, task in enumerate(args.tasks):
                served = ["--task", task, "--model", alias, "--api-base", api_base, "--model-type", model_type]
                plan = [
                    ("promptless", "server", args.promptless_python, [*served, *size]),
                    ("dspy", "server", args.dspy_python, [*served, *size]),
                    ("promptless", "embedded", args.promptless_python,
                     ["--task", task, "--model", f"local/{local_name}", *size]),
                ]  # fmt: skip
                if index % 2:
                    plan[0], plan[1] = plan[1], plan[0]
                for framework, backend, python, run_args in plan:
                    model = alias if backend == "server" else f"local/{local_name}"
                    if (framework, backend, model, task) in done_runs():
                        continue
                    run(python, ["--framework", framework, *run_args])


if __name__ == "__main__":
    main()
