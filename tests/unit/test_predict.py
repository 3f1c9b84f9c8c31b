"""Predict and ChainOfThought against the scripted test LM (promptless.testing.ScriptedLM, not a model)."""

import threading
from typing import Literal

import pytest

import promptless as pl
from promptless.testing import ScriptedLM


def test_typed_outputs_on_chat_and_completion_styles():
    for model_type in ("chat", "completion"):
        lm = ScriptedLM([{"answer": 7}], model_type=model_type)
        pred = pl.Predict("question -> answer: int", lm=lm)(question="3+4?")
        assert pred.answer == 7
        assert isinstance(
            lm.requests[0].prompt if model_type == "completion" else lm.requests[0].messages, (str, tuple)
        )


def test_missing_and_extra_inputs_are_named():
    predict = pl.Predict("context, question -> answer", lm=ScriptedLM())
    with pytest.raises(TypeError, match=r"missing input field\(s\) \['context'\].*received \['question'\]"):
        predict(question="q")
    with pytest.raises(TypeError, match=r"unexpected field\(s\) \['colour'\]"):
        predict(context="c", question="q", colour="red")


def test_optional_inputs_may_be_left_out():
    lm = ScriptedLM([{"answer": "ok"}])
    assert pl.Predict("question, hint: Optional[str] -> answer", lm=lm)(question="q").answer == "ok"


def test_parse_failure_retries_once_showing_the_error():
    lm = ScriptedLM(["I think it is good", {"sentiment": "positive"}])
    pred = pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)(sentence="fun")
    assert pred.sentiment == "positive"
    retry = lm.requests[1].messages
    assert retry[-2] == {"role": "assistant", "content": "I think it is good"}
    assert "could not be read" in retry[-1]["content"]


def test_parse_failure_after_retries_raises_with_raw_text():
    lm = ScriptedLM(default="no idea")
    with pl.context(max_parse_retries=0), pytest.raises(pl.ParseError) as info:
        pl.Predict("sentence -> sentiment: Literal['positive', 'negative']", lm=lm)(sentence="x")
    assert info.value.raw == "no idea" and len(lm.requests) == 1


def test_n_completions():
    lm = ScriptedLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    pred = pl.Predict("question -> answer", lm=lm, n=3, temperature=1.0)(question="q")
    assert pred.completions.answer == ["a", "b", "c"]
    assert lm.requests[0].n == 3


def test_chain_of_thought_adds_reasoning_first():
    lm = ScriptedLM([{"reasoning": "3 plus 4", "answer": 7}])
    cot = pl.ChainOfThought("question -> answer: int", lm=lm)
    pred = cot(question="3+4?")
    assert (pred.reasoning, pred.answer) == ("3 plus 4", 7)
    assert list(cot.predict.signature.output_fields) == ["reasoning", "answer"]


class TwoStep(pl.Module):
    def __init__(self):
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.ChainOfThought("query -> answer")

    def forward(self, question):
        return self.answer(query=self.rewrite(question=question).query)


def test_trace_and_usage_through_nested_modules():
    lm = ScriptedLM([{"query": "q2"}, {"reasoning": "r", "answer": "a"}])
    program = TwoStep()
    trace: list = []
    with pl.context(lm=lm, trace=trace):
        pred = program(question="q")
    assert [step.predictor for step in trace] == [program.rewrite, program.answer.predict]
    assert trace[1].inputs == {"query": "q2"}
    assert pred.usage.calls == 2
    assert pred.usage.prompt_tokens == sum(len(r.text.split()) for r in lm.requests)


def test_predictor_lm_overrides_configured_lm():
    configured, own = ScriptedLM(default={"answer": "configured"}), ScriptedLM(default={"answer": "own"})
    with pl.context(lm=configured):
        assert pl.Predict("question -> answer", lm=own)(question="q").answer == "own"
        assert pl.Predict("question -> answer")(question="q").answer == "configured"


def test_settings_follow_into_batch_threads_and_stay_isolated():
    lm = ScriptedLM(lambda request: {"answer": threading.current_thread().name})
    program = pl.Predict("question -> answer")
    examples = [pl.Example(question=str(i)).with_inputs("question") for i in range(8)]
    with pl.context(lm=lm):
        results = program.batch(examples, num_threads=4)
    assert len(lm.requests) == 8 and all(r is not None for r in results)
    assert pl.settings.current().lm is None and pl.settings.lm is None  # the block's settings did not leak


def test_batch_reports_failures_per_input():
    lm = ScriptedLM(lambda request: pl.LMUnavailable("down") if "bad" in request.text else {"answer": "ok"})
    examples = [{"question": "good"}, {"question": "bad"}]
    with pl.context(lm=lm):
        results, failed, errors = pl.Predict("question -> answer").batch(examples, return_failed_examples=True)
    assert results[0].answer == "ok" and results[1] is None
    assert failed == [{"question": "bad"}] and isinstance(errors[0], pl.LMUnavailable)


def test_inspect_prompt_does_not_call_the_lm():
    lm = ScriptedLM()
    prompt = pl.inspect_prompt(pl.Predict("sentence -> label: Literal['a', 'b']", lm=lm), sentence="hello")
    assert "Sentence: hello" in prompt and lm.requests == []


def test_inspect_history_shows_prompt_and_output(capsys):
    lm = ScriptedLM([{"answer": "42"}])
    pl.Predict("question -> answer", lm=lm)(question="meaning?")
    text = pl.inspect_history(1, lm=lm)
    assert "Question: meaning?" in text and '"answer": "42"' in text
    assert text in capsys.readouterr().out


def test_unknown_config_is_rejected():
    with pytest.raises(TypeError, match="unknown Predict config"):
        pl.Predict("q -> a", temprature=0.5)
    assert Literal


def test_inspect_prompt_takes_the_same_arguments_as_a_call():
    lm = ScriptedLM([{"answer": "x"}])
    predict = pl.Predict("question -> answer", lm=lm)
    demos = [pl.Example(question="2+2?", answer="4")]
    shown = pl.inspect_prompt(predict, question="3+3?", demos=demos, config={"temperature": 0.5})
    predict(question="3+3?", demos=demos, config={"temperature": 0.5})
    assert shown == lm.requests[0].text and "2+2?" in shown
