"""Cold-process import time of promptless (median of N), next to a bare interpreter start.

    python bench/import_time.py [--runs 7] [--python .venv/bin/python]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(python: str, code: str) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--module", default="promptless")
    args = parser.parse_args()
    bare, loaded = [], []
    for _ in range(args.runs):  # alternate, so drift hits both the same
        bare.append(timed(args.python, "pass"))
        loaded.append(timed(args.python, f"import {args.module}"))
    b, m = statistics.median(bare), statistics.median(loaded)
    print(f"interpreter start: {b * 1000:.1f} ms (median of {args.runs})")
    print(f"import {args.module}: {m * 1000:.1f} ms total, {max(0.0, m - b) * 1000:.1f} ms over a bare start")


if __name__ == "__main__":
    main()
