"""Signatures: string and class forms, types, edits, and the errors malformed ones raise."""

from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel

from promptless import InputField, OutputField, Signature, SignatureError


class Answer(BaseModel):
    text: str
    confidence: float


def test_string_form_parses_types_in_order():
    sig = Signature("context: list[str], question -> answer: int")
    assert list(sig.input_fields) == ["context", "question"]
    assert list(sig.output_fields) == ["answer"]
    assert sig.fields["context"].annotation == list[str]
    assert sig.fields["question"].annotation is str
    assert sig.fields["answer"].annotation is int
    assert sig.signature == "context: list[str], question -> answer: int"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Literal['a', 'b']", Literal["a", "b"]),
        ("bool", bool),
        ("float", float),
        ("dict[str, int]", dict[str, int]),
        ("Optional[int]", Optional[int]),  # noqa: UP045
        ("int | None", int | None),
        ("list[Literal['x', 'y']]", list[Literal["x", "y"]]),
        ("Any", Any),
    ],
)
def test_supported_types(text, expected):
    assert Signature(f"q -> out: {text}").fields["out"].annotation == expected


def test_custom_types_come_from_an_explicit_mapping():
    sig = Signature("question -> answer: Answer", custom_types={"Answer": Answer})
    assert sig.fields["answer"].annotation is Answer
    # issue 17: without the mapping, the name comes from the defining module's namespace, as in DSPy
    assert Signature("question -> answer: Answer").fields["answer"].annotation is Answer
    with pytest.raises(SignatureError, match="unknown type 'Frobnicator'"):
        Signature("question -> answer: Frobnicator")


def test_class_form_uses_docstring_and_descriptions():
    class QA(Signature):
        """Answer with a short fact."""

        question: str = InputField(desc="a trivia question")
        answer: Answer = OutputField(desc="the answer")
        context: list[str] = InputField()

    assert QA.instructions == "Answer with a short fact."
    assert list(QA.input_fields) == ["question", "context"]  # inputs first, in declaration order
    assert QA.fields["answer"].annotation is Answer
    assert QA.fields["question"].desc == "a trivia question"
    assert QA().signature == "question, context: list[str] -> answer: Answer"
    assert QA.with_instructions("Be brief.").instructions == "Be brief."


def test_edits_return_new_signatures():
    sig = Signature("question -> answer", "Answer it.")
    longer = sig.prepend("reasoning", OutputField(desc="think"), str).append("hint", InputField())
    assert list(longer.fields) == ["question", "hint", "reasoning", "answer"]
    assert list(sig.fields) == ["question", "answer"]
    assert list(longer.delete("hint").fields) == ["question", "reasoning", "answer"]
    assert longer.instructions == "Answer it."
    assert sig.with_instructions("New.") != sig


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("question answer", "has no '->'"),
        ("a -> b -> c", "more than one '->'"),
        (" -> answer", "no input fields"),
        ("question -> ", "no output fields"),
        ("q, q -> a", "names field 'q' twice"),
        ("q -> q", "names field 'q' twice"),
        ("my question -> a", "not a valid field name"),
        ("class -> a", "not a valid field name"),
        ("q -> a: Frobnicator", "unknown type 'Frobnicator'"),
        ("demos -> a", "reserved"),
        ("q -> _private", "reserved"),
        ("q,, r -> a", "empty input field"),
        ("q -> a: list[", "not a type expression"),
    ],
)
def test_malformed_signatures_say_what_is_wrong(spec, message):
    with pytest.raises(SignatureError, match=message) as info:
        Signature(spec)
    assert repr(spec) in str(info.value) or spec.strip() in str(info.value)


def test_to_dict_records_types_as_text():
    data = Signature("q -> a: Literal['x', 'y']").to_dict()
    assert data["fields"][1] == {"name": "a", "kind": "output", "type": "Literal['x', 'y']", "desc": "", "prefix": None}
