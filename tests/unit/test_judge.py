"""LM judges as metrics and as compilable programs, against the scripted test LM."""

import math
import re

import pytest

import promptless as pl
from promptless.adapters import ParseError
from promptless.evaluate.feedback import split_score
from promptless.evaluate.judge import (
    Judge,
    JudgeFieldError,
    RateAnswer,
    ScoreWithFeedback,
    SemanticF1,
    harmonic_f1,
)
from promptless.testing import ScriptedLM


def shown(request, label):
    """The value of a ``Label: value`` line in the request's last user message."""
    return re.findall(rf"^{label}: (.*)$", request.messages[-1]["content"], re.MULTILINE)[-1]


def fair_judge_lm(*, lenient=frozenset()):
    """A judge LM that says "correct" iff predicted == gold (case aside), or always for questions in ``lenient``."""

    def reply(request):
        gold, predicted = shown(request, "Gold answer"), shown(request, "Predicted answer")
        same = gold.lower() == predicted.lower() or shown(request, "Question") in lenient
        return {"verdict": "correct" if same else "incorrect", "feedback": f"{predicted} vs {gold}"}

    return ScriptedLM(reply)


def qa(n):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def task_lm(wrong=frozenset()):
    """The task program's LM: answers aN to qN, except 'wrong' for questions in ``wrong``."""

    def reply(request):
        question = shown(request, "Question")
        return {"answer": "wrong" if question in wrong else "a" + question[1:]}

    return ScriptedLM(reply)


# -- score and feedback ---------------------------------------------------------------------------
def test_judge_as_metric_returns_score_with_feedback_from_mapped_fields():
    lm = fair_judge_lm()
    judge = Judge(lm=lm)
    example = pl.Example(question="Capital of France?", answer="Paris").with_inputs("question")

    right = judge(example, pl.Prediction(answer="paris"))
    wrong = judge(example, pl.Prediction(answer="Lyon"), None)

    assert isinstance(right, ScoreWithFeedback) and float(right) == 1.0 and right.feedback == "paris vs Paris"
    assert float(wrong) == 0.0 and wrong.feedback == "Lyon vs Paris"
    first = lm.requests[0].messages[-1]["content"]
    assert first == "Question: Capital of France?\nGold answer: Paris\nPredicted answer: paris"
    assert len(lm.requests) == 2


def test_judge_as_program_returns_verdict_score_and_feedback():
    judge = Judge(lm=fair_judge_lm())
    judged = judge(question="q", gold_answer="Paris", predicted_answer="Lyon")
    assert isinstance(judged, pl.Prediction)
    assert (judged.verdict, judged.score, judged.feedback) == ("incorrect", 0.0, "Lyon vs Paris")
    assert judge(question="q", gold_answer="Paris", predicted_answer="PARIS").score == 1.0


def test_rating_scale_maps_to_unit_interval_and_threshold_decides_under_a_trace():
    ratings = iter([4, 1, 4, 2])
    lm = ScriptedLM(lambda request: {"rating": next(ratings), "feedback": "ok"})
    judge = Judge(RateAnswer, threshold=0.75, lm=lm)
    example = pl.Example(question="q", answer="a").with_inputs("question")
    assert float(judge(example, pl.Prediction(answer="a"))) == 0.75
    assert float(judge(example, pl.Prediction(answer="a"))) == 0.0
    assert judge(example, pl.Prediction(answer="a"), trace=[]) is True  # 0.75 >= 0.75
    assert judge(example, pl.Prediction(answer="a"), trace=[]) is False  # 0.25


def test_feedback_optimizers_get_feedback_even_with_a_trace():
    judge = Judge(lm=fair_judge_lm())
    example = pl.Example(question="q", answer="a").with_inputs("question")
    result = judge(example, pl.Prediction(answer="b"), [], "generate", [])
    assert isinstance(result, ScoreWithFeedback) and float(result) == 0.0 and result.feedback == "b vs a"
    keywords = judge(gold=example, pred=pl.Prediction(answer="A"), trace=[], pred_name="generate", pred_trace=[])
    assert split_score(keywords) == (1.0, "A vs a")


