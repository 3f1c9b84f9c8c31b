"""The ``promptless`` command: compile, eval, run and inspect programs from the shell.

This file only wires the commands. ``promptless.cli.common.make_lm`` is the one place a
command gets its LM (tests replace it). Heavy imports happen inside the commands, so
``promptless --help`` starts fast.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from promptless._version import __version__
from promptless.cli.cmd_compile import compile_command
from promptless.cli.cmd_eval import eval_command
from promptless.cli.cmd_inspect import inspect_command
from promptless.cli.cmd_models import models_command
from promptless.cli.cmd_run import run_command
from promptless.cli.help import PlainCommand

app = typer.Typer(
    name="promptless",
    help="Program language models: compile a program on your data, evaluate it, run it, look inside it.",
    invoke_without_command=True,  # bare `promptless` prints the help and exits 0 (see _options)
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: typer's rich help renderer alone costs ~0.25 s of start-up
)
app.command("compile", cls=PlainCommand, short_help="Compile a program on a data file and save it.")(compile_command)
app.command("eval", cls=PlainCommand, short_help="Score a saved program on a data file, with a 95% CI.")(eval_command)
app.command("run", cls=PlainCommand, short_help="Run a saved program on inputs.")(run_command)
app.command("inspect", cls=PlainCommand, short_help="Show what a saved program holds and its exact prompt.")(
    inspect_command
)
app.command("models", cls=PlainCommand, short_help="List the embedded models and their short names.")(models_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"promptless {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Options for every command."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    if verbose:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False)
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[handler], force=True)


def main() -> None:
    """Entry point of the ``promptless`` script and of ``python -m promptless``."""
    app(prog_name="promptless")


if __name__ == "__main__":
    main()
