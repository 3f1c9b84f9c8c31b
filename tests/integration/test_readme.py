"""The README's quick start runs as written, on the embedded models."""

import contextvars
import re
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_quick_start_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python block"
    monkeypatch.chdir(tmp_path)
    code = compile(blocks[0], str(README), "exec")
    # In a copy of the context, so the snippet's configure() does not outlive the test.
    contextvars.copy_context().run(exec, code, {"__name__": "__readme__"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] in ("positive", "negative")
    assert printed[1].lstrip("-").isdigit()
    assert (tmp_path / "classify.json").is_file()
