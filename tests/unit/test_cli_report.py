"""``promptless eval --report``: Markdown or one self-contained HTML page with the score, labels and before/after."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

import promptless as pl
from promptless.cli.errors import USAGE
from promptless.cli.report import Report
from promptless.testing import ScriptedLM
from tests.unit.test_cli import SIGNATURE, one_error, reply, write_qa


def parity(request) -> dict:
    """``yes`` for an even question number, ``no`` for an odd one, but right only with demos in the prompt."""
    question = re.findall(r"Question: q(\d+)", request.messages[-1]["content"])[-1]
    right = "yes" if int(question) % 2 == 0 else "no"
    return {"answer": right if len(request.messages) > 2 else "no"}


@pytest.fixture
def labelled(cli, tmp_path):
    rows = [{"question": f"q{i}", "answer": "yes" if i % 2 == 0 else "no"} for i in range(30)]
    (tmp_path / "yn.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("compile", "yn.jsonl", "-s", SIGNATURE, "-o", "p.json", lm=ScriptedLM(parity)).exit_code == 0
    return json.loads((tmp_path / "p.json").read_text())["cli"]["compile"]


def test_the_artifact_records_the_scores_before_and_after(labelled):
    before, after = labelled["before"], labelled["after"]
    assert before["name"] == "baseline" and before["score"] == labelled["baseline_score"] and before["n"] == 9
    assert after["name"] == "compiled" and after["score"] == 100.0 and len(after["ci"]) == 2
    assert after["kept"] == (labelled["chosen"] == "compiled") and after["delta"] == 100.0 - before["score"]


def test_markdown_report_has_score_labels_matrix_and_before_after(cli, labelled, tmp_path):
    result = cli("eval", "p.json", "yn.jsonl", "--report", "out.md", lm=ScriptedLM(parity))
    assert result.exit_code == 0, result.output
    assert "wrote out.md" in result.stdout
    text = (tmp_path / "out.md").read_text()
    assert text.startswith("# p.json on yn.jsonl\n")
    score = re.search(r"(\d+\.\d)% \(", result.stdout).group(1)
    assert f"**Score (exact): {score}% (" in text and "on 30 examples, 0 error(s)" in text
    assert "## Before / after compiling" in text and "scored on 9 held-out validation examples" in text
    before = labelled["before"]
    assert f"| baseline | {before['score']:.1f}% ({before['ci'][0]:.1f}–{before['ci'][1]:.1f}) |  | 9 |" in text
    assert re.search(r"\| compiled( \(not kept\))? \| 100\.0% \(100\.0–100\.0\) \| \+\d+\.\d \(", text)
    assert "## Per label (answer)" in text and re.search(r"\| no \| 15 \| 100\.0% ", text)
    assert "| gold \\ predicted | no | yes |" in text


def test_html_report_is_one_file_with_an_svg_chart_and_nothing_to_load(cli, labelled, tmp_path):
    result = cli("eval", "p.json", "yn.jsonl", "--report", "out.html", lm=ScriptedLM(parity))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for outside in ("<script", "<link", "src=", "href=", "url(", "@import"):
        assert outside not in page.lower(), outside
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["http://www.w3.org/2000/svg"]  # the SVG namespace only
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))
    bars = svg.findall("{http://www.w3.org/2000/svg}rect")
    widths = [float(bar.get("width")) for bar in bars]
    assert widths == [round(360 * labelled["before"]["score"] / 100, 1), 360.0]  # before, after (100 %)
    assert "<h2>Per label (answer)</h2>" in page and "<h2>Confusion matrix</h2>" in page


def test_report_without_a_compile_or_labels_and_a_bad_name(cli, tmp_path):
    write_qa(tmp_path / "qa.jsonl")
    program = pl.Predict(SIGNATURE)
    program.demos = [pl.Example(question="q1", answer="a1")]
    program.save(tmp_path / "py.json")  # saved from Python: no compile section
    lm = ScriptedLM(reply)
    result = cli("eval", "py.json", "qa.jsonl", "--report", "plain.md", lm=lm)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "plain.md").read_text()
    assert "**Score (exact): 100.0% (100.0–100.0)**" in text
    assert "Before / after" not in text and "Per label" not in text  # a free-text answer: no labels
    forced = cli("eval", "py.json", "qa.jsonl", "--report", "labels.html", "--per-label", lm=lm)
    assert forced.exit_code == 0 and "<h2>Per label (answer)</h2>" in (tmp_path / "labels.html").read_text()
    assert "<svg" not in (tmp_path / "labels.html").read_text()
    calls = len(lm.requests)
    one_error(cli("eval", "py.json", "qa.jsonl", "--report", "out.txt", lm=lm), USAGE, "name a .md (Markdown) or .html")
    one_error(cli("eval", "py.json", "qa.jsonl", "--report", "no/out.md", lm=lm), USAGE, "the folder no does not exist")
    assert len(lm.requests) == calls  # refused before any LM call


def test_text_from_files_and_models_is_escaped():
    report = Report("<script>alert(1)</script>", "exact", 50.0, (0.0, 100.0), 2, 1, "label")
    report.matrix = (["a|b"], ["a|b", "<i>x</i>"], {("a|b", "<i>x</i>"): 1})
    report.failures = ["example 1: ParseError: \x1b[31m<img src=x>"]
    page, text = report.html(), report.markdown()
    assert "<script>" not in page and "&lt;script&gt;" in page and "<img" not in page and "\x1b" not in page
    assert "| a\\|b |" in text and "<i>" not in text and "\x1b" not in text
