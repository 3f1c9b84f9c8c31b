"""``promptless compile DATA -s "question -> answer" -o program.json``: optimise a program on a data file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promptless.cli.errors import classify, reports_errors, usage_errors
from promptless.cli.help import ApiBaseOption, choices
from promptless.cli.metrics import MetricKind
from promptless.cli.optimizers import OptimizerKind
from promptless.cli.programs import ProgramKind
from promptless.errors import PromptlessError

if TYPE_CHECKING:
    from promptless.module import Module
    from promptless.optimizers.base import CandidateScore, CompileReport
    from promptless.optimizers.plan import Plan
    from promptless.primitives import Example

DEFAULT_LM = "local/gemma-3-270m"  # promptless.lm.DEFAULT_MODEL, not imported to keep --help fast


CONFIRM_ABOVE = 200  # on a terminal, ask before a compile forecast to make more LM calls than this


@reports_errors
def compile_command(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA", help="Examples: .jsonl, .json, .csv or .tsv (- reads stdin); columns named as the fields."
        ),
    ],
    signature: Annotated[
        str, typer.Option("--signature", "-s", metavar="SIGNATURE", help='The task, e.g. "question -> answer".')
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="Where to write the compiled program (JSON).")
    ],
    program: Annotated[
        ProgramKind, typer.Option("--program", "-p", metavar=choices(ProgramKind), help="The module to build.")
    ] = ProgramKind.predict,
    tools: Annotated[
        str | None, typer.Option(metavar="TOOLS", help="For --program react: module:function[,...].")
    ] = None,
    metric: Annotated[
        MetricKind, typer.Option("--metric", "-m", metavar=choices(MetricKind), help="How an answer is scored.")
    ] = MetricKind.exact,
    optimizer: Annotated[
        OptimizerKind, typer.Option(metavar=choices(OptimizerKind), help="How the program is improved.")
    ] = OptimizerKind.bootstrap,
    lm: Annotated[
        str, typer.Option(metavar="MODEL", help="The model: local/<name>, or openai/<name> with --api-base.")
    ] = DEFAULT_LM,
    api_base: ApiBaseOption = None,
    instructions: Annotated[str | None, typer.Option(metavar="TEXT", help="The task in words, for the model.")] = None,
    labels: Annotated[
        str | None, typer.Option(metavar="LABELS", help="The answer's values: a,b,c (default: from the data).")
    ] = None,
    label_names: Annotated[
        str | None,
        typer.Option(
            metavar="NAMES",
            help="What each label means, for the prompt: CODE=name,... or a .json file (the answer stays the code).",
        ),
    ] = None,
    free_text: Annotated[bool, typer.Option("--free-text", help="Keep the answer free text.")] = False,
    budget: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="At most this many LM calls (cache hits are free).")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(metavar="FRACTION", help="Share of the data held out to validate on.")
    ] = 0.3,
    max_val: Annotated[
        int, typer.Option(min=1, metavar="N", help="Validate on at most this many held-out examples.")
    ] = 200,
    sample: Annotated[int | None, typer.Option(min=1, metavar="N", help="Train on at most this many examples.")] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of the train/val split and of the optimizer.")] = 0,
    max_demos: Annotated[int, typer.Option(min=0, metavar="N", help="Bootstrapped demos per predictor.")] = 4,
    max_labeled: Annotated[
        int, typer.Option(min=0, metavar="N", help="Demos per predictor in all, labelled ones topping up.")
    ] = 4,
    candidates: Annotated[int, typer.Option(min=1, metavar="N", help="random-search: candidate programs to try.")] = 8,
    keep_compiled: Annotated[
        bool, typer.Option("--keep-compiled", help="Save the best candidate even without a significant gain.")
    ] = False,
    threads: Annotated[int | None, typer.Option(min=1, metavar="N", help="Examples run in parallel.")] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Resume the compile kept in FILE (default: a new <output>.checkpoint.json beside -o, "
            "removed when the compile finishes).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the forecast and stop before compiling.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before a large compile.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Let -o overwrite a file that is not a program.")] = False,
) -> None:
    """Compile a program on DATA, show its score before and after with 95% CIs, and save it."""
    from rich.console import Console

    from promptless.budget import Budget
    from promptless.cli.artifact import ProgramSpec, check_writable, save_program
    from promptless.cli.checkpoint_lm import check_same_lm, remove_stamp, write_stamp
    from promptless.cli.common import build_lm, preflight, resolve_model
    from promptless.cli.data import check_columns, deduplicate, read_records, split, to_examples
    from promptless.cli.errors import INTERRUPTED, RUNTIME, CLIError
    from promptless.cli.interrupt import exit_on_interrupt
    from promptless.cli.metrics import build_metric
    from promptless.cli.optimizers import OptimizerOptions, build_optimizer
    from promptless.cli.outputs import describe_labels, free_text_warning, type_outputs
    from promptless.cli.programs import build_program, load_tools, task_fields
    from promptless.cli.progress import CompileProgress
    from promptless.cli.render import cli_wording, render_report, say
    from promptless.optimizers.base import CompileReport
    from promptless.settings import context
    from promptless.signature import ensure_signature

    console = Console()
    with usage_errors("--signature"):
        task = ensure_signature(signature)
        if instructions is not None:
            if not instructions.strip():
                raise CLIError("--instructions is empty; describe the task in words, or leave the option out")
            task = task.with_instructions(instructions.strip())
    resume_file = checkpoint or default_checkpoint(output)
    if not dry_run:
        check_writable(output, data=data, force=force)
        if checkpoint is None and resume_file.exists():
            raise CLIError(
                f"{resume_file} holds the finished steps of an unfinished compile: pass --checkpoint {resume_file} "
                "to resume it, or delete the file to start afresh"
            )
    lm_note = check_same_lm(resume_file, resolve_model(lm), api_base) if not dry_run and resume_file.exists() else None
    inputs, outputs = task_fields(task)
    records = read_records(data)
    check_columns("<stdin>" if str(data) == "-" else data, records, [*inputs, *outputs])
    task, typed = type_outputs(task, signature, records, outputs, labels=labels, free_text=free_text)
    names: dict[str, str] = {}
    if label_names is not None:
        task, names, described = describe_labels(label_names, task, outputs[0])
        typed.append(described)
    student = build_program(program, task, load_tools(tools) if tools else None)
    records, notes = deduplicate(records, inputs, outputs)
    notes += [lm_note] if lm_note else []
    train, val = split(to_examples(records, inputs, outputs), val_fraction, seed)
    if len(val) > max_val and val_fraction:
        notes.append(f"validating on {max_val} of the {len(val)} held-out examples (--max-val {max_val})")
        val = val[:max_val]
    if sample is not None and len(train) > sample:
        notes.append(f"training on {sample} of the {len(train)} training examples (--sample {sample})")
        train = train[:sample]
    scorer = build_metric(metric, task)
    model = resolve_model(lm)
    run_lm = build_lm(model, api_base)
    settings = (max_demos, max_labeled, candidates, budget, threads, None if dry_run else resume_file, seed)
    options = OptimizerOptions(*settings, progress=False, keep_compiled=keep_compiled)
    with usage_errors("--optimizer"):
        compiler = build_optimizer(optimizer, scorer, options)
    preflight(run_lm)
    for line in typed:
        say(console, line)
    if warning := free_text_warning(task, outputs[0], metric.value):
        say(console, f"warning: {warning}", "yellow")
    for note in notes:
        say(console, f"note: {note}", "dim")
    say(
        console,
        f"compiling {program.value} with {optimizer.value} on {model}: "
        f"{len(train)} train / {len(val)} val examples, metric {metric.value}",
    )
    # One budget for the whole command (the forecast's probe runs too); cache hits are free.
    limit = Budget(max_lm_calls=budget) if budget is not None else None
    early = "interrupted during the forecast, before the compile started: nothing to resume"
    try:
        with context(lm=run_lm, budget=limit), exit_on_interrupt(lambda: early):
            forecast = _forecast(compiler, student, train, val)
    except KeyboardInterrupt:
        raise CLIError(early, INTERRUPTED) from None
    if forecast is not None:
        say(console, f"forecast: {_forecast_text(forecast, budget)}")
    if dry_run:
        say(console, "dry run: nothing compiled, nothing written", "bold")
        return
    if forecast is not None and forecast.lm_calls > CONFIRM_ABOVE and not yes and _interactive(console):
        typer.confirm(f"spend ~{forecast.lm_calls} LM calls?", default=True, abort=True)
    write_stamp(resume_file, model, api_base)  # which model the checkpoint's steps belong to
    display = CompileProgress(console, forecast.lm_calls if forecast is not None else None)

    def stopped() -> str:
        return f"interrupted while {display.stopped_in}; {_resume(ctx, resume_file, data)}"

    try:  # Ctrl-C ends the process at once (the steps and answers are on disk already); see cli/interrupt.py
        on_ctrl_c = exit_on_interrupt(stopped, before_exit=display.stop)
        with display, context(lm=run_lm, budget=limit, callbacks=[display]), on_ctrl_c:
            compiled = compiler.compile(student, trainset=train, valset=val)
    except KeyboardInterrupt:  # raised by other means than a signal (a test, an embedding program)
        raise CLIError(stopped(), INTERRUPTED) from None
    except PromptlessError as error:  # the model or server failed: what finished is kept for a resume
        failure = classify(error)
        if failure.code != RUNTIME or not resume_file.exists():
            raise
        raise CLIError(f"{failure}; {_resume(ctx, resume_file, data)}", RUNTIME) from error
    report = getattr(compiled, "compile_report", None) or CompileReport(type(compiler).__name__)
    if report.resumed_steps:
        report.notes.append(f"resumed from {resume_file}: {report.resumed_steps} finished step(s) read back")
    report.forecast = report.forecast or forecast
    if val_fraction == 0:
        report.notes.append("--val-fraction 0: validated on the training examples, which is optimistic")
    extra = _score_missing(report, student, compiled, val, scorer, run_lm)
    report.notes = [cli_wording(note) for note in report.notes]
    if report.stopped_by_budget:
        report.stopped_by_budget = cli_wording(report.stopped_by_budget)
    render_report(console, report, extra, metric=metric.value)
    summary = _summary(report, extra, train, val)
    spec = ProgramSpec(program.value, task.signature, model, api_base, tools, metric.value, summary, names)
    save_program(compiled, output, spec)
    say(console, f"wrote {output}", "bold")
    if report.stopped_by_budget:
        go_on = "raise --budget to let the run finish"
        if resume_file.exists():
            go_on = f"{_resume(ctx, resume_file, data)} after raising its --budget"
        raise CLIError(
            f"stopped by --budget {budget} before the compile finished; {output} holds the best program found "
            f"so far; {go_on}",
            RUNTIME,
        )
    if resume_file == default_checkpoint(output):  # the safety net beside -o; a --checkpoint elsewhere is kept
        resume_file.unlink(missing_ok=True)
        remove_stamp(resume_file)


def default_checkpoint(output: Path) -> Path:
    """Where a compile keeps its finished steps unless ``--checkpoint`` says: ``p.json`` → ``p.checkpoint.json``."""
    return output.with_name(f"{output.stem}.checkpoint.json")


def _resume(ctx: typer.Context, checkpoint: Path, data: Path) -> str:
    """How to go on after a stop: the command as given, with ``--checkpoint FILE``, when FILE holds anything.

    Every answer the model gave is in the LM cache either way (the CLI's LM always has one), so even
    a step cut off half way costs nothing again but the calls it had not made.
    """
    from promptless.cli.checkpoint_lm import remove_stamp

    if not checkpoint.exists():
        remove_stamp(checkpoint)  # the model of a checkpoint that was never written
        return "no step had finished, so nothing was saved: run the same command again (the LM cache has its answers)"
    again = " (with the same data on stdin)" if str(data) == "-" else ""
    return f"the finished steps are in {checkpoint}: resume with {resume_command(ctx, checkpoint)}{again}"


def resume_command(ctx: typer.Context, checkpoint: Path) -> str:
    """The running command line rebuilt from the options given (defaults left out), ending in ``--checkpoint``."""
    import shlex
    from enum import Enum

    words = ["promptless", ctx.info_name or "compile"]
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if name == "checkpoint" or getattr(source, "name", None) != "COMMANDLINE":
            continue
        value = ctx.params.get(name)
        value = value.value if isinstance(value, Enum) else value
        if param.param_type_name == "argument":
            words.append(str(value))
        elif getattr(param, "is_flag", False):
            if value:
                words.append(param.opts[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join([*words, "--checkpoint", str(checkpoint)])


def _forecast(compiler: Any, student: Module, train: list[Example], val: list[Example]) -> Plan | None:
    """The optimizer's plan (a few probe runs, cached, so the compile gets them back free), if it makes one."""
    from promptless.budget import BudgetExhausted

    plan = getattr(compiler, "plan", None)
    if plan is None:
        return None
    try:
        return plan(student, train, val)
    except BudgetExhausted:
        return None


def _forecast_text(plan: Plan, budget: int | None) -> str:
    phases = ", ".join(f"{name} {runs}" for name, runs in plan.phases.items())
    text = f"~{plan.lm_calls} LM calls (~{plan.tokens} tokens); program runs: {phases}"
    if plan.proposer_calls:
        text += f", + {plan.proposer_calls} proposer calls"
    if budget is not None and plan.lm_calls > budget:
        text += f"; more than --budget {budget}: the compile will stop early"
    return text


def _interactive(console: Any) -> bool:
    import sys

    return bool(console.is_terminal and sys.stdin.isatty())


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
                results[name] = Evaluate(val, metric)(program)
    except BudgetExhausted as error:  # --budget meters the LM itself (bootstrap)
        report.notes.append(f"not scored after compile: {error}")
        return []
    rows = [CandidateScore.from_scores(f"{n} (scored after compile)", r.scores, r.errors) for n, r in results.items()]
    base_scores = results[baseline].scores if baseline in results else None
    if base_scores is not None and chosen in results and chosen != baseline:
        rows[-1].against(base_scores, results[chosen].scores)
    return rows


def _summary(
    report: CompileReport, extra: list[CandidateScore], train: list[Example], val: list[Example]
) -> dict[str, Any]:
    """What the artifact records about its compile, for ``promptless inspect`` and ``eval --report``."""
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
        **_before_after(report, extra),
    }


def _before_after(report: CompileReport, extra: list[CandidateScore]) -> dict[str, Any]:
    """The uncompiled program's and the compiled one's scores on val (the best candidate's, if not kept)."""
    rows = [c for c in [*report.candidates, *extra] if c.score is not None]
    base = report.baseline or "baseline"

    def bare(candidate: CandidateScore) -> str:
        return candidate.name.removesuffix(" (scored after compile)")

    before = next((c for c in rows if bare(c) == base), None)
    others = [c for c in rows if c is not before]
    chosen = report.chosen or "compiled"
    kept = chosen != base
    after = (
        next((c for c in others if bare(c) == chosen), None)
        if kept
        else max(others, key=lambda c: c.score or 0.0, default=None)
    )
    if before is None:
        return {}

    def row(candidate: CandidateScore) -> dict[str, Any]:
        out = {"name": bare(candidate), "score": candidate.score, "ci": list(candidate.ci or ()) or None}
        out["n"] = candidate.n
        if candidate.delta is not None:
            out["delta"], out["delta_ci"] = candidate.delta, list(candidate.delta_ci or ()) or None
        return out

    return {"before": row(before), "after": {**row(after), "kept": kept} if after is not None else None}
