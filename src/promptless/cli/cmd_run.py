"""``promptless run program.json --input question="..."``, or ``--jsonl in.jsonl`` for JSONL in, JSONL out."""

from __future__ import annotations

import functools
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
    from promptless.cli.artifact import LoadedProgram
    from promptless.executor import Outcome
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
    ray: Annotated[
        bool, typer.Option("--ray", help="Run the --jsonl lines on Ray workers, each with its own model.")
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS", help="With --ray: join the Ray cluster at host:port ('auto': the one running here)."
        ),
    ] = None,
) -> None:
    """Run a saved program on one input, or on every line of a JSONL file."""
    from rich.console import Console

    from promptless.cli.artifact import load_program
    from promptless.cli.common import parse_inputs, preflight, program_lm, require_inputs
    from promptless.cli.programs import load_tools
    from promptless.settings import context

    if bool(inputs) == (jsonl is not None):
        raise CLIError("give the inputs with --input field=value (repeatable) or --jsonl FILE, one of the two")
    if (ray or address is not None) and jsonl is None:
        raise CLIError("--ray and --address run the lines of a --jsonl file; give --jsonl FILE")
    if address is not None and not ray:
        raise CLIError("--address is the Ray cluster to join: use it with --ray")
    loaded = load_program(program_path, tools=(lambda: load_tools(tools)) if tools else None)
    values: dict[str, Any] = {}
    if inputs:
        values = parse_inputs(inputs, loaded.task)
        require_inputs(values, loaded.task, "--input")
    run_lm = program_lm(loaded, lm, api_base)
    preflight(run_lm)
    with context(lm=run_lm):
        if jsonl is not None:
            executor = ray_executor(loaded, tools, address) if ray else None
            try:
                failed, total = run_lines(loaded.program, loaded.task, jsonl, sys.stdout, executor)
            finally:
                if executor is not None:
                    executor.close()
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


def run_lines(program: Module, task: Signature, source: str, out: TextIO, executor: Any = None) -> tuple[int, int]:
    """Run every non-blank line; a line that fails gets ``{"error": ...}`` and the rest go on.

    Errors that no other line could escape (bad credentials, a missing model, the budget) stop the run.
    The lines go through ``executor`` (``promptless.executor``); without one, one line at a time in this
    process, each written as it finishes. On Ray the lines run together, written in input order.
    Returns (failed, total).
    """
    from promptless.cli.data import read_text
    from promptless.executor import ThreadExecutor

    lines = sys.stdin if source == "-" else read_text(Path(source)).splitlines()
    chunk = LINES_PER_CHUNK if executor is not None else 1
    counts = [0, 0]  # failed, total
    pending: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        pending.append((number, line))
        if len(pending) >= chunk:
            _run_chunk(program, task, source, pending, out, executor or ThreadExecutor(1), counts)
            pending = []
    if pending:
        _run_chunk(program, task, source, pending, out, executor or ThreadExecutor(1), counts)
    if counts[1] == 0:
        raise CLIError(f"{source} has no inputs (no non-blank lines)")
    return counts[0], counts[1]


LINES_PER_CHUNK = 10_000  # on Ray: lines sent together (a chunk's outputs are written in order as they finish)


def _run_chunk(
    program: Module,
    task: Signature,
    source: str,
    lines: list[tuple[int, str]],
    out: TextIO,
    executor: Any,
    counts: list[int],
) -> None:
    """One chunk of lines: each parsed here, the good ones mapped, every output written in input order."""
    from promptless.cli.common import require_inputs
    from promptless.cli.data import parse_jsonl_line

    done: dict[int, tuple[dict[str, Any], bool]] = {}  # position in the chunk -> (output line, failed)
    inputs: list[dict[str, Any]] = []
    positions: list[int] = []  # the chunk position of each input that runs
    for position, (number, line) in enumerate(lines):
        try:
            record = parse_jsonl_line(source if source != "-" else "stdin", number, line)
            values = {name: record[name] for name in task.input_fields if name in record}
            require_inputs(values, task, f"line {number}")
        except CLIError as error:
            done[position] = ({"error": redact(error)}, True)
            continue
        inputs.append(values)
        positions.append(position)
    next_position = 0

    def flush() -> None:
        nonlocal next_position
        while next_position in done:
            result, failed = done.pop(next_position)
            counts[0] += failed
            counts[1] += 1
            out.write(json_line(result))
            next_position += 1
        out.flush()

    def record(index: int, outcome: Outcome) -> None:
        if outcome.error is not None:
            if cannot_recover(outcome.error):
                raise outcome.error
            done[positions[index]] = ({"error": redact(f"{type(outcome.error).__name__}: {outcome.error}")}, True)
        else:
            done[positions[index]] = (outputs_of(outcome.prediction), False)
        flush()

    flush()
    if inputs:
        executor.map_program(program, inputs, on_outcome=record)
    flush()


def ray_executor(loaded: LoadedProgram, tools: str | None, address: str | None) -> Any:
    """A RayExecutor whose workers rebuild this program from its artifact's own recipe (kind, signature, tools)."""
    from promptless.distributed import RayExecutor

    spec = loaded.spec
    factory = None
    if spec is not None:
        factory = functools.partial(rebuild_program, spec.program, spec.signature, tools)
    return RayExecutor(address=address, program_factory=factory)


def rebuild_program(kind: str, signature: str, tools: str | None) -> Module:
    """In a Ray worker: the program ``promptless compile`` built (its tools imported there from --tools)."""
    from promptless.cli.programs import build_program, load_tools
    from promptless.signature import ensure_signature

    return build_program(kind, ensure_signature(signature), load_tools(tools) if tools else None)


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