# -- inside Evaluate ------------------------------------------------------------------------------
def test_judge_is_a_metric_inside_evaluate():
    judge_lm = fair_judge_lm()
    program_lm = task_lm(wrong={"q1", "q3"})
    with pl.context(lm=program_lm):
        result = pl.Evaluate(devset=qa(4), metric=Judge(lm=judge_lm), num_threads=1)(pl.Predict("question -> answer"))
    assert result.scores == [1.0, 0.0, 1.0, 0.0] and result.score == 50.0 and result.errors == 0
    assert len(judge_lm.requests) == 4 and len(program_lm.requests) == 4
    assert sorted(shown(r, "Predicted answer") for r in judge_lm.requests) == ["a0", "a2", "wrong", "wrong"]


# -- unparsable judgements ------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", ["I think it is fine, really", {"verdict": "maybe", "feedback": "unsure"}])
def test_unparsable_judge_output_scores_zero_with_a_feedback_message(garbage):
    lm = ScriptedLM(default=garbage)
    judge = Judge(lm=lm)
    example = pl.Example(question="q", answer="a").with_inputs("question")

    result = judge(example, pl.Prediction(answer="a"))

    assert float(result) == 0.0 and "could not be parsed" in result.feedback and "scored 0" in result.feedback
    assert len(lm.requests) == 2  # the one parse retry, then a score of 0
    assert judge(example, pl.Prediction(answer="a"), trace=[]) is False
    with pl.context(lm=task_lm()):
        evaluation = pl.Evaluate(devset=qa(3), metric=judge, num_threads=1)(pl.Predict("question -> answer"))
    assert evaluation.errors == 0 and evaluation.scores == [0.0, 0.0, 0.0]


def test_unparsable_output_in_program_mode_raises_so_evaluating_the_judge_counts_it():
    judge = Judge(lm=ScriptedLM(default="no json here"))
    with pytest.raises(ParseError):
        judge(question="q", gold_answer="a", predicted_answer="a")
    devset = [
        pl.Example(question="q", gold_answer="a", predicted_answer="a", verdict="correct").with_inputs(
            "question", "gold_answer", "predicted_answer"
        )
    ]
    result = pl.Evaluate(devset=devset, metric=lambda e, p, t=None: e.verdict == p.verdict)(judge)
    assert result.errors == 1 and "ParseError" in result.error_details[0]


# -- field mapping ---------------------------------------------------------------------------------
def test_missing_example_field_names_the_field_the_argument_and_the_keys_received():
    judge = Judge(lm=fair_judge_lm())
    with pytest.raises(JudgeFieldError) as caught:
        judge(pl.Example(q="Capital?", a="Paris"), pl.Prediction(answer="Paris"))
    message = str(caught.value)
    assert "example.question" in message and "question_field='question'" in message and "['q', 'a']" in message


def test_missing_prediction_field_names_it_with_the_keys_received():
    judge = Judge(lm=fair_judge_lm())
    example = pl.Example(question="q", answer="a").with_inputs("question")
    with pytest.raises(JudgeFieldError, match=r"prediction\.answer.*answer_field='answer'.*\['response'\]"):
        judge(example, pl.Prediction(response="a"))
    with pytest.raises(JudgeFieldError, match="got None"):
        judge(example, None)


def test_field_mapping_arguments_and_the_custom_signature_convention():
    lm = fair_judge_lm()
    judge = Judge(question_field="query", answer_field="label", lm=lm)
    assert float(judge(pl.Example(query="Q?", label="x"), pl.Prediction(label="X"))) == 1.0
    assert shown(lm.requests[-1], "Question") == "Q?" and shown(lm.requests[-1], "Gold answer") == "x"

    custom = ScriptedLM([{"ok": True}])
    judge = Judge("question, gold_answer, predicted_answer, predicted_reasoning, context -> ok: bool", lm=custom)
    example = pl.Example(question="q", answer="a", context="c").with_inputs("question")
    assert float(judge(example, pl.Prediction(answer="a", reasoning="because"))) == 1.0
    sent = custom.requests[0].messages[-1]["content"]
    assert "Predicted reasoning: because" in sent and "Context: c" in sent


