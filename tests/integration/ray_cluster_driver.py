"""A driver process for test_ray_cluster.py: joins the Ray cluster it is given and prints one JSON object.

Run as a script (``python ray_cluster_driver.py MODE ADDRESS ...``), so it is a process of its own
beside the head node, and the scripted LM's function belongs to ``__main__``: it travels to the
workers by value, and the cluster's workers need nothing of the tests on their path.

Modes: ``api ADDRESS`` runs Evaluate and batch on threads, then on ``RayExecutor(address=ADDRESS)``
and on ``RayExecutor(address="auto")``; ``cli ADDRESS DIR`` runs ``promptless run --jsonl`` on
threads and with ``--ray --address ADDRESS``; ``start ADDRESS`` only starts the workers (or fails).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import promptless as pl
from promptless.testing import ScriptedLM

CALLS_ENV = "PROMPTLESS_TEST_CALLS"  # each answered call appends {pid, q, promptless} here, in any process


def reply(request):
    """Answers by the number in q=qN (qN ending in 7: not JSON), logging which promptless answered."""
    import promptless  # in a worker: the package as that process imported it

    question = request.text.rsplit("q=", 1)[-1].split()[0]
    with open(os.environ[CALLS_ENV], "a") as out:
        out.write(json.dumps({"pid": os.getpid(), "q": question, "promptless": promptless.__file__}) + "\n")
    if question.endswith("7"):
        return "not json at all"
    return {"answer": "yes" if int(question[1:]) % 3 else "no"}


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


def questions(n: int) -> list:
    return [pl.Example(question=f"q=q{i} ?", answer="yes" if i % 3 else "no").with_inputs("question") for i in range(n)]


def summary(result) -> dict:
    return {
        "answers": [p and p.answer for _, p, _ in result.results],
        "scores": result.scores,
        "errors": result.errors,
        "calls": result.usage.total.calls,
    }


def api(address: str) -> dict:
    import ray

    dev = questions(12)
    program = pl.Predict("question -> answer")
    program.demos = [pl.Example(question="q=q1 ?", answer="yes")]
    found: dict = {"driver_pid": os.getpid()}
    with pl.context(lm=ScriptedLM(reply), max_parse_retries=0):
        found["threads"] = summary(pl.Evaluate(dev, exact, num_threads=2)(program))
        found["threads"]["batch"] = [p and p.answer for p in program.batch(dev, return_failed_examples=True)[0]]
        for joined in (address, "auto"):
            started = time.monotonic()
            with pl.RayExecutor(address=joined, num_workers=2) as executor:
                on_ray = summary(pl.Evaluate(dev, exact, executor=executor)(program))
                batch = program.batch(dev, return_failed_examples=True, executor=executor)[0]
                on_ray["batch"] = [p and p.answer for p in batch]
                on_ray["worker_pids"] = sorted(slot.pid for slot in executor.workers)
            on_ray["seconds"] = round(time.monotonic() - started, 1)
            on_ray["initialized_after_close"] = ray.is_initialized()
            found[joined] = on_ray
    return found


def cli(address: str, folder: Path) -> dict:
    from typer.testing import CliRunner

    from promptless.cli import common, main

    common.make_lm = lambda model, *, api_base=None: ScriptedLM(reply)  # the CLI's LM hook, as its tests use it
    args = ["run", str(folder / "p.json"), "--jsonl", str(folder / "in.jsonl")]
    found = {}
    for name, extra in (("threads", []), ("ray", ["--ray", "--address", address])):
        result = CliRunner().invoke(main.app, [*args, *extra])
        found[name] = {"code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}
    return found


def start(address: str) -> dict:
    started = time.monotonic()
    executor = pl.RayExecutor(address=address, num_workers=1)
    try:
        executor.start()
        return {"error": None, "seconds": round(time.monotonic() - started, 1)}
    except Exception as error:
        return {"error": type(error).__name__, "message": str(error), "seconds": round(time.monotonic() - started, 1)}
    finally:
        executor.close()


if __name__ == "__main__":
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "api":
        found = api(target)
    elif mode == "cli":
        found = cli(target, Path(sys.argv[3]))
    else:
        found = start(target)
    print(json.dumps(found))
