"""``promptless compile DATA -s "question -> answer" -o program.json``: optimise a program on a data file."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promptless.cli.errors import reports_errors, usage_errors
from promptless.cli.metrics import MetricKind
from promptless.cli.optimizers import OptimizerKind
from promptless.cli.programs import ProgramKind

if TYPE_CHECKING:
    from promptless.module import Module
    from promptless.optimizers.base import CandidateScore, CompileReport
    from promptless.primitives import Example

DEFAULT_LM = "local/gemma-3-270m"  # promptless.lm.DEFAULT_MODEL, not imported to keep --help fast


@reports_errors
def compile_command(
    data: Annotated[Path, typer.Argument(help="Examples: .jsonl, .json, .csv or .tsv; columns named as the fields.")],
    signature: Annotated[str, typer.Option("--signature", "-s", help='The task, e.g. "question -> answer".')],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the compiled program (JSON).")],
    program: Annotated[ProgramKind, typer.Option("--program", "-p", help="The module to build.")] = ProgramKind.predict,
    tools: Annotated[str | None, typer.Option(help="For --program react: module:function[,...].")] = None,
    metric: Annotated[MetricKind, typer.Option("--metric", "-m", help="How an answer is scored.")] = MetricKind.exact,
    optimizer: Annotated[OptimizerKind, typer.Option(help="How the program is improved.")] = OptimizerKind.bootstrap,
    lm: Annotated[str, typer.Option(help="The model: local/<name>, or openai/<name> with --api-base.")] = DEFAULT_LM,
    api_base: Annotated[str | None, typer.Option(help="Base URL of an OpenAI-compatible server.")] = None,
    budget: Annotated[int | None, typer.Option(min=1, help="At most this many LM calls (cache hits are free).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of the data held out to validate on.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the train/val split and of the optimizer.")] = 0,
    max_demos: Annotated[int, typer.Option(min=0, help="Bootstrapped demos per predictor.")] = 4,
    max_labeled: Annotated[int, typer.Option(min=0, help="Demos per predictor in all, labelled ones topping up.")] = 4,
    candidates: Annotated[int, typer.Option(min=1, help="random-search: candidate programs to try.")] = 8,
    threads: Annotated[int | None, typer.Option(min=1, help="Examples run in parallel.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="random-search/mipro: file to resume from.")] = None,
) -> None:
    """Compile a program on DATA, show its score before and after with 95% CIs, and save it."""
    from rich.console import Console

    from promptless.budget import Budget
    from promptless.cli.artifact import ProgramSpec, check_writable, save_program
    from promptless.cli.common import build_lm, preflight
    from promptless.cli.data import check_columns, read_records, split, to_examples
    from promptless.cli.metrics import build_metric
    from promptless.cli.optimizers import OptimizerOptions, build_optimizer
    from promptless.cli.programs import build_program, load_tools, task_fields
    from promptless.cli.render import render_report, say
    from promptless.optimizers.base import CompileReport
    from promptless.settings import context
    from promptless.signature import ensure_signature

    console = Console()
    with usage_errors("--signature"):
        task = ensure_signature(signature)
    check_writable(output)
    student = build_program(program, task, load_tools(tools) if tools else None)
    inputs, outputs = task_fields(task)
    records = read_records(data)
    check_columns(data, records, [*inputs, *outputs])
    train, val = split(to_examples(records, inputs, outputs), val_fraction, seed)
    scorer = build_metric(metric, task)
    run_lm = build_lm(lm, api_base)
    options = OptimizerOptions(max_demos, max_labeled, candidates, budget, threads, checkpoint, seed)
    with usage_errors("--optimizer"):
        compiler = build_optimizer(optimizer, scorer, options)
    preflight(run_lm)
    # BootstrapFewShot takes no budget of its own: one in force around it is charged at the LM seam.
    limit = Budget(max_lm_calls=budget) if budget is not None and optimizer == OptimizerKind.bootstrap else None
    say(
        console,
        f"compiling {program.value} with {optimizer.value} on {lm}: "
        f"{len(train)} train / {len(val)} val examples, metric {metric.value}",
    )
    spinner = console.status("compiling…") if optimizer == OptimizerKind.bootstrap else nullcontext()
    with context(lm=run_lm, budget=limit), spinner:
        compiled = compiler.compile(student, trainset=train, valset=val)
    report = getattr(compiled, "compile_report", None) or CompileReport(type(compiler).__name__)
    if val_fraction == 0:
        report.notes.append("--val-fraction 0: validated on the training examples, which is optimistic")
    extra = _score_missing(report, student, compiled, val, scorer, run_lm)
    render_report(console, report, extra, metric=metric.value)
    spec = ProgramSpec(program.value, signature, lm, api_base, tools, metric.value, _summary(report, train, val))
    save_program(compiled, output, spec)
    say(console, f"wrote {output}", "bold")


def _score_missing(
    report: CompileReport,
    student: Module,
    compiled: Module,
    val: list[Example],
    metric: Any,
    lm: Any,
) -> list[CandidateScore]:
    """Score the baseline and the result on val when the report does not carry both (e.g. a budget stop)."""
    from promptless.budget import BudgetExhausted
    from promptless.evaluate.evaluate import Evaluate
    from promptless.optimizers.base import CandidateScore
    from promptless.settings import context

    baseline = report.baseline or "baseline"
    chosen = report.chosen or "compiled"
    scored = {c.name for c in report.candidates}
    todo = [(name, p) for name, p in ((baseline, student), (chosen, compiled)) if name not in scored]
    todo = todo[:1] if chosen == baseline else todo
    if not todo:
        return []
    if report.stopped_by_budget:
        report.notes.append(f"not scored: {', '.join(n for n, _ in todo)} (the budget ran out)")
        return []
    results = {}
    try:
        with context(lm=lm, budget=None):
            for name, program in todo:
                results[name] = Evaluate(val, metric, display_progress=True)(program)
    except BudgetExhausted as error:  # --budget meters the LM itself (bootstrap)
        report.notes.append(f"not scored after compile: {error}")
        return []
    rows = [CandidateScore.from_scores(f"{n} (scored after compile)", r.scores, r.errors) for n, r in results.items()]
    base_scores = results[baseline].scores if baseline in results else None
    if base_scores is not None and chosen in results and chosen != baseline:
        rows[-1].against(base_scores, results[chosen].scores)
    return rows


def _summary(report: CompileReport, train: list[Example], val: list[Example]) -> dict[str, Any]:
    """What the artifact records about its compile, for ``promptless inspect``."""
    by_name = {c.name: c for c in report.candidates}
    baseline, chosen = by_name.get(report.baseline or "baseline"), by_name.get(report.chosen or "")
    return {
        "optimizer": report.optimizer,
        "chosen": report.chosen,
        "significant": report.significant,
        "baseline_score": baseline.score if baseline else None,
        "chosen_score": chosen.score if chosen else None,
        "delta": chosen.delta if chosen else None,
        "delta_ci": list(chosen.delta_ci) if chosen and chosen.delta_ci else None,
        "lm_calls": report.total_calls,
        "train_examples": len(train),
        "val_examples": len(val),
        "stopped_by_budget": report.stopped_by_budget,
    }
