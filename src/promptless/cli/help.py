"""How ``--help`` reads: plain words for what an option takes, choices spelled out, arguments by their name.

typer's plain help (its rich renderer is off, for start-up speed) shows each option's type
as ``<str>``, ``<int range>`` or ``<list[str]>`` and each argument as ``{data}`` in the usage
line and ``data <path>`` in the list. Every option here names what it takes with
``metavar=`` (``FILE``, ``N``, ``MODEL``, ``[exact|f1|contains|judge]``); ``PlainCommand``
shows an argument by its metavar alone (``DATA``, ``PROGRAM``), in the usage line and the list.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer
import typer.core


def choices(kind: type[Enum]) -> str:
    """``[exact|f1|contains|judge]``: an option's metavar listing the values of its enum, in order."""
    return "[" + "|".join(str(member.value) for member in kind) + "]"


class PlainCommand(typer.core.TyperCommand):
    """A command whose arguments show as ``DATA`` (optional ones ``[DATA]``), without a type after them."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument" and not param.hidden:
                extra = "  [required]" if param.required else ""
                arguments.append((_argument_name(param), (getattr(param, "help", None) or "") + extra))
            elif param.param_type_name == "option":
                record = param.get_help_record(ctx)
                if record is not None:
                    options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def _argument_name(param: Any) -> str:
    return param.metavar or (param.name or "").upper()


# Options several commands share, declared once.
ApiBaseOption = Annotated[str | None, typer.Option(metavar="URL", help="Base URL of an OpenAI-compatible server.")]
ToolsOption = Annotated[
    str | None, typer.Option(metavar="TOOLS", help="A ReAct program's tools: module:function[,...].")
]
