import pytest

from promptless import Example, Prediction


def test_example_inputs_and_labels():
    ex = Example(question="2+2?", answer="4", source="x").with_inputs("question")
    assert ex.inputs().toDict() == {"question": "2+2?"}
    assert ex.labels().toDict() == {"answer": "4", "source": "x"}
    assert ex.question == "2+2?" and ex["answer"] == "4" and "source" in ex
    assert Example(ex) == ex


def test_example_errors_name_the_fields():
    ex = Example(question="q")
    with pytest.raises(ValueError, match="with_inputs"):
        ex.inputs()
    with pytest.raises(KeyError, match="'nope'"):
        ex.with_inputs("nope")
    with pytest.raises(AttributeError, match="no field 'missing'"):
        _ = ex.missing


def test_prediction_completions():
    pred = Prediction.from_completions([{"answer": "a"}, {"answer": "b"}])
    assert pred.answer == "a"
    assert pred.completions.answer == ["a", "b"]
    assert len(pred.completions) == 2
    assert pred.completions[1].answer == "b"
