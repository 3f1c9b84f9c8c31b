"""Examples/s of a compiled SST-2 program on the embedded model: threads in one process vs Ray actors.

    python bench/ray_throughput.py [--program artifacts/sentiment.json] [--dev 48] [--rounds 2]

The program is the one ``make demo`` compiles (``examples/sentiment.py``: BootstrapFewShot on 100
SST-2 train sentences, saved to artifacts/sentiment.json); compiled here the same way if the file
is missing. It runs on SST-2 dev sentences (another file than the training ones), with Gemma-3-270M
at 1 llama.cpp thread per process and no cache, so every example is a model call. Modes, measured
side by side and alternated for ``--rounds`` rounds:

- ``threads-N``: Evaluate in this process with N threads (one model: its calls queue behind one lock);
- ``ray-K``: a RayExecutor of K actors of 1 thread each (each loads its own model), measured warm;

plus Ray's start-up (``ray.init``, starting the actors, the first call with each actor loading its
model) and the cost per example of the Ray path itself on an instant scripted LM (the driver's
share). One JSON line per measurement goes to bench/results/ray_throughput.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from _data import sst2  # noqa: E402

import promptless as pl  # noqa: E402
from promptless.testing import ScriptedLM  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ray_throughput.jsonl"


class Sentiment(pl.Signature):
    """Classify the sentiment of a movie review sentence."""

    sentence: str = pl.InputField()
    sentiment: Literal["positive", "negative"] = pl.OutputField()


def accuracy(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.sentiment == prediction.sentiment


def instant(request: pl.Request) -> dict[str, str]:
    return {"sentiment": "positive"}


def compiled_program(path: Path) -> pl.Predict:
    if path.is_file():
        return pl.Predict(Sentiment).load(path)
    print(f"{path} is missing: compiling it as examples/sentiment.py does", file=sys.stderr)
    trainset = random.Random(0).sample(sst2("train"), 100)
    with pl.context(lm=pl.LM("local/gemma-3-270m")):
        optimizer = pl.BootstrapFewShot(accuracy, max_bootstrapped_demos=4, max_labeled_demos=8)
        program = optimizer.compile(pl.Predict(Sentiment), trainset=trainset)
    program.save(path)
    return program


def record(row: dict) -> None:
    row = {"load_1min": round(os.getloadavg()[0], 2), **row}
    print(json.dumps(row), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(row) + "\n")


def timed_eval(program: pl.Module, devset: list[pl.Example], **options: object) -> tuple[float, list]:
    started = time.perf_counter()
    result = pl.Evaluate(devset, accuracy, **options)(program)
    elapsed = time.perf_counter() - started
    assert result.errors == 0, result.error_details
    return len(devset) / elapsed, [p.sentiment for _, p, _ in result.results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", type=Path, default=ROOT / "artifacts" / "sentiment.json")
    parser.add_argument("--dev", type=int, default=48, help="SST-2 dev sentences per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--instant", type=int, default=400, help="examples for the driver-overhead measurement")
    args = parser.parse_args()
    import ray

    program = compiled_program(args.program)
    devset = random.Random(1).sample(sst2("dev"), args.dev)
    warm = devset[:2]
    lm = pl.LM("local/gemma-3-270m", cache=False, n_threads=1)
    pl.configure(lm=lm)
    run = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "demos": len(program.demos), "dev": len(devset)}

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    record({**run, "measure": "ray.init", "seconds": round(time.perf_counter() - started, 2)})

    timed_eval(program, warm, num_threads=1)  # this process's model loaded before anything is timed
    rates: dict[str, list[float]] = {}
    answers: dict[str, list] = {}
    for round_number in range(args.rounds):
        for mode in ("threads-1", "threads-2", "ray-1", "ray-2"):
            if mode.startswith("threads"):
                rate, got = timed_eval(program, devset, num_threads=int(mode[-1]))
            else:
                executor = pl.RayExecutor(num_workers=int(mode[-1]))
                started = time.perf_counter()
                executor.start()
                spawned = time.perf_counter() - started
                timed_eval(program, warm, executor=executor)  # each actor builds its LM and loads Gemma
                first = time.perf_counter() - started
                record(
                    {
                        **run,
                        "measure": "start-up",
                        "mode": mode,
                        "round": round_number,
                        "actors_s": round(spawned, 2),
                        "to_warm_s": round(first, 2),
                    }
                )
                rate, got = timed_eval(program, devset, executor=executor)
                executor.close()
            rates.setdefault(mode, []).append(rate)
            answers.setdefault(mode, got)
            record(
                {**run, "measure": "throughput", "mode": mode, "round": round_number, "examples_per_s": round(rate, 3)}
            )
    same = all(answers[mode] == answers["threads-1"] for mode in answers)
    record({**run, "measure": "same answers on every mode", "value": same})

    scripted = [pl.Example(sentence=f"s{i}", sentiment="positive").with_inputs("sentence") for i in range(args.instant)]
    with pl.context(lm=ScriptedLM(instant)):
        rate_threads, _ = timed_eval(pl.Predict(Sentiment), scripted, num_threads=2)
        with pl.RayExecutor(num_workers=2) as executor:
            timed_eval(pl.Predict(Sentiment), scripted[:4], executor=executor)
            rate_ray, _ = timed_eval(pl.Predict(Sentiment), scripted, executor=executor)
    record(
        {
            **run,
            "measure": "instant LM",
            "threads_2_examples_per_s": round(rate_threads, 1),
            "ray_2_examples_per_s": round(rate_ray, 1),
            "ray_ms_per_example": round(1000 / rate_ray, 2),
        }
    )
    ray.shutdown()
    summary = {mode: round(statistics.median(values), 3) for mode, values in rates.items()}
    record({**run, "measure": "median examples/s", **summary})


if __name__ == "__main__":
    main()
