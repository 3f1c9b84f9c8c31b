"""``--help`` reads cleanly: what each option takes in words, choices whole, arguments by name, at any width."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from promptless.cli import main
from promptless.cli.metrics import MetricKind
from promptless.cli.optimizers import OptimizerKind
from promptless.cli.programs import ProgramKind

TYPE_NOISE = re.compile(r"<(bool|str|int|float|path|file|list|int range|float range|text)\b[^>]*>", re.IGNORECASE)
USAGE = {
    "compile": "Usage: promptless compile [OPTIONS] DATA",
    "eval": "Usage: promptless eval [OPTIONS] PROGRAM DATA",
    "run": "Usage: promptless run [OPTIONS] PROGRAM",
    "inspect": "Usage: promptless inspect [OPTIONS] PROGRAM",
    "models": "Usage: promptless models [OPTIONS]",
}


def help_text(*args: str, columns: int) -> str:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(main.app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("command", list(USAGE))
def test_help_has_no_type_noise_and_whole_choices(command, columns):
    text = help_text(command, columns=columns)
    assert text.splitlines()[0] == USAGE[command]
    assert not TYPE_NOISE.search(text), TYPE_NOISE.search(text).group(0)
    assert "{" not in text and "}" not in text
    assert all(len(line) <= columns for line in text.splitlines())
    if command in ("compile", "eval"):
        assert "-m, --metric [exact|f1|contains|judge]" in text
    if command == "compile":
        for kind in (ProgramKind, OptimizerKind):
            assert "[" + "|".join(k.value for k in kind) + "]" in text  # on one line, never cut inside a value
        for option in ("--signature SIGNATURE", "--output FILE", "--lm MODEL", "--budget N", "--checkpoint FILE"):
            assert option in text
    if command in ("run", "inspect"):
        assert "-i, --input FIELD=VALUE" in text


def test_every_choice_is_listed(tmp_path):
    text = help_text("compile", columns=80)
    for kind in (ProgramKind, MetricKind, OptimizerKind):
        for member in kind:
            assert re.search(rf"[\[|]{re.escape(member.value)}[|\]]", text), member


def test_the_command_list_has_whole_sentences():
    text = help_text(columns=80)
    commands = text.split("Commands:", 1)[1].splitlines()
    assert [line.split()[0] for line in commands if line.strip()] == list(USAGE)
    assert not any(line.rstrip().endswith("...") for line in commands)