def test_a_mapping_error_inside_evaluate_is_an_error_with_the_message_not_a_crash():
    with pl.context(lm=task_lm()):
        result = pl.Evaluate(devset=qa(2), metric=Judge(answer_field="response", lm=fair_judge_lm()))(
            pl.Predict("question -> answer")
        )
    assert result.errors == 2 and all(
        "JudgeFieldError" in d and "'response'" in d for d in result.error_details.values()
    )


# -- SemanticF1 ------------------------------------------------------------------------------------
def test_harmonic_f1_known_values_and_clamping():
    assert harmonic_f1(1.0, 0.5) == pytest.approx(2 / 3)
    assert harmonic_f1(0.5, 0.25) == pytest.approx(1 / 3)
    assert harmonic_f1(0.0, 0.0) == 0.0
    assert harmonic_f1(1.5, 1.0) == 1.0 and harmonic_f1(-1.0, 0.5) == 0.0


def test_semantic_f1_metric_is_the_f1_of_the_judged_recall_and_precision():
    replies = iter([(0.5, 1.0), (0.25, 0.5), (0.5, 1.0)])

    def reply(request):
        recall, precision = next(replies)
        return {"reasoning": "key ideas", "recall": recall, "precision": precision}

    lm = ScriptedLM(reply)
    metric = SemanticF1(lm=lm)
    example = pl.Example(question="Why?", response="Because A and B.").with_inputs("question")
    prediction = pl.Prediction(response="Because A.")

    assert metric(example, prediction) == pytest.approx(2 / 3)
    assert metric(example, prediction) == pytest.approx(1 / 3)
    assert metric(example, prediction, trace=[]) is True  # 0.667 >= the default threshold 0.66
    content = lm.requests[0].messages[-1]["content"]
    assert content == "Question: Why?\nGround truth: Because A and B.\nSystem response: Because A."
    schema = lm.requests[0].schema["properties"]
    assert schema["recall"]["minimum"] == 0.0 and schema["recall"]["maximum"] == 1.0
    assert schema["precision"]["type"] == "number"


def test_semantic_f1_out_of_range_values_are_rejected_and_score_zero():
    lm = ScriptedLM(default={"reasoning": "r", "recall": 1.5, "precision": 1.0})
    metric = SemanticF1(answer_field="answer", lm=lm)
    example = pl.Example(question="q", answer="a").with_inputs("question")
    assert metric(example, pl.Prediction(answer="a")) == 0.0
    assert len(lm.requests) == 2  # rejected by the [0, 1] type, retried once
    result = metric(example, pl.Prediction(answer="a"), None, "answer")
    assert float(result) == 0.0 and "could not be parsed" in result.feedback


def test_decompositional_semantic_f1_asks_for_key_ideas_and_reports_them():
    reply = {
        "ground_truth_key_ideas": "A; B",
        "system_response_key_ideas": "A",
        "discussion": "B is missing",
        "recall": 0.5,
        "precision": 1.0,
    }
    metric = SemanticF1(decompositional=True, lm=ScriptedLM([reply]))
    assert list(metric.predict.signature.output_fields)[:3] == [
        "ground_truth_key_ideas",
        "system_response_key_ideas",
        "discussion",
    ]
    judged = metric(question="q", ground_truth="A and B", system_response="A")
    assert judged.discussion == "B is missing" and math.isclose(judged.score, 2 / 3)
    assert judged.feedback == "recall 0.50, precision 1.00"


# -- compiling the judge and compiling with it -----------------------------------------------------
def judgements():
    """Labelled judgements: even items pair the gold answer with itself (correct), odd ones with another's."""
    rows = []
    for i in range(6):
        predicted = f"a{i}" if i % 2 == 0 else f"a{i + 1}"
        rows.append(
            pl.Example(
                question=f"q{i}",
                gold_answer=f"a{i}",
                predicted_answer=predicted,
                verdict="correct" if i % 2 == 0 else "incorrect",
            ).with_inputs("question", "gold_answer", "predicted_answer")
        )
    return rows


