"""ProgramOfThought with the scripted test LM (promptless.testing.ScriptedLM, not a model) and a real sandbox."""

from __future__ import annotations

import sys

import pytest

import promptless as pl
from promptless.modules.program_of_thought import ProgramOfThought, ProgramOfThoughtError, strip_code_fences
from promptless.sandbox import Sandbox
from promptless.testing import ScriptedLM

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox relies on Linux")

SANDBOX = Sandbox(timeout_s=5)


def program(max_iters: int = 3) -> ProgramOfThought:
    return ProgramOfThought("question -> answer: int", max_iters=max_iters, sandbox=SANDBOX)


def test_success_on_the_first_try():
    lm = ScriptedLM(
        [
            {"reasoning": "multiply", "code": "apples = 3 * 4\nprint('apples', apples)\napples + 1"},
            {"reasoning": "the code says 13", "answer": 13},
        ]
    )
    pot = program()
    with pl.context(lm=lm):
        pred = pot(question="3 bags of 4 apples, plus one?")
    assert pred.answer == 13 and pred.code_output == "apples 12\nResult: 13"
    assert pred.code.startswith("apples = 3 * 4") and pred.reasoning == "the code says 13"
    assert len(lm.requests) == 2  # no repair needed
    final_prompt = lm.requests[1].text
    assert "apples 12" in final_prompt and "Result: 13" in final_prompt and "apples = 3 * 4" in final_prompt


def test_an_error_is_fed_back_and_fixed_on_retry():
    lm = ScriptedLM(
        [
            {"reasoning": "r", "code": "total = 10 / 0\ntotal"},
            {"reasoning": "avoid dividing by zero", "code": "total = 10 // 2\ntotal"},
            {"reasoning": "r", "answer": 5},
        ]
    )
    pot = program()
    trace: list = []
    with pl.context(lm=lm, trace=trace):
        pred = pot(question="10 split in 2?")
    assert pred.answer == 5 and pred.code == "total = 10 // 2\ntotal"
    repair_prompt = lm.requests[1].text
    assert "ZeroDivisionError: division by zero" in repair_prompt and "total = 10 / 0" in repair_prompt
    assert [step.predictor for step in trace] == [
        pot.code_generate.predict,
        pot.code_regenerate.predict,
        pot.generate_output.predict,
    ]
    assert trace[1].inputs["previous_code"] == "total = 10 / 0\ntotal"
    assert "ZeroDivisionError" in trace[1].inputs["error"]


def test_escape_attempts_are_errors_the_lm_sees():
    lm = ScriptedLM(
        [
            {"reasoning": "r", "code": "open('/etc/passwd').read()"},
            {"reasoning": "r", "code": "2 + 2"},
            {"reasoning": "r", "answer": 4},
        ]
    )
    with pl.context(lm=lm):
        assert program()(question="2+2?").answer == 4
    assert "is not allowed in the sandbox" in lm.requests[1].text


def test_all_tries_failing_raises_with_the_last_error():
    lm = ScriptedLM(default={"reasoning": "r", "code": "undefined_name + 1"})
    with pl.context(lm=lm), pytest.raises(ProgramOfThoughtError, match="NameError") as info:
        program(max_iters=2)(question="q")
    assert info.value.attempts == 2 and info.value.error.type == "NameError"
    assert info.value.code == "undefined_name + 1"
    assert len(lm.requests) == 2  # one attempt, one repair, no final answer


def test_code_fences_and_prose_are_stripped():
    lm = ScriptedLM(
        [
            {"reasoning": "r", "code": "Here is the code:\n```python\n    x = 6 * 7\n    x\n```\nThat computes it."},
            {"reasoning": "r", "answer": 42},
        ]
    )
    with pl.context(lm=lm):
        pred = program()(question="6*7?")
    assert pred.code == "x = 6 * 7\nx" and pred.code_output == "42"


def test_strip_code_fences_cases():
    assert strip_code_fences("```\nprint(1)\n```") == "print(1)"
    assert strip_code_fences("```py\na = 1\n```\n```python\nb = 2\n```") == "a = 1"
    assert strip_code_fences("plain = 1") == "plain = 1"
    assert strip_code_fences("```python\nunclosed = 1") == "unclosed = 1"
    assert strip_code_fences(None) == ""


def test_empty_code_is_repaired_not_run():
    lm = ScriptedLM(
        [{"reasoning": "r", "code": "```python\n```"}, {"reasoning": "r", "code": "1"}, {"reasoning": "r", "answer": 1}]
    )
    with pl.context(lm=lm):
        assert program()(question="q").answer == 1
    assert "no code" in lm.requests[1].text


def test_three_predictors_are_parameters_and_save_with_the_program(tmp_path):
    pot = program()
    assert [name for name, _ in pot.named_predictors()] == [
        "code_generate.predict",
        "code_regenerate.predict",
        "generate_output.predict",
    ]
    assert list(pot.code_regenerate.predict.signature.input_fields) == ["question", "previous_code", "error"]
    assert list(pot.generate_output.predict.signature.output_fields) == ["reasoning", "answer"]
    pot.code_generate.predict.demos = [pl.Example(question="1+1?", reasoning="add", code="1 + 1")]
    restored = program().load(pot.save(tmp_path / "pot.json"))
    assert restored.code_generate.predict.demos[0].code == "1 + 1"


def test_field_name_clashes_are_refused():
    with pytest.raises(pl.SignatureError, match="code"):
        ProgramOfThought("question, code -> answer")
