"""What the code sandbox costs per run, before and after a change, measured side by side in one process.

    python bench/sandbox_cost.py [--runs 30] [--baseline REV] [--cold 5]

* before/after: the sandbox package as it was at git revision ``--baseline``
  (default: the commit before the kernel layers, 9f192c3) is loaded next to the
  current one; runs alternate between the two (ABAB...), so both see the same
  machine load; medians over ``--runs`` runs each, for a trivial program and a
  typical LM-written math program, with namespaces (when available) and without;
* cold start: in a fresh host process, importing ``promptless.sandbox`` and its
  first ``Sandbox().run`` (namespace detection included), median over ``--cold``;
* floor: ``python -I -S -c pass``, the interpreter start every run pays.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
BASELINE = "9f192c3"
REPO = Path(__file__).resolve().parent.parent


def baseline_sandbox(revision: str, into: Path) -> Any:
    """The sandbox package at ``revision``, importable as ``sandbox_baseline`` (its imports renamed)."""
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", revision, "src/promptless/sandbox/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    package = into / "sandbox_baseline"
    package.mkdir()
    for path in listing:
        source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=REPO, capture_output=True, check=True)
        text = source.stdout.decode().replace("promptless.sandbox", "sandbox_baseline")
        (package / Path(path).name).write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("sandbox_baseline")


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:6.1f} ms (min {min(samples) * 1000:5.1f})"


def side_by_side(before: Any, after: Any, code: str, runs: int) -> tuple[list[float], list[float]]:
    """Alternate runs of the two sandboxes; per-run wall time of each."""
    times: tuple[list[float], list[float]] = ([], [])
    for sandbox in (before, after):
        assert sandbox.run(code).ok  # warm: probes and sources are cached per process
    for _ in range(runs):
        for sandbox, samples in zip((before, after), times, strict=True):
            started = time.perf_counter()
            result = sandbox.run(code)
            samples.append(time.perf_counter() - started)
            assert result.ok, result.error
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE)
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
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_sandbox(args.baseline, Path(tmp))
        print(f"before ({args.baseline}): {', '.join(old.Sandbox().isolation)}")
        print(f"after (working tree): {', '.join(Sandbox().isolation)}")
        print(f"bare interpreter start (python -I -S): {median_ms(floor)}")
        print(f"cold start, after (import + first run): {median_ms(cold)}")
        print(f"per run, medians of {args.runs}, alternating:       before                    after")
        for label, code, namespaces in (
            ("trivial, with namespaces", TRIVIAL, None),
            ("trivial, without namespaces", TRIVIAL, False),
            ("math program, with namespaces", MATH, None),
        ):
            before, after = side_by_side(
                old.Sandbox(namespaces=namespaces), Sandbox(namespaces=namespaces), code, args.runs
            )
            delta = (statistics.median(after) - statistics.median(before)) * 1000
            print(f"  {label:31} {median_ms(before)}  {median_ms(after)}  ({delta:+.1f} ms)")


if __name__ == "__main__":
    main()
