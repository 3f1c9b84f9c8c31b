"""Side-by-side figures, promptless vs DSPy, measured alternately (A B A B ...): a table and results/compare.json.

    python bench/compare.py --dspy-python ../.bench-dspy-venv/bin/python [--rounds 3] [--only overhead]
        [--before-python PYTHON]   # a second promptless (an older tree on its PYTHONPATH), alternated too

Each figure runs in fresh processes of each framework's own venv; the table
gives medians over rounds and the ratio DSPy / promptless.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "compare.json"
DSPY_ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "true"}


def import_ms(python: str, module: str) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", f"import {module}"], check=True, env=DSPY_ENV)
    return (time.perf_counter() - started) * 1000


def overhead_us(python: str, framework: str) -> dict[str, float]:
    calls = "200" if framework == "promptless" else "100"
    out = subprocess.run(
        [python, str(HERE / "overhead.py"), "--framework", framework, "--calls", calls, "--repeats", "3"],
        check=True, capture_output=True, text=True, env=DSPY_ENV,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    figures = {f"overhead per call, {row['signature']} (µs)": row["us_per_call"] for row in rows}
    figures["peak RSS of that process (MB)"] = max(row["peak_rss_mb"] for row in rows)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dspy-python", required=True)
    parser.add_argument("--promptless-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["import", "overhead"], help="measure one kind of figure only")
    parser.add_argument("--before-python", help="an older promptless to measure in the same run (a table column)")
    args = parser.parse_args()
    sides = {"promptless": args.promptless_python, "dspy": args.dspy_python}
    if args.before_python:
        sides = {"before": args.before_python, **sides}
    figures: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for framework, python in sides.items():
            if args.only in (None, "import"):
                for _ in range(3):
                    module = "dspy" if framework == "dspy" else "promptless"
                    figures.setdefault("import (ms)", {}).setdefault(framework, []).append(import_ms(python, module))
            if args.only in (None, "overhead"):
                for name, value in overhead_us(python, "dspy" if framework == "dspy" else "promptless").items():
                    figures.setdefault(name, {}).setdefault(framework, []).append(value)
    medians = {name: {side: statistics.median(values) for side, values in by_side.items()}
               for name, by_side in figures.items()}  # fmt: skip
    if args.only is None and not args.before_python:  # a partial run does not replace the full figures
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(medians, indent=1, ensure_ascii=False))
    head = "| figure | before | ratio before | promptless | DSPy 3.4.1 | ratio |" if args.before_python else (
        "| figure | promptless | DSPy 3.4.1 | ratio |"
    )
    print(head)
    print("|---" * head.count(" | ") + "|---|")
    for name, by_side in medians.items():
        ours, theirs = by_side["promptless"], by_side["dspy"]
        old = f" {by_side['before']:.1f} | {theirs / by_side['before']:.1f}× |" if args.before_python else ""
        print(f"| {name} |{old} {ours:.1f} | {theirs:.1f} | {theirs / ours:.1f}× |")

if __name__ == "__main__":
    main()