def agrees(example, prediction, trace=None):
    return example.verdict == prediction.verdict


def test_judge_is_compilable_bootstrap_puts_demos_on_its_predictor(tmp_path):
    lm = fair_judge_lm(lenient={"q1"})  # wrongly lenient on q1: that trace must not become a demo
    student = Judge(lm=lm)
    compiled = pl.BootstrapFewShot(agrees, max_bootstrapped_demos=3, max_labeled_demos=0).compile(
        student, trainset=judgements()
    )
    assert [name for name, _ in compiled.named_predictors()] == ["predict"]
    assert student.predict.demos == []
    assert [d.toDict() for d in compiled.predict.demos] == [  # balanced over the verdicts, interleaved
        {"question": "q0", "gold_answer": "a0", "predicted_answer": "a0", "verdict": "correct", "feedback": "a0 vs a0"},
        {
            "question": "q3",
            "gold_answer": "a3",
            "predicted_answer": "a4",
            "verdict": "incorrect",
            "feedback": "a4 vs a3",
        },
        {"question": "q2", "gold_answer": "a2", "predicted_answer": "a2", "verdict": "correct", "feedback": "a2 vs a2"},
    ]
    before = len(lm.requests)
    example = pl.Example(question="q9", answer="a9").with_inputs("question")
    assert float(compiled(example, pl.Prediction(answer="a9"))) == 1.0  # still a metric after compiling
    assert len(lm.requests[before].messages) == 1 + 2 * 3 + 1  # the three demos are in the prompt

    reloaded = Judge(lm=lm).load(compiled.save(tmp_path / "judge.json"))
    assert reloaded.predict.demos == compiled.predict.demos


def test_compiling_a_task_program_with_the_judge_as_metric():
    judge_lm = fair_judge_lm()
    judge = Judge(lm=judge_lm)
    with pl.context(lm=task_lm(wrong={"q0", "q2"})):
        program = pl.BootstrapFewShot(judge, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
            pl.Predict("question -> answer"), trainset=qa(5)
        )
    assert [d.toDict() for d in program.demos] == [
        {"question": "q1", "answer": "a1"},
        {"question": "q3", "answer": "a3"},
    ]
    assert judge.predict.demos == []
    assert {shown(r, "Question") for r in judge_lm.requests} == {"q0", "q1", "q2", "q3"}


def test_the_judges_own_calls_stay_out_of_the_judged_programs_trace():
    program, judge, trace = pl.Predict("question -> answer"), Judge(lm=fair_judge_lm()), []
    with pl.context(lm=task_lm(), trace=trace):
        prediction = program(question="q0")
        assert judge(qa(1)[0], prediction, trace) is True
    assert [step.predictor for step in trace] == [program]


# -- arguments -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Judge(threshold=1.5), r"Judge\(threshold=\) must be a number in \[0, 1\], got 1.5"),
        (lambda: Judge(threshold="high"), r"got 'high'"),
        (lambda: Judge(threshold=True), r"got True"),
        (lambda: Judge(question_field=""), r"Judge\(question_field=\) must be a non-empty field name, got ''"),
        (lambda: Judge(answer_field=None), r"answer_field=\) .* got None"),
        (lambda: Judge("question, gold_answer, predicted_answer -> feedback"), "has no verdict output"),
        (lambda: Judge("question, gold_answer -> verdict: Literal['a', 'b']"), r"none of its choices \['a', 'b'\]"),
        (lambda: Judge("question, gold_answer -> rating: int"), r"'rating' of type 'int' cannot be read as a score"),
        (lambda: Judge("example, gold_answer -> ok: bool"), r"input field\(s\) \['example'\]"),
        (lambda: SemanticF1(threshold=-0.1), r"SemanticF1\(threshold=\) .* got -0.1"),
        (lambda: SemanticF1(decompositional="yes"), r"decompositional=\) must be True or False, got 'yes'"),
    ],
)
def test_bad_arguments_are_named_with_the_value_received(make, message):
    with pytest.raises(ValueError, match=message):
        make()
