"""What the code sandbox costs: cold start and per-run time (medians), next to a bare interpreter start.

    python bench/sandbox_cost.py [--runs 20] [--cold 5]

* cold start: in a fresh host process, importing ``promptless.sandbox`` and its
  first ``Sandbox().run`` (namespace detection, one extra interpreter start,
  included), measured inside that process, median over ``--cold`` processes;
* per run: later runs in one process, with namespaces (when available) and
  without, for a trivial program and for a typical LM-written math program;
* floor: ``python -I -S -c pass``, the interpreter start every run pays.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from promptless.sandbox import Sandbox

TRIVIAL = "1 + 1"
MATH = (
    "import math, fractions, statistics\n"
    "prices = [12.5, 7.25, 3.0]\n"
    "total = sum(prices) * 3\n"
    "print(f'total {total:.2f}')\n"
    "round(total / math.gcd(4, 6), 2)"
)
COLD = (
    "import time\nstarted = time.perf_counter()\nfrom promptless.sandbox import Sandbox\n"
    "result = Sandbox().run('1 + 1')\nassert result.ok, result.error\nprint(time.perf_counter() - started)"
)


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:6.1f} ms (min {min(samples) * 1000:.1f}, n={len(samples)})"


def per_run(sandbox: Sandbox, code: str, runs: int) -> list[float]:
    sandbox.run(code)  # warm: the namespace probe and the child's source are cached per process
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = sandbox.run(code)
        times.append(time.perf_counter() - started)
        assert result.ok, result.error
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()

    floor = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        floor.append(time.perf_counter() - started)
    cold = [
        float(subprocess.run([sys.executable, "-c", COLD], check=True, capture_output=True, text=True).stdout)
        for _ in range(args.cold)
    ]
    with_ns, without_ns = Sandbox(), Sandbox(namespaces=False)
    print(f"isolation here: {', '.join(with_ns.isolation)}")
    print(f"bare interpreter start (python -I -S):   {median_ms(floor)}")
    print(f"cold start (import + first run):        {median_ms(cold)}")
    print(f"per run, trivial, with namespaces:      {median_ms(per_run(with_ns, TRIVIAL, args.runs))}")
    print(f"per run, trivial, without namespaces:   {median_ms(per_run(without_ns, TRIVIAL, args.runs))}")
    print(f"per run, math program, with namespaces: {median_ms(per_run(with_ns, MATH, args.runs))}")


if __name__ == "__main__":
    main()
