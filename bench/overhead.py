"""Framework overhead per Predict call with an instant LM: promptless ScriptedLM vs DSPy DummyLM.

    python bench/overhead.py --framework promptless   # in the promptless venv
    python bench/overhead.py --framework dspy         # in a venv with dspy==3.4.1

Prints one JSON line per signature: microseconds per call (median of --repeats
blocks of --calls calls). Both sides get the same signatures and 4 demos, and
no cache. ``bench/compare.py`` runs both alternately and reports ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

SIGNATURES = {
    "1-field": ("question", ["answer"]),
    "6-field": ("context, question, audience", ["reasoning", "answer", "confidence_note"]),
}


def fields(spec: tuple[str, list[str]]) -> tuple[list[str], list[str]]:
    return [f.strip() for f in spec[0].split(",")], spec[1]


def demo(inputs: list[str], outputs: list[str], i: int) -> dict[str, str]:
    return {name: f"{name} value {i} with a few words" for name in inputs + outputs}


def promptless_caller(spec: tuple[str, list[str]]):
    import promptless as pl
    from promptless.testing import ScriptedLM

    inputs, outputs = fields(spec)
    answer = {name: f"{name} out" for name in outputs}
    predict = pl.Predict(f"{', '.join(inputs)} -> {', '.join(outputs)}", lm=ScriptedLM(default=answer))
    predict.demos = [pl.Example(demo(inputs, outputs, i)) for i in range(4)]
    call_inputs = {name: f"{name} now" for name in inputs}
    return lambda: predict(**call_inputs)


def dspy_caller(spec: tuple[str, list[str]], calls: int):
    import dspy
    from dspy.utils.dummies import DummyLM

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    inputs, outputs = fields(spec)
    answer = {name: f"{name} out" for name in outputs}
    lm = DummyLM([answer] * (calls + 10), adapter=dspy.ChatAdapter())
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter())
    predict = dspy.Predict(f"{', '.join(inputs)} -> {', '.join(outputs)}")
    predict.demos = [dspy.Example(demo(inputs, outputs, i)) for i in range(4)]
    call_inputs = {name: f"{name} now" for name in inputs}
    return lambda: predict(**call_inputs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=["promptless", "dspy"], required=True)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, spec in SIGNATURES.items():
        blocks = []
        for _ in range(args.repeats):
            total = args.calls * (args.repeats + 1)
            call = promptless_caller(spec) if args.framework == "promptless" else dspy_caller(spec, total)
            call()  # warm-up
            started = time.perf_counter()
            for _ in range(args.calls):
                call()
            blocks.append((time.perf_counter() - started) / args.calls * 1e6)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = {"framework": args.framework, "signature": name, "us_per_call": statistics.median(blocks)}
        print(json.dumps({**row, "peak_rss_mb": round(rss_mb, 1)}))


if __name__ == "__main__":
    main()
