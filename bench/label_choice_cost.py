"""Cost of choosing a label by likelihood against greedy constrained decoding, per call, side by side.

    python bench/label_choice_cost.py [--models smollm2-135m gemma-3-270m] [--n 20] [--demos 0 8]

For SST-2 (2 labels), TREC (6) and BANKING77 (77), the same inputs are sent greedy and scored,
alternating call by call on one model (no cache), with 0 and with k balanced labelled demos;
medians per mode and their ratio go to bench/results/label_choice_cost.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from small_models import splits

import promptless as pl
from promptless.modules.label_choice import LabelChoice

RESULTS = Path(__file__).parent / "results" / "label_choice_cost.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma-3-270m"])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "trec", "banking77"])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--demos", nargs="+", type=int, default=[0, 8])
    args = parser.parse_args()
    for model in args.models:
        lm = pl.LM(f"local/{model}", cache=False)
        for task in args.tasks:
            signature, dev, _, train = splits(task, args.n, 0, 200)
            for k in args.demos:
                demos = pl.LabeledFewShot(k=k).compile(pl.Predict(signature), trainset=train).demos if k else []
                greedy, scored = pl.Predict(signature, lm=lm), pl.Predict(signature, lm=lm)
                greedy.demos = scored.demos = demos
                scored.choice = LabelChoice("likelihood")
                inputs = [ex.inputs() for ex in dev]
                greedy(**inputs[0]), scored(**inputs[0])  # warm up: model loaded, fixed prefix cached
                times: dict[str, list[float]] = {"greedy": [], "scored": []}
                for values in inputs:
                    for name, program in (("greedy", greedy), ("scored", scored)):
                        started = time.perf_counter()
                        program(**values)
                        times[name].append(time.perf_counter() - started)
                medians = {name: statistics.median(t) for name, t in times.items()}
                (output,) = signature.output_fields.values()
                row = {"model": model, "task": task, "labels": len(output.annotation.__args__), "demos": k,
                       "n": len(inputs), "greedy_s": round(medians["greedy"], 4),
                       "scored_s": round(medians["scored"], 4),
                       "ratio": round(medians["scored"] / medians["greedy"], 2),
                       "load": os.getloadavg()[0]}  # fmt: skip
                print(json.dumps(row), flush=True)
                with RESULTS.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
