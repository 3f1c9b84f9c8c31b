"""Where the microseconds of one promptless Predict call go, with an instant LM (no model time at all).

    python bench/profile_call.py [--calls 20000] [--signature 6-field] [--top 25]

Profiles many calls of the same Predict (4 demos, ScriptedLM, no cache) under
cProfile and prints the functions by their own time, then by cumulative time,
as microseconds per call. Run it after a change that touches the call path and
compare with the table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import SIGNATURES, promptless_caller


def short(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name
    parts = Path(path).parts
    where = "/".join(parts[parts.index("promptless") :]) if "promptless" in parts else Path(path).name
    return f"{where}:{line} {name}"


def report(stats: pstats.Stats, calls: int, key: str, top: int) -> None:
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2 if key == "own" else 3], reverse=True)[:top]
    print(f"\n| {key} µs/call | calls/call | function |\n|---|---|---|")
    for func, (_, ncalls, own, cumulative, _) in rows:
        value = own if key == "own" else cumulative
        print(f"| {value / calls * 1e6:.2f} | {ncalls / calls:.1f} | `{short(func)}` |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--signature", choices=list(SIGNATURES), default="6-field")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    call = promptless_caller(SIGNATURES[args.signature])
    call()
    started = time.perf_counter()
    for _ in range(args.calls):
        call()
    plain = (time.perf_counter() - started) / args.calls * 1e6
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.calls):
        call()
    profiler.disable()
    print(f"{args.signature}: {plain:.1f} µs per call without the profiler ({args.calls} calls)")
    stats = pstats.Stats(profiler)
    report(stats, args.calls, "own", args.top)
    report(stats, args.calls, "cumulative", args.top)


if __name__ == "__main__":
    main()
