"""The ``promptless`` command: compile, eval, run and inspect programs from the shell.

``make_lm`` is the one place a command gets its LM; tests replace it (monkeypatch)
to run every command on a ``ScriptedLM``. Heavy imports happen inside the commands,
so ``promptless --help`` starts fast.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from promptless.cli.cmd_compile import compile_command
from promptless.cli.cmd_eval import eval_command
from promptless.cli.cmd_inspect import inspect_command
from promptless.cli.cmd_run import run_command

if TYPE_CHECKING:
    from promptless.lm.base import LM

app = typer.Typer(
    name="promptless",
    help="Program language models: compile a program on your data, evaluate it, run it, look inside it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("compile")(compile_command)
app.command("eval")(eval_command)
app.command("run")(run_command)
app.command("inspect")(inspect_command)


def make_lm(model: str, *, api_base: str | None = None) -> LM:
    """The LM a command runs on, from ``--lm`` (and ``--api-base``). Tests monkeypatch this function."""
    from promptless.lm.base import LM

    return LM(model, api_base=api_base)


def _version(value: bool) -> None:
    if value:
        from promptless import __version__

        typer.echo(f"promptless {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Options for every command."""
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
