"""Module parameters, copies and JSON artifacts."""

import json

import pytest

import promptless as pl
from promptless.testing import ScriptedLM


class Hops(pl.Module):
    def __init__(self, n=2):
        self.hops = [pl.Predict("question -> query") for _ in range(n)]
        self.tools = {"final": pl.ChainOfThought("question, notes: list[str] -> answer: int")}

    def forward(self, question):
        notes = [hop(question=question).query for hop in self.hops]
        return self.tools["final"](question=question, notes=notes)


def test_named_predictors_use_paths():
    names = [name for name, _ in Hops().named_predictors()]
    assert names == ["hops[0]", "hops[1]", "tools['final'].predict"]
    assert pl.Predict("q -> a").named_predictors()[0][0] == "self"


def test_deepcopy_and_reset_copy_are_independent():
    program = Hops()
    program.hops[0].demos = [pl.Example(question="q", query="x")]
    clone = program.deepcopy()
    clone.hops[0].demos.append(pl.Example(question="q2", query="y"))
    assert len(program.hops[0].demos) == 1
    assert program.reset_copy().hops[0].demos == []


def test_save_load_round_trip(tmp_path):
    program = Hops()
    program.hops[1].signature = program.hops[1].signature.with_instructions("Write a search query.")
    program.tools["final"].predict.demos = [pl.Example(question="q", notes=["a", "b"], reasoning="r", answer=3)]
    program.hops[0].lm = pl.LM("openai/some-model", api_base="http://127.0.0.1:9/v1", api_key="sk-secret", cache=False)
    path = program.save(tmp_path / "program.json")
    text = path.read_text()
    assert "sk-secret" not in text
    data = json.loads(text)
    assert data["format"] == "promptless.program" and data["version"] == 1
    assert data["predictors"]["tools['final'].predict"]["signature"]["fields"][1]["type"] == "list[str]"

    fresh = Hops().load(path)
    assert fresh.hops[1].signature.instructions == "Write a search query."
    assert fresh.tools["final"].predict.demos[0].notes == ["a", "b"]
    assert fresh.hops[0].lm is None  # a file never decides where requests go: the saved LM is a description
    assert fresh.hops[0].saved_lm["model"] == "openai/some-model"
    assert fresh.hops[0].saved_lm["api_base"] == "http://127.0.0.1:9/v1"
    assert fresh.dump_state() == program.dump_state()


def test_loaded_program_runs_with_its_demos(tmp_path):
    program = pl.Predict("question -> answer")
    program.demos = [pl.Example(question="2+2?", answer="4")]
    program.save(tmp_path / "p.json")
    lm = ScriptedLM([{"answer": "6"}])
    loaded = pl.Predict("question -> answer", lm=lm).load(tmp_path / "p.json")
    assert loaded(question="3+3?").answer == "6"
    assert "2+2?" in lm.requests[0].text


def test_load_rejects_another_program_shape(tmp_path):
    Hops(n=2).save(tmp_path / "p.json")
    with pytest.raises(pl.ArtifactError, match=r"missing from the file \['hops\[2\]'\]"):
        Hops(n=3).load(tmp_path / "p.json")
    other = pl.Predict("question -> query")
    with pytest.raises(pl.ArtifactError, match="does not fit"):
        other.load(tmp_path / "p.json")


def test_load_rejects_changed_fields(tmp_path):
    pl.Predict("question -> answer").save(tmp_path / "p.json")
    with pytest.raises(pl.ArtifactError, match=r"saved fields \['question', 'answer'\] differ"):
        pl.Predict("question -> response").load(tmp_path / "p.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "promptless.program", "version": 1, "predic', "not valid JSON"),
        ('{"hello": "world"}', "not a promptless program"),
        ('{"format": "promptless.program", "version": 99, "predictors": {}}', "newer than"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    ],
)
def test_load_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(pl.ArtifactError, match=message) as info:
        pl.Predict("q -> a").load(path)
    assert str(path) in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(pl.ArtifactError, match="does not exist"):
        pl.Predict("q -> a").load(tmp_path / "nope.json")


def test_save_is_atomic(tmp_path, monkeypatch):
    program = pl.Predict("q -> a")
    path = program.save(tmp_path / "p.json")
    before = path.read_text()
    program.demos = [pl.Example(q=object(), a="x")]  # not JSON-serialisable: save must fail...
    with pytest.raises(TypeError):
        program.save(path)
    assert path.read_text() == before  # ...and leave the old artifact intact
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
