"""GSM8K with ProgramOfThought on the embedded model: zero-shot vs BootstrapFewShot, code run in the sandbox.

    python examples/math_pot.py --train 10 --test 20 [--model local/smollm2-135m]

The model writes Python for each problem; a locked-down child interpreter runs
it (see promptless.sandbox); the model reads the output and answers. Prints
accuracy with a 95 % CI, how many problems never got running code, LM calls,
and what the sandbox costs: its cold start (the first run in this process,
namespace detection included) and the median per run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _data import gsm8k
from rich.console import Console
from rich.table import Table

import promptless as pl
from promptless.modules.program_of_thought import ProgramOfThought
from promptless.sandbox import Sandbox, SandboxResult

RUN_TIMES: list[float] = []  # every sandbox run of this process, across the program copies optimizers make


@dataclass(frozen=True)
class TimedSandbox(Sandbox):
    """A Sandbox that notes how long each run took."""

    def run(self, code: str, variables: dict | None = None) -> SandboxResult:
        result = super().run(code, variables)
        RUN_TIMES.append(result.duration_s)
        return result


class MathWord(pl.Signature):
    """Solve the grade-school math word problem. The answer is a single number."""

    question: str = pl.InputField()
    answer: float = pl.OutputField()


def correct(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    try:
        return abs(float(prediction.answer) - float(example.answer)) < 1e-6
    except (TypeError, ValueError):
        return False


def sandbox_costs(sandbox: Sandbox, runs: int = 10) -> tuple[float, float]:
    """Cold start (first run in this process) and the median of ``runs`` more, in seconds."""
    started = time.perf_counter()
    sandbox.run("1 + 1")
    cold = time.perf_counter() - started
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        sandbox.run("sum(range(10))")
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--train", type=int, default=10, help="GSM8K problems to bootstrap demos from")
    parser.add_argument("--test", type=int, default=20, help="GSM8K problems to evaluate on (disjoint from train)")
    parser.add_argument("--demos", type=int, default=2, help="max bootstrapped demos per predictor")
    parser.add_argument("--max-iters", type=int, default=2, help="attempts at code per problem")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)

    sandbox = TimedSandbox(timeout_s=5, memory_mb=256)
    cold, warm = sandbox_costs(sandbox)
    console.print(
        f"sandbox: cold start {cold * 1000:.0f} ms, then {warm * 1000:.0f} ms per run (median of 10); "
        f"isolation: {', '.join(sandbox.isolation)}"
    )
    RUN_TIMES.clear()

    lm = pl.LM(args.model, max_tokens=256, cache=False)  # measure the model, not the cache
    pl.configure(lm=lm, num_threads=args.threads)
    problems = gsm8k(args.train + args.test)
    trainset, testset = problems[: args.train], problems[args.train :]
    console.print(f"GSM8K train split: {len(trainset)} to compile from, {len(testset)} to test on; {args.model}")
    evaluate = pl.Evaluate(devset=testset, metric=correct, display_progress=True)

    table = Table(title=f"GSM8K · ProgramOfThought on {args.model}")
    for column in ("program", "accuracy", "no running code", "LM calls", "s/item", "sandbox runs", "median run"):
        table.add_column(column)

    def add_row(name: str, result: pl.EvaluationResult, runs: list[float]) -> None:
        table.add_row(
            name,
            f"{result.score:.1f}% ({result.ci[0]:.0f}–{result.ci[1]:.0f})",
            f"{result.errors}/{result.n}",
            str(result.usage.total.calls),
            f"{result.wall_time_s / max(1, result.n):.1f}",
            str(len(runs)),
            f"{statistics.median(runs) * 1000:.0f} ms" if runs else "-",
        )

    program = ProgramOfThought(MathWord, max_iters=args.max_iters, sandbox=sandbox)
    zero_shot = evaluate(program)
    add_row("zero-shot", zero_shot, RUN_TIMES[:])

    RUN_TIMES.clear()
    optimizer = pl.BootstrapFewShot(correct, max_bootstrapped_demos=args.demos, max_labeled_demos=0)
    compiled = optimizer.compile(program, trainset=trainset)
    report = compiled.compile_report
    console.print(f"compile: {report.lm_calls} LM calls, {report.wall_time_s:.0f} s; " + "; ".join(report.notes))
    if any(predictor.demos for predictor in compiled.predictors()):
        RUN_TIMES.clear()
        add_row(f"BootstrapFewShot (≤{args.demos} demos)", evaluate(compiled), RUN_TIMES[:])
    else:  # no training problem passed: the compiled program is the zero-shot one, same prompts, same answers
        table.add_row("BootstrapFewShot", "= zero-shot (no trace passed, 0 demos)", "-", "-", "-", "-", "-")
    console.print(table)
    first_error = next(iter(zero_shot.error_details.values()), None)
    if first_error:
        console.print(f"[dim]a zero-shot failure, for a feel: {first_error[:300]}[/dim]")


if __name__ == "__main__":
    main()
