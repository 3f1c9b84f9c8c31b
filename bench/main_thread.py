"""An embedded call from the main thread vs from a worker thread, idle and with busy processes on the cores.

    python bench/main_thread.py [--model gemma-3-270m] [--calls 8] [--busy 0 2] [--side raw promptless]

``raw``: llama-cpp-python alone (``Llama.create_completion`` on the same prompts), to see whether the
effect is llama.cpp's; ``promptless``: a Predict call (which routes embedded calls through the
backend's own worker thread). Main and worker calls alternate, so drift hits both the same; each
call has a fresh input so nothing is answered from a cache. Prints one JSON line per (side, busy):
median seconds per call from the main thread and from a worker, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


def _calls(side: str, model: str, n_threads: int | None) -> Any:
    """A function of ``i`` that makes one short completion on fresh input."""
    if side == "raw":
        from llama_cpp import Llama

        from promptless.lm.models import model_path

        llm = Llama(model_path=str(model_path(model)), n_ctx=2048, n_threads=n_threads or os.cpu_count(), verbose=False)
        return lambda i: llm.create_completion(f"Sentence {i}: a gorgeous, witty film. Sentiment:", max_tokens=8)
    import promptless as pl

    extra = {"n_threads": n_threads} if n_threads else {}
    lm = pl.LM(f"local/{model}", cache=False, **extra)
    predict = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)
    return lambda i: predict(sentence=f"review {i}: a gorgeous, witty film")


def measure(side: str, model: str, calls: int, busy: int, n_threads: int | None) -> dict[str, Any]:
    call = _calls(side, model, n_threads)
    call(-1)  # load and warm up
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
    for process in spinners:
        process.start()
    main, worker = [], []
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            for i in range(calls):
                started = time.perf_counter()
                call(2 * i)
                main.append(time.perf_counter() - started)
                started = time.perf_counter()
                pool.submit(call, 2 * i + 1).result()
                worker.append(time.perf_counter() - started)
    finally:
        stop.set()
        for process in spinners:
            process.join()
    m, w = statistics.median(main), statistics.median(worker)
    return {"side": side, "model": model, "busy": busy, "n_threads": n_threads or os.cpu_count(),
            "main_s": round(m, 3), "worker_s": round(w, 3), "main_over_worker": round(m / w, 2),
            "main_max_s": round(max(main), 3), "worker_max_s": round(max(worker), 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--side", nargs="+", default=["raw", "promptless"])
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args()
    for side in args.side:
        for busy in args.busy:
            print(json.dumps(measure(side, args.model, args.calls, busy, args.n_threads)), flush=True)


if __name__ == "__main__":
    main()
