"""Adapters: prompt layout, constraints, and parsing typed values (no LM involved)."""

import json
from typing import Literal

import pytest
from pydantic import BaseModel

from promptless import ChatAdapter, CompletionAdapter, Example, JSONAdapter, ParseError, Signature
from promptless.adapters.schema import output_json_schema, output_line_grammar

SENTIMENT = Signature("sentence -> sentiment: Literal['positive', 'negative']", "Classify the sentiment.")


class Person(BaseModel):
    name: str
    age: int


def test_completion_prompt_puts_fixed_parts_first_and_ends_at_first_output():
    demos = [Example(sentence="great fun", sentiment="positive")]
    a = CompletionAdapter().format(SENTIMENT, demos, {"sentence": "dull"}).prompt
    b = CompletionAdapter().format(SENTIMENT, demos, {"sentence": "a masterpiece"}).prompt
    assert a.startswith("Classify the sentiment.")
    assert a.endswith("Sentence: dull\nSentiment:")
    assert "Sentence: great fun\nSentiment: positive" in a
    common = len(a[: next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)])
    assert common == a.index("Sentence: dull") + len("Sentence: ")  # only the inputs differ


def test_completion_grammar_constrains_literals_and_caps_text():
    sig = Signature("q -> reasoning, label: Literal['yes', 'no'], n: int")
    grammar = output_line_grammar(sig, text_cap=200)
    assert grammar.startswith('root ::= " " [^\\n]{1,200} "\\nLabel: " ("yes" | "no") "\\nN: " "-"? [0-9]{1,15}')


def test_completion_grammar_embeds_json_rules_for_models():
    sig = Signature("q -> person: Person", custom_types={"Person": Person})
    pytest.importorskip("llama_cpp")
    grammar = output_line_grammar(sig)
    assert "f0-root ::=" in grammar and '\\"name\\"' in grammar


