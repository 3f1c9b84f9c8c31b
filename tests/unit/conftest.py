"""Fixtures shared by the unit tests of the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from promptless.cli import common, main


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """``cli(*args, lm=...)`` runs the promptless app in tmp_path on that ScriptedLM.

    test_cli.py has a fuller fixture of the same name (stdin, the models asked for), which wins there.
    """
    monkeypatch.chdir(tmp_path)
    current = {}
    monkeypatch.setattr(common, "make_lm", lambda model, *, api_base=None: current["lm"])

    def invoke(*args, lm):
        current["lm"] = lm
        return CliRunner(env={"COLUMNS": "200"}).invoke(main.app, [str(a) for a in args])

    return invoke
