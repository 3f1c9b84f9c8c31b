"""``promptless eval program.json DATA``: score a saved program on a data file, with a 95% CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from promptless.cli.errors import reports_errors
from promptless.cli.help import ApiBaseOption, ToolsOption, choices
from promptless.cli.metrics import MetricKind


@reports_errors
def eval_command(
    program_path: Annotated[Path, typer.Argument(metavar="PROGRAM", help="A program saved by promptless compile.")],
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Examples with the program's input and output fields.")],
    metric: Annotated[
        MetricKind | None,
        typer.Option(
            "--metric", "-m", metavar=choices(MetricKind), help="Default: the one it was compiled with, else exact."
        ),
    ] = None,
    lm: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Run on this model instead of the artifact's.")
    ] = None,
    api_base: ApiBaseOption = None,
    tools: ToolsOption = None,
    threads: Annotated[int | None, typer.Option(min=1, metavar="N", help="Examples run in parallel.")] = None,
    per_label: Annotated[
        bool, typer.Option("--per-label", help="Also score each gold label and show a confusion matrix.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Also write a report: .md, or .html (one file, no scripts) with the compile's before/after chart.",
        ),
    ] = None,
) -> None:
    """Evaluate a saved program on DATA."""
    from rich.console import Console

    from promptless.cli.artifact import load_program
    from promptless.cli.common import preflight, program_lm
    from promptless.cli.data import check_columns, read_records, to_examples
    from promptless.cli.metrics import build_metric
    from promptless.cli.programs import load_tools, task_fields
    from promptless.cli.render import render_evaluation, render_per_label, say
    from promptless.cli.report import build_report, check_report_path, write_report
    from promptless.evaluate.evaluate import Evaluate
    from promptless.settings import context

    if report is not None:
        check_report_path(report)
    loaded = load_program(program_path, tools=(lambda: load_tools(tools)) if tools else None)
    inputs, outputs = task_fields(loaded.task)
    records = read_records(data)
    check_columns(data, records, [*inputs, *outputs])
    examples = to_examples(records, inputs, outputs)
    name = metric.value if metric else (loaded.spec.metric if loaded.spec and loaded.spec.metric else "exact")
    scorer = build_metric(name, loaded.task)
    run_lm = program_lm(loaded, lm, api_base)
    preflight(run_lm)
    with context(lm=run_lm):
        result = Evaluate(examples, scorer, num_threads=threads, display_progress=True)(loaded.program)
    console = Console()
    render_evaluation(console, result, name=f"{program_path} on {data}", metric=name)
    if per_label:
        render_per_label(console, result, outputs[0])
    if report is not None:
        labels = per_label or is_label(loaded.task.output_fields[outputs[0]].annotation)
        summary = loaded.spec.compile if loaded.spec else None
        title = f"{program_path} on {data}"
        write_report(
            report, build_report(result, title=title, metric=name, field=outputs[0], labels=labels, summary=summary)
        )
        say(console, f"wrote {report}", "bold")


def is_label(annotation: object) -> bool:
    """An answer from a fixed set: a ``Literal[...]`` (typed from the data or by the signature) or a ``bool``."""
    from typing import Literal, get_origin

    return annotation is bool or get_origin(annotation) is Literal