def test_chat_format_and_schema():
    demos = [Example(sentence="great fun", sentiment="positive")]
    request = ChatAdapter().format(SENTIMENT, demos, {"sentence": "dull"}, temperature=0.0)
    roles = [m["role"] for m in request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert json.loads(request.messages[2]["content"]) == {"sentiment": "positive"}
    assert request.messages[-1]["content"] == "Sentence: dull"
    assert request.schema["properties"]["sentiment"] == {"enum": ["positive", "negative"], "type": "string"}
    assert ChatAdapter(constrained=False).format(SENTIMENT, [], {"sentence": "x"}).schema is None


def test_json_adapter_sends_inputs_as_json():
    request = JSONAdapter().format(Signature("numbers: list[int] -> total: int"), [], {"numbers": [1, 2]})
    assert json.loads(request.messages[-1]["content"]) == {"numbers": [1, 2]}


def test_schema_caps_free_text_and_hoists_model_defs():
    sig = Signature("q -> reasoning, person: Person", custom_types={"Person": Person})
    schema = output_json_schema(sig, text_cap=300)
    assert schema["properties"]["reasoning"]["maxLength"] == 300
    assert schema["required"] == ["reasoning", "person"]
    assert schema["properties"]["person"]["properties"]["age"] == {"title": "Age", "type": "integer"}


@pytest.mark.parametrize(
    ("annotation", "text", "expected"),
    [
        ("int", " 42", 42),
        ("float", " 3.5", 3.5),
        ("bool", " true", True),
        ("list[str]", ' ["a", "b"]', ["a", "b"]),
        ("dict[str, int]", ' {"a": 1}', {"a": 1}),
        ("Literal['positive', 'negative']", " Positive.", "positive"),
        ("Optional[int]", " null", None),
    ],
)
def test_completion_parse_typed_values(annotation, text, expected):
    sig = Signature(f"q -> out: {annotation}")
    assert CompletionAdapter().parse(sig, text) == {"out": expected}


def test_completion_parse_several_fields_and_stops_at_blank_line():
    sig = Signature("q -> reasoning, answer: int")
    assert CompletionAdapter().parse(sig, " 3 plus 4\nAnswer: 7\n\nQ: next") == {"reasoning": "3 plus 4", "answer": 7}


def test_chat_parse_json_in_prose_and_pydantic():
    sig = Signature("q -> person: Person", custom_types={"Person": Person})
    out = ChatAdapter().parse(sig, 'Sure! ```json\n{"person": {"name": "Ada", "age": 36}}\n```')
    assert out["person"] == Person(name="Ada", age=36)


def test_chat_parse_falls_back_to_lines():
    assert ChatAdapter().parse(SENTIMENT, "Sentiment: negative") == {"sentiment": "negative"}


@pytest.mark.parametrize(
    ("adapter", "text", "field"),
    [
        (ChatAdapter(), '{"other": 1}', "sentiment"),
        (ChatAdapter(), '{"sentiment": "meh"}', "sentiment"),
        (CompletionAdapter(), " maybe", "sentiment"),
    ],
)
def test_parse_errors_keep_raw_text_and_field(adapter, text, field):
    with pytest.raises(ParseError) as info:
        adapter.parse(SENTIMENT, text)
    assert info.value.raw == text
    assert info.value.field == field


def test_non_serialisable_input_names_the_field():
    with pytest.raises(TypeError, match="field 'sentence'"):
        ChatAdapter().format(SENTIMENT, [], {"sentence": object()})


def test_literal_type_is_kept_in_prompt_spec():
    prompt = CompletionAdapter().format(SENTIMENT, [], {"sentence": "x"}).prompt
    assert "write Sentiment (one of: positive, negative)." in prompt
    assert Literal  # the spec comes from the Literal annotation above


def test_rendered_demos_are_memoised_but_follow_changes():
    adapter = ChatAdapter()
    demo = Example(sentence="great fun", sentiment="positive")
    first = adapter.format(SENTIMENT, [demo], {"sentence": "a"})
    again = adapter.format(SENTIMENT, [demo], {"sentence": "b"})
    assert first.messages[:3] is not None and first.messages[1] is again.messages[1]  # reused, not re-rendered
    demo.sentiment = "negative"  # an in-place change must show in the next prompt
    changed = adapter.format(SENTIMENT, [demo], {"sentence": "a"})
    assert json.loads(changed.messages[2]["content"]) == {"sentiment": "negative"}
    plain = {"sentence": "great fun", "sentiment": "positive"}
    adapter.format(SENTIMENT, [plain], {"sentence": "a"})
    plain["sentiment"] = "negative"  # plain dicts carry no change counter: never served from the memo
    assert "negative" in adapter.format(SENTIMENT, [plain], {"sentence": "a"}).messages[2]["content"]
    completion = CompletionAdapter()
    completion.format(SENTIMENT, [demo], {"sentence": "a"})
    demo["sentence"] = "dreadful"
    assert "Sentence: dreadful" in completion.format(SENTIMENT, [demo], {"sentence": "a"}).prompt


def test_a_predictors_own_stop_strings_add_to_the_completion_adapters():
    import promptless as pl
    from promptless.testing import ScriptedLM

    lm = ScriptedLM(default=" ok", model_type="completion")
    predict = pl.Predict("question -> answer", lm=lm, stop=["END"])
    predict(question="q")
    assert lm.requests[0].stop == ("END",)  # constrained: the grammar ends the line, the adapter adds no stops
    unconstrained = pl.Predict(
        "question -> answer", lm=lm, adapter=pl.CompletionAdapter(constrained=False), stop="STOP"
    )
    unconstrained(question="q2")
    assert lm.requests[1].stop[-1] == "STOP" and "\n\n" in lm.requests[1].stop


def test_json_strings_with_raw_newlines_still_parse():
    from promptless.adapters.parsing import parse_json_object
    from promptless.signature import ensure_signature

    text = '{ "new_instruction": "Answer True or False.\nThink first." }'
    parsed = parse_json_object(ensure_signature("current -> new_instruction"), text)
    assert parsed == {"new_instruction": "Answer True or False.\nThink first."}


def test_a_reply_cut_off_inside_its_free_text_field_keeps_the_text_so_far():
    """max_tokens ending a constrained JSON reply mid-string must not turn a short answer into a parse error."""
    import promptless as pl
    from promptless.adapters.parsing import parse_json_object
    from promptless.signature import ensure_signature
    from promptless.testing import ScriptedLM

    note = ensure_signature("question -> answer_kind")
    cut = '{ "answer_kind": "A person can find out how much income tax is paid on the'
    assert parse_json_object(note, cut) == {"answer_kind": "A person can find out how much income tax is paid on the"}
    lm = ScriptedLM([cut])
    assert pl.Predict("question -> answer_kind", lm=lm)(question="q").answer_kind.endswith("paid on the")
    assert len(lm.requests) == 1  # no retry spent on it
    assert parse_json_object(note, '{ "answer_kind": "a person"') == {"answer_kind": "a person"}
    typed = ensure_signature("question -> count: int")
    with pytest.raises(ParseError):  # a number cut short would be another number: not completed
        parse_json_object(typed, '{ "count": 12')
    two = ensure_signature("question -> answer_kind, category")
    with pytest.raises(ParseError, match="category"):  # cut before a later field: that field is missing
        parse_json_object(two, '{ "answer_kind": "a per')
    with pytest.raises(ParseError):  # cut inside a key: nothing to complete
        parse_json_object(note, '{ "answer_ki')
