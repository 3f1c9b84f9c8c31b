"""The programs the CLI builds from ``--program`` and ``--tools``, and the fields their data must have.

A bad value raises ``CLIError`` naming the option, before any LM call is made.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from contextlib import suppress
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptless.cli.errors import CLIError

if TYPE_CHECKING:
    from promptless.module import Module
    from promptless.signature import Signature

REASONING = "reasoning"  # the output ChainOfThought adds: written by the model, never read from data


class ProgramKind(StrEnum):
    predict = "predict"
    cot = "cot"
    react = "react"


# -- programs ---------------------------------------------------------------------------------------
def build_program(kind: str, signature: Signature, tools: list[Callable[..., Any]] | None = None) -> Module:
    """``predict`` → Predict, ``cot`` → ChainOfThought, ``react`` → ReAct with the given tools."""
    if kind == ProgramKind.react:
        if not tools:
            raise CLIError("--program react needs tools: pass --tools module:function[,module:function...]")
        from promptless.modules.react import ReAct

        return ReAct(signature, tools=tools)
    if tools:
        raise CLIError(f"--tools is only used with --program react, not --program {kind}")
    if kind == ProgramKind.cot:
        from promptless.modules.chain_of_thought import ChainOfThought

        return ChainOfThought(signature)
    if kind == ProgramKind.predict:
        from promptless.modules.predict import Predict

        return Predict(signature)
    raise CLIError(f"unknown program {kind!r}; choose one of {[k.value for k in ProgramKind]}")


def load_tools(spec: str) -> list[Callable[..., Any]]:
    """``"mytools:search,mytools:lookup"`` → the functions, imported (the current directory is searched too)."""
    tools = []
    for item in (part.strip() for part in spec.split(",")):
        module_name, _, attribute = item.partition(":")
        if not module_name or not attribute:
            raise CLIError(f"--tools: {item!r} is not of the form module:function")
        module = _import(module_name)
        tool = getattr(module, attribute, None)
        if tool is None:
            raise CLIError(f"--tools: module {module_name!r} has no {attribute!r}")
        if not callable(tool):
            raise CLIError(f"--tools: {item} is a {type(tool).__name__}, not a function")
        tools.append(tool)
    return tools


def _import(name: str) -> Any:
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise CLIError(f"--tools: cannot import module {name!r} ({error})") from None
    except Exception as error:
        raise CLIError(f"--tools: importing {name!r} failed: {type(error).__name__}: {error}") from None
    finally:
        if added:
            with suppress(ValueError):
                sys.path.remove(cwd)


def task_fields(signature: Signature) -> tuple[list[str], list[str]]:
    """The fields data must supply: all inputs, and the outputs except a model-written ``reasoning``."""
    outputs = [name for name in signature.output_fields if name != REASONING] or list(signature.output_fields)
    return list(signature.input_fields), outputs
