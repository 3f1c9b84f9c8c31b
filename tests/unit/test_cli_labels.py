"""``--label-names``: label codes the prompt explains in words, while the answer stays the code."""

from __future__ import annotations

import json

from promptless.cli.errors import USAGE
from promptless.testing import ScriptedLM
from tests.unit.test_cli import one_error


def write_rows(path, field, values, n=12):
    path.write_text("".join(json.dumps({"question": f"q{i}", field: values[i % len(values)]}) + "\n" for i in range(n)))


def test_label_names_reach_the_prompt_and_the_answer_stays_the_code(cli, tmp_path):
    write_rows(tmp_path / "trec.jsonl", "category", ["ABBR", "NUM"])
    lm = ScriptedLM(lambda request: {"category": "NUM"})
    args = ("compile", "trec.jsonl", "-s", "question -> category", "-o", "p.json")
    result = cli(*args, "--label-names", "ABBR=abbreviation, NUM = number", lm=lm)
    assert result.exit_code == 0, result.output
    assert "category's labels described: ABBR = abbreviation, NUM = number (the answer stays the code)" in result.stdout
    system = lm.requests[0].messages[0]["content"]
    assert system.startswith("Category: ABBR = abbreviation, NUM = number; one of: ABBR, NUM\n")
    state = json.loads((tmp_path / "p.json").read_text())
    assert state["cli"]["label_names"] == {"ABBR": "abbreviation", "NUM": "number"}
    assert state["cli"]["signature"] == "question -> category: Literal['ABBR', 'NUM']"
    saved = {f["name"]: f for f in state["predictors"]["self"]["signature"]["fields"]}
    assert saved["category"]["desc"] == "ABBR = abbreviation, NUM = number"
    shown = cli("inspect", "p.json", "-i", "question=What does NASA stand for?", lm=lm)
    assert shown.exit_code == 0, shown.output
    assert "label names (--label-names, shown in the prompt): ABBR = abbreviation, NUM = number" in shown.stdout
    prompt = shown.stdout.split("prompt of self for the --input values", 1)[1].split("\n", 1)[1]
    assert prompt == (
        "[system]\n"
        "Category: ABBR = abbreviation, NUM = number; one of: ABBR, NUM\n"
        "\n"
        'Given question: reply with a JSON object with keys "category".\n'
        "\n"
        "[user]\n"
        "Question: What does NASA stand for?\n"
    )
    ran = cli("run", "p.json", "-i", "question=How many moons has Mars?", "--json", lm=lm)
    assert json.loads(ran.stdout) == {"category": "NUM"}  # the code, not its name


def test_label_names_from_a_json_file_for_numeric_codes(cli, tmp_path):
    write_rows(tmp_path / "sst.jsonl", "label", [0, 1])
    (tmp_path / "names.json").write_text(json.dumps({"0": "negative", "1": "positive"}))
    lm = ScriptedLM(lambda request: {"label": 1})
    args = ("compile", "sst.jsonl", "-s", "question -> label", "-o", "p.json", "--label-names", "names.json")
    result = cli(*args, lm=lm)
    assert result.exit_code == 0, result.output
    assert lm.requests[0].messages[0]["content"].startswith("Label: 0 = negative, 1 = positive; one of: 0, 1\n")
    assert json.loads((tmp_path / "p.json").read_text())["cli"]["label_names"] == {"0": "negative", "1": "positive"}


def test_bad_label_names_fail_before_any_lm_call(cli, tmp_path):
    write_rows(tmp_path / "trec.jsonl", "category", ["ABBR", "NUM"])
    (tmp_path / "list.json").write_text("[1, 2]")
    lm = ScriptedLM(lambda request: {"category": "NUM"})
    args = ("compile", "trec.jsonl", "-s", "question -> category", "-o", "p.json")
    one_error(cli(*args, "--label-names", "LOC=location", lm=lm), USAGE, "['LOC'] are not values of category")
    one_error(cli(*args, "--label-names", "ABBR", lm=lm), USAGE, "'ABBR' is not of the form CODE=name")
    one_error(cli(*args, "--label-names", "list.json", lm=lm), USAGE, "expected a JSON object of code -> name")
    one_error(cli(*args, "--label-names", "gone.json", lm=lm), USAGE, "--label-names gone.json: cannot read it")
    free = cli(*args, "--free-text", "--label-names", "ABBR=abbreviation", lm=lm)
    one_error(free, USAGE, "--label-names: category is free text")
    assert lm.requests == []
