"""``promptless inspect program.json``: its signature, instructions, demos, and the exact prompt it sends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from promptless.cli.errors import reports_errors
from promptless.cli.help import ApiBaseOption, ToolsOption

if TYPE_CHECKING:
    from rich.console import Console

    from promptless.cli.artifact import LoadedProgram


@reports_errors
def inspect_command(
    program_path: Annotated[Path, typer.Argument(metavar="PROGRAM", help="A saved program.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", metavar="FIELD=VALUE", help="Sample input field=value (default: the first demo's)."
        ),
    ] = None,
    lm: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Show the prompt for this model instead of the artifact's.")
    ] = None,
    api_base: ApiBaseOption = None,
    tools: ToolsOption = None,
) -> None:
    """Show what a saved program holds and the exact prompt it sends; no LM is called."""
    from rich.console import Console
    from rich.text import Text

    from promptless.cli.artifact import load_program
    from promptless.cli.common import parse_inputs, program_lm
    from promptless.cli.programs import load_tools
    from promptless.cli.render import render_predictors, say
    from promptless.redact import safe_text
    from promptless.settings import context

    loaded = load_program(program_path, tools=(lambda: load_tools(tools)) if tools else None)
    sample, origin = _sample(loaded, parse_inputs(inputs or [], loaded.task))
    run_lm = program_lm(loaded, lm, api_base, calls=False)
    console = Console()
    kind = loaded.spec.program if loaded.spec else "predict (rebuilt from its one predictor)"
    say(console, f"{program_path}: {kind}, {loaded.task.signature}, LM {run_lm.model}", "bold")
    _compile_line(console, loaded)
    if loaded.spec and loaded.spec.label_names:
        names = ", ".join(f"{code} = {name}" for code, name in loaded.spec.label_names.items())
        say(console, f"label names (--label-names, shown in the prompt): {names}")
    render_predictors(console, loaded.program)
    with context(lm=run_lm):
        for name, predictor in loaded.program.named_predictors():
            values = {n: sample.get(n, f"<{n}>") for n in predictor.signature.input_fields}
            placeholders = [n for n in predictor.signature.input_fields if n not in sample]
            note = f"; placeholders for {placeholders}" if placeholders else ""
            console.rule(Text(safe_text(f"prompt of {name} for {origin}{note}", one_line=True)), style="dim")
            say(console, predictor.inspect_prompt(**values))


def _sample(loaded: LoadedProgram, given: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The inputs to show the prompt for: those given, else the first demo's, else none (placeholders)."""
    if given:
        return given, "the --input values"
    names = list(loaded.task.input_fields)
    for name, predictor in loaded.program.named_predictors():
        for demo in predictor.demos:
            if all(n in demo for n in names):
                return {n: demo[n] for n in names}, f"the inputs of {name}'s first demo"
    return {}, "no sample input (pass --input field=value)"


def _compile_line(console: Console, loaded: LoadedProgram) -> None:
    from promptless.cli.render import say

    summary = loaded.spec.compile if loaded.spec else {}
    if not summary:
        return
    score = summary.get("chosen_score")
    scored = f" scoring {score:.1f}%" if isinstance(score, (int, float)) else ""
    say(
        console,
        f"compiled by {summary.get('optimizer')} with metric {loaded.spec.metric if loaded.spec else '?'}: "
        f"chose {summary.get('chosen')}{scored} on {summary.get('val_examples')} val examples "
        f"(significant: {summary.get('significant')})",
        "dim",
    )
