"""Per-example cost of Evaluate with an instant LM, at 1k / 4k / 16k examples: it must stay flat.

    python bench/evaluate_scaling.py [--sizes 1000 4000 16000] [--threads 1 4]

Prints one JSON line per (size, threads): milliseconds per example (median of --repeats runs).
Run it with ``PYTHONPATH=<another checkout>/src`` to measure another version side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def per_example_ms(size: int, threads: int) -> float:
    import promptless as pl
    from promptless.testing import ScriptedLM

    program = pl.Predict("question -> answer", lm=ScriptedLM(default={"answer": "a"}))
    devset = [pl.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(size)]
    evaluate = pl.Evaluate(devset, lambda ex, pred, trace=None: ex.answer == pred.answer, num_threads=threads)
    started = time.perf_counter()
    result = evaluate(program)
    assert result.n == size
    return 1000 * (time.perf_counter() - started) / size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for threads in args.threads:
        for size in args.sizes:
            runs = [per_example_ms(size, threads) for _ in range(args.repeats)]
            row = {"examples": size, "threads": threads, "ms_per_example": round(statistics.median(runs), 4)}
            print(json.dumps(row))


if __name__ == "__main__":
    main()
