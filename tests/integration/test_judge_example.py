"""examples/judge.py runs end to end on the embedded model with a tiny limit and reports its agreement numbers."""

import contextvars
import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "judge.py"


def load_example():
    spec = importlib.util.spec_from_file_location("judge_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_judge_example_reports_agreement_before_and_after_compiling(capsys):
    example = load_example()
    # In a copy of the context, so nothing the example sets outlives the test.
    results = contextvars.copy_context().run(example.main, ["--limit", "8", "--task-items", "4", "--demos", "2"])
    out = capsys.readouterr().out

    before = re.search(r"agreement before compiling: (\d+\.\d)% \(n=(\d+), chance 50%\)", out)
    after = re.search(r"agreement after compiling: (\d+\.\d)% \(n=(\d+)\)", out)
    assert before and after, out[-2000:]
    assert before.group(2) == after.group(2) == "4"
    assert float(before.group(1)) == pytest.approx(results["agreement_before"], abs=0.05)
    assert float(after.group(1)) == pytest.approx(results["agreement_after"], abs=0.05)
    assert re.search(r"task program scored by the compiled judge: zero-shot \d+\.\d%, compiled \d+\.\d%", out)
    assert all(0.0 <= value <= 100.0 for value in results.values())
