"""``promptless run program.json --input question="..."``, or ``--jsonl in.jsonl`` for JSONL in, JSONL out."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from promptless.cli.errors import RUNTIME, CLIError, reports_errors
from promptless.cli.help import ApiBaseOption, ToolsOption
from promptless.errors import cannot_recover
from promptless.redact import printable, redact

if TYPE_CHECKING:
    from promptless.module import Module
    from promptless.signature import Signature

HIDDEN_OUTPUTS = frozenset({"steps", "trajectory"})  # ReAct's bookkeeping, not answers
# Characters JSON leaves raw with ensure_ascii=False that a terminal may act on; they occur only inside strings.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


@reports_errors
def run_command(
    program_path: Annotated[Path, typer.Argument(metavar="PROGRAM", help="A program saved by promptless compile.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", metavar="FIELD=VALUE", help="An input as field=value; repeat for several."),
    ] = None,
    jsonl: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", help="A JSONL file of inputs ('-' for stdin): one JSON output line per input line."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs as one JSON object.")] = False,
    lm: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Run on this model instead of the artifact's.")
    ] = None,
    api_base: ApiBaseOption = None,
    tools: ToolsOption = None,
) -> None:
    """Run a saved program on one input, or on every line of a JSONL file."""
    from rich.console import Console

    from promptless.cli.artifact import load_program
    from promptless.cli.common import parse_inputs, preflight, program_lm, require_inputs
    from promptless.cli.programs import load_tools
    from promptless.settings import context

    if bool(inputs) == (jsonl is not None):
        raise CLIError("give the inputs with --input field=value (repeatable) or --jsonl FILE, one of the two")
    loaded = load_program(program_path, tools=(lambda: load_tools(tools)) if tools else None)
    values: dict[str, Any] = {}
    if inputs:
        values = parse_inputs(inputs, loaded.task)
        require_inputs(values, loaded.task, "--input")
    run_lm = program_lm(loaded, lm, api_base)
    preflight(run_lm)
    with context(lm=run_lm):
        if jsonl is not None:
            failed, total = run_lines(loaded.program, loaded.task, jsonl, sys.stdout)
            if failed:
                raise CLIError(f'{failed} of {total} inputs failed; their output lines hold an "error" key', RUNTIME)
            return
        outputs = outputs_of(loaded.program(**values))
    if as_json:
        sys.stdout.write(json_line(outputs))
        return
    console = Console()
    for name, value in outputs.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        console.print(printable(f"{name}: {text}"), markup=False, highlight=False, soft_wrap=True)


def run_lines(program: Module, task: Signature, source: str, out: TextIO) -> tuple[int, int]:
    """Run every non-blank line; a line that fails gets ``{"error": ...}`` and the rest go on.

    Errors that no other line could escape (bad credentials, a missing model, the budget) stop the run.
    Returns (failed, total).
    """
    from promptless.cli.common import require_inputs
    from promptless.cli.data import parse_jsonl_line, read_text

    lines = sys.stdin if source == "-" else read_text(Path(source)).splitlines()
    failed = total = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        total += 1
        try:
            record = parse_jsonl_line(source if source != "-" else "stdin", number, line)
            values = {name: record[name] for name in task.input_fields if name in record}
            require_inputs(values, task, f"line {number}")
            result = outputs_of(program(**values))
        except CLIError as error:
            failed, result = failed + 1, {"error": redact(error)}
        except Exception as error:
            if cannot_recover(error):
                raise
            failed, result = failed + 1, {"error": redact(f"{type(error).__name__}: {error}")}
        out.write(json_line(result))
        out.flush()
    if total == 0:
        raise CLIError(f"{source} has no inputs (no non-blank lines)")
    return failed, total


def json_line(value: Any) -> str:
    """One JSON line that is safe on a terminal: JSON escapes C0 controls itself; DEL, C1 and bidi controls too."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False)) + "\n"


def outputs_of(prediction: Any) -> dict[str, Any]:
    """A prediction's fields as JSON-able values (ReAct's step objects left out)."""
    from promptless.adapters.values import to_jsonable

    items = prediction.items() if hasattr(prediction, "items") else [("output", prediction)]
    result = {}
    for name, value in items:
        if name in HIDDEN_OUTPUTS:
            continue
        try:
            result[name] = to_jsonable(value, field=name)
        except TypeError:
            result[name] = str(value)
    return result
