"""SIMBA's bookkeeping against the scripted test LM (promptless.testing.ScriptedLM, not a model).

The script: a sampled rollout (temperature 1.0, ``rollout_id`` set) answers question
``q<i>`` right when ``(i + rollout_id) % 3 == 0``; a plain call answers right exactly
when the instructions carry a rule written by the advisor; the advisor (recognised by
its ``module_advice`` output schema) writes a rule named after a hash of its prompt.
"""

import hashlib
import json
import random
import re
from collections import Counter

import pytest

import promptless as pl
from promptless.optimizers.simba import SIMBA
from promptless.optimizers.simba_steps import (
    Bucket,
    OfferFeedback,
    Rollout,
    StrategySkipped,
    append_a_demo,
    append_a_rule,
    minibatches,
    order_buckets,
    softmax_sample,
    top_k_plus_baseline,
)
from promptless.testing import ScriptedLM


def qa(n):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def exact(example, prediction, trace=None):
    return float(example.answer == prediction.answer)


def is_advice(request):
    return "module_advice" in (request.schema or {}).get("properties", {})


def question_of(request):
    return int(re.findall(r"q(\d+)", request.messages[-1]["content"])[-1])


def rule_for(request):
    return "rule-" + hashlib.sha256(request.text.encode()).hexdigest()[:6]


def answer(request, right_when=lambda i, rollout_id: (i + rollout_id) % 3 == 0):
    if is_advice(request):
        return {"discussion": "the worse run guessed", "module_advice": {"self": rule_for(request)}}
    i = question_of(request)
    if request.rollout_id is not None:
        right = right_when(i, request.rollout_id)
    else:
        right = "rule-" in request.messages[0]["content"]
    return {"answer": f"a{i}" if right else "wrong"}


def advice_requests(lm):
    return [r for r in lm.requests if is_advice(r)]


def advised_question(request):
    """The question of the example a rule was asked about (from the advisor's program_inputs field)."""
    return re.search(r'"question": "(q\d+)"', request.messages[-1]["content"]).group(1)


def compile_simba(lm, *, train=10, val=10, student=None, **settings):
    settings = {"bsize": 5, "num_candidates": 3, "max_steps": 2, "max_demos": 0, "num_threads": 1, **settings}
    with pl.context(lm=lm):
        return SIMBA(exact, **settings).compile(
            student or pl.Predict("question -> answer"), trainset=qa(train), valset=qa(val) if val else None
        )


# -- buckets ------------------------------------------------------------------------------------------
def rollout(example, score, rid=1):
    return Rollout(example, 0, rid, score, [], {"answer": "x"})


def bucket(example, scores):
    return Bucket(example, scores, rollout(example, max(scores)), rollout(example, min(scores)))


def test_buckets_are_ordered_by_spread_then_max_to_mean_gap():
    buckets = [
        bucket(0, [1.0, 1.0, 1.0]),  # no spread, all right
        bucket(1, [0.0, 0.0, 0.0]),  # no spread, all wrong
        bucket(2, [1.0, 1.0, 0.0]),  # spread 1, max-mean 1/3
        bucket(3, [1.0, 0.0, 0.0]),  # spread 1, max-mean 2/3: a rare success, most informative
        bucket(4, [0.5, 0.0, 0.0]),  # spread 0.5
    ]
    assert [b.example for b in order_buckets(buckets)] == [3, 2, 4, 0, 1]
    assert [b.example for b in order_buckets([bucket(7, [1.0, 0.0]), bucket(5, [0.0, 1.0])])] == [7, 5]  # ties: order


def test_the_most_variable_examples_get_the_rules_first():
    # Rollout ids of step 1 are 1, 2, 3. q2 is right once (rid 1), q3 twice (rid 1, 2), q0 always, q1 never.
    outcomes = {0: {1, 2, 3}, 1: set(), 2: {1}, 3: {1, 2}}
    lm = ScriptedLM(lambda r: answer(r, right_when=lambda i, rid: rid in outcomes[i]))
    program = compile_simba(lm, train=4, val=4, bsize=4, max_steps=1)
    assert [advised_question(r) for r in advice_requests(lm)] == ["q2", "q3", "q0"]
    rollouts = [r for r in lm.requests if r.rollout_id is not None]
    assert len(rollouts) == 4 * 3 and {r.temperature for r in rollouts} == {1.0}
    for i in range(4):  # every example was sampled under three distinct rollout ids
        assert sorted(r.rollout_id for r in rollouts if question_of(r) == i) == [1, 2, 3]
    # q0: every run right, none above the 90th percentile (1): only the worse side is shown
    q0_advice = advice_requests(lm)[2].messages[-1]["content"]
    assert "Better program trajectory: N/A" in q0_advice
    notes = " ".join(program.compile_report.notes)
    assert "spread max 1.00" in notes and "2 examples varied" in notes and "3 rule applied" in notes


# -- strategies ---------------------------------------------------------------------------------------
def traced(example, score, question, reply):
    step = {"module": "self", "inputs": {"question": question}, "outputs": {"answer": reply}}
    return Rollout(example, 0, 1, score, [step], {"answer": reply})


def test_a_demo_comes_from_the_best_trajectory_and_the_oldest_demo_goes():
    program = pl.Predict("question -> answer")
    program.demos = [pl.Example(question="old", answer="o"), pl.Example(question="older?", answer="p")]
    b = Bucket(0, [1.0, 0.0], traced(0, 1.0, "q9", "a9"), traced(0, 0.0, "q9", "wrong"))
    assert append_a_demo(program, b, max_demos=2, maxlen=None, p10=0.0) == "demo for self"
    assert [d.toDict() for d in program.demos] == [
        {"question": "older?", "answer": "p"},
        {"question": "q9", "answer": "a9"},
    ]
    long = Bucket(0, [1.0], traced(0, 1.0, "x" * 50, "a"), traced(0, 1.0, "x" * 50, "a"))
    append_a_demo(program, long, max_demos=2, maxlen=10, p10=0.0)
    assert program.demos[-1].question.startswith("x" * 10 + "\n") and "TRUNCATED" in program.demos[-1].question
    with pytest.raises(StrategySkipped, match="10th percentile"):
        append_a_demo(program, b, max_demos=2, maxlen=None, p10=2.0)
    all_wrong = Bucket(0, [0.0, 0.0], traced(0, 0.0, "q9", "x"), traced(0, 0.0, "q9", "y"))
    with pytest.raises(StrategySkipped, match="nothing good to copy"):  # a demo would teach the failure
        append_a_demo(program, all_wrong, max_demos=2, maxlen=None, p10=0.0)
    raised = Rollout(0, 0, 1, 1.0, [], None, error="ValueError: boom")
    with pytest.raises(StrategySkipped, match="raised"):
        append_a_demo(
            program, Bucket(0, [1.0, 0.0], raised, traced(0, 0.0, "q9", "x")), max_demos=2, maxlen=None, p10=0
        )


def test_compiled_demos_are_best_trajectories_and_respect_max_demos(tmp_path):
    student = pl.Predict("question -> answer")
    student.demos = [pl.Example(question="q99", answer="a99")]
    path = tmp_path / "ck.json"
    compile_simba(ScriptedLM(answer), student=student, max_demos=1, max_steps=3, checkpoint=path)
    values = json.loads(path.read_text())["values"]
    built = [c for step in range(3) for c in values[f"value:step {step}"]["candidates"]]
    demo_built = [c for c in built if " demo " in c["name"]]
    assert demo_built, "seed 0 draws the demo strategy at least once"
    for candidate in built:
        assert len(candidate["state"]["predictors"]["self"]["demos"]) <= 1
    for candidate in demo_built:  # the old demo made room for the best (right) trajectory
        (demo,) = candidate["state"]["predictors"]["self"]["demos"]
        assert demo["question"] != "q99" and demo["answer"] == "a" + demo["question"][1:]
    assert student.demos == [pl.Example(question="q99", answer="a99")]  # the student is untouched


def advisor_with(reply):
    lm = ScriptedLM(default=reply)
    return pl.Predict(OfferFeedback, lm=lm), lm


def contrast():
    return Bucket(0, [1.0, 0.0], traced(0, 1.0, "q1", "a1"), traced(0, 0.0, "q1", "wrong"))


class Pipeline(pl.Module):
    def __init__(self):
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.Predict("query -> answer")

    def forward(self, question):
        return self.answer(query=self.rewrite(question=question).query)


def test_a_rule_is_appended_to_the_instructions_of_each_advised_module():
    program = Pipeline()
    before = program.answer.signature.instructions
    advisor, lm = advisor_with({"discussion": "d", "module_advice": {"answer": "Copy the key.", "nope": "x"}})
    kwargs = {"advisor": advisor, "program_code": "code", "example": qa(2)[1], "p10": 0.0, "p90": 1.0}
    assert append_a_rule(program, contrast(), **kwargs) == "rule for answer"
    assert program.answer.signature.instructions == before + "\n\nCopy the key."
    assert program.rewrite.signature.instructions == Pipeline().rewrite.signature.instructions
    prompt = lm.requests[0].messages[-1]["content"]
    assert '"question": "q1"' in prompt and '"answer": "a1"' in prompt  # the example and the better run
    assert "Module names: [1] rewrite\n[2] answer" in prompt
    unknown, _ = advisor_with({"discussion": "d", "module_advice": {"nope": "x"}})
    with pytest.raises(StrategySkipped, match="names no module"):
        append_a_rule(program, contrast(), **{**kwargs, "advisor": unknown})
    garbage, _ = advisor_with("garbage")
    with pytest.raises(pl.ParseError):
        append_a_rule(program, contrast(), **{**kwargs, "advisor": garbage})
    single = pl.Predict("question -> answer")  # one module: advice under any one key is meant for it
    one, _ = advisor_with({"discussion": "d", "module_advice": {"predictor": "Be brief."}})
    append_a_rule(single, contrast(), **{**kwargs, "advisor": one})
    assert single.signature.instructions.endswith("\n\nBe brief.")


def test_garbage_advice_never_crashes_a_compile():
    lm = ScriptedLM(lambda r: "garbage" if is_advice(r) else answer(r))
    student = pl.Predict("question -> answer")
    program = compile_simba(lm, student=student, max_steps=1)
    report = program.compile_report
    assert len(advice_requests(lm)) == 5 * 2  # every bucket tried, each with one parse retry
    assert "5 rule proposal(s) failed" in " ".join(report.notes)
    assert report.chosen == "baseline" and [c.name for c in report.candidates] == ["baseline"]
    assert program is not student and not hasattr(student, "compile_report")  # the baseline returned is a copy
    assert advice_requests(lm)[0].messages[0]["content"].startswith("Two runs of the same LM program")
    assert "\n    " not in advice_requests(lm)[0].messages[0]["content"]  # the docstring's indentation is gone


def test_rules_use_the_program_s_own_lm_when_none_is_in_force():
    lm = ScriptedLM(answer)
    program = SIMBA(exact, bsize=5, num_candidates=2, max_steps=1, max_demos=0).compile(
        pl.Predict("question -> answer", lm=lm), trainset=qa(5)
    )
    assert len(advice_requests(lm)) == 2 and "rule-" in program.signature.instructions


def test_rules_are_written_by_the_prompt_model():
    task_lm = ScriptedLM(answer)
    prompt_lm = ScriptedLM(answer)
    with pl.context(lm=task_lm):
        program = SIMBA(exact, bsize=5, num_candidates=2, max_steps=1, max_demos=0, prompt_model=prompt_lm).compile(
            pl.Predict("question -> answer"), trainset=qa(5)
        )
    assert len(prompt_lm.requests) == 2 and all(is_advice(r) for r in prompt_lm.requests)
    assert not advice_requests(task_lm)
    assert "rule-" in program.signature.instructions
    assert any("optimistic" in note for note in program.compile_report.notes)  # no valset: scored on the trainset


# -- sampling -----------------------------------------------------------------------------------------
def test_softmax_sampling_is_deterministic_for_a_seed_and_follows_the_temperature():
    averages = [0.0, 0.9, 0.5, 0.1]

    def draws(seed, temperature, n=2000):
        rng = random.Random(seed)
        return [softmax_sample(rng, [0, 1, 2, 3], averages, temperature) for _ in range(n)]

    assert draws(7, 0.2) == draws(7, 0.2) and draws(7, 0.2) != draws(8, 0.2)
    cold, hot = draws(1, 0.05), draws(1, 100.0)
    assert cold.count(1) > 0.99 * len(cold)  # nearly greedy
    assert all(0.2 < hot.count(i) / len(hot) < 0.3 for i in range(4))  # nearly uniform
    expected = [pow(2.718281828, a / 0.2) for a in averages]  # the softmax itself
    share = draws(2, 0.2, 20000).count(1) / 20000
    assert share == pytest.approx(expected[1] / sum(expected), abs=0.02)
    assert top_k_plus_baseline([0.0, 0.9, 0.5, 0.1], 2) == [1, 0]  # the baseline always stays in the race
    assert top_k_plus_baseline([0.3, 0.9, 0.5], 2) == [1, 0]  # the second best makes way for it
    assert top_k_plus_baseline([0.9, 0.5, 0.1], 2) == [0, 1]


def test_minibatches_are_seeded_windows_reshuffled_when_used_up():
    batches = minibatches(10, 4, 4, seed=3)
    assert batches == minibatches(10, 4, 4, seed=3) and batches != minibatches(10, 4, 4, seed=4)
    assert all(len(b) == 4 for b in batches)
    assert len(set(batches[0] + batches[1])) == 8  # one shuffle: no repeats until it is used up
    assert minibatches(10, 4, 2, seed=3) == batches[:2]  # more steps only add batches


def test_a_compile_is_deterministic_for_a_seed_whatever_the_threads():
    def run(seed, threads):
        lm = ScriptedLM(answer)
        program = compile_simba(lm, seed=seed, num_threads=threads, max_demos=2)
        rollouts = sorted((question_of(r), r.rollout_id, r.messages[0]["content"]) for r in lm.requests if r.rollout_id)
        return program.dump_state(), program.compile_report.chosen, rollouts

    first = run(0, 1)
    assert run(0, 1) == first and run(0, 4) == first
    assert run(5, 1)[2] != first[2]  # another seed draws other minibatches


# -- budget, resume, forecast -------------------------------------------------------------------------
def test_a_budget_too_small_for_another_step_stops_early_and_keeps_the_best():
    # probe 3 + baseline 10 = 13; a step is ~ 2 x 5 x 3 runs + 3 rules = 33; the finals 3 x 10 = 30
    lm = ScriptedLM(answer)
    program = compile_simba(lm, max_steps=5, max_lm_calls=13 + 33 + 30 + 20)
    report = program.compile_report
    assert report.stopped_by_budget and "before step 2 of 5" in report.stopped_by_budget
    assert len(lm.requests) == 13 + 33 + 30 <= 96
    assert report.chosen.startswith("s1.") and report.significant  # a rule from step 1, scored in full
    assert not [note for note in report.notes if note.startswith("step 2:")]


class CheckTwice(pl.Module):
    """Asks twice for questions the probe never sees (q3 and up): the forecast underestimates it."""

    def __init__(self):
        self.answer = pl.Predict("question -> answer")

    def forward(self, question):
        out = self.answer(question=question)
        return self.answer(question=question) if int(question[1:]) >= 3 else out


def test_a_budget_spent_mid_search_returns_the_best_fully_scored_candidate():
    lm = ScriptedLM(answer)
    settings = {"train": 8, "val": 8, "bsize": 4, "num_candidates": 2, "max_steps": 1, "max_lm_calls": 57}
    program = compile_simba(lm, student=CheckTwice(), **settings)
    report = program.compile_report
    assert report.stopped_by_budget and "max_lm_calls=57" in report.stopped_by_budget
    assert len(lm.requests) == report.lm_calls == 57
    full = [c for c in report.candidates if c.name != "baseline"]
    assert len(full) == 1 and full[0].n == 8  # the second finalist was cut off by the budget
    assert report.chosen == full[0].name and "rule-" in program.answer.signature.instructions


def test_resume_after_a_crash_repeats_no_proposal_or_evaluation(tmp_path):
    full_lm = ScriptedLM(answer)
    expected = compile_simba(full_lm, max_steps=2)
    total = len(full_lm.requests)
    advice_at = [i for i, r in enumerate(full_lm.requests) if is_advice(r)]
    crash_at = advice_at[4] + 1  # the second rule proposal of step 2: step 1 and one proposal are done
    calls = {"n": 0}

    def crashing(request):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt
        return answer(request)

    path = tmp_path / "simba.json"
    first = ScriptedLM(crashing)
    with pytest.raises(KeyboardInterrupt):
        compile_simba(first, max_steps=2, checkpoint=path)
    second = ScriptedLM(answer)
    resumed = compile_simba(second, max_steps=2, checkpoint=path)
    assert len(first.requests) == crash_at and len(first.requests) + len(second.requests) == total + 1
    # Together the two runs asked exactly what the uninterrupted run asked (plus the call that crashed, once more)
    both = Counter(r.text for r in first.requests[:-1]) + Counter(r.text for r in second.requests)
    assert both == Counter(r.text for r in full_lm.requests)
    assert len(advice_requests(second)) == 2  # only step 2's unfinished proposals
    assert resumed.dump_state() == expected.dump_state()
    assert resumed.compile_report.chosen == expected.compile_report.chosen
    assert resumed.compile_report.resumed_steps > 0


def test_a_larger_max_steps_continues_from_the_checkpoint(tmp_path):
    path = tmp_path / "simba.json"
    compile_simba(ScriptedLM(answer), max_steps=1, checkpoint=path)
    lm = ScriptedLM(answer)
    compile_simba(lm, max_steps=2, checkpoint=path)
    assert len(advice_requests(lm)) == 3
    assert {r.rollout_id for r in lm.requests if r.rollout_id is not None} == {4, 5, 6}  # step 2's samples only


def test_the_forecast_matches_the_calls_made():
    lm = ScriptedLM(answer)
    program = compile_simba(lm, train=12, val=9, bsize=4, num_candidates=3, max_steps=3)
    report = program.compile_report
    plan = report.forecast
    assert plan.phases == {"probe": 3, "baseline": 9, "rollouts": 36, "minibatch evals": 36, "final evals": 27}
    assert plan.proposer_calls == 9
    assert abs(plan.lm_calls - report.total_calls) <= 0.05 * report.total_calls
    assert plan.lm_calls == report.total_calls == len(lm.requests) == 120
    with pl.context(lm=ScriptedLM(answer)):
        alone = SIMBA(exact, bsize=4, num_candidates=3, max_steps=3, max_demos=0).plan(
            pl.Predict("question -> answer"), qa(12), qa(9)
        )
    assert alone.lm_calls == plan.lm_calls


# -- arguments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metric": "exact"}, TypeError, r"metric=.*'exact'"),
        ({"bsize": 0}, ValueError, r"bsize=\) must be an int >= 1, got 0"),
        ({"bsize": "8"}, ValueError, r"bsize=.*'8'"),
        ({"num_candidates": 0}, ValueError, r"num_candidates=.*got 0"),
        ({"max_steps": -1}, ValueError, r"max_steps=.*got -1"),
        ({"max_demos": 1.5}, ValueError, r"max_demos=.*got 1.5"),
        ({"temperature_for_sampling": 0}, ValueError, r"temperature_for_sampling=.*> 0, got 0"),
        ({"temperature_for_candidates": -1.0}, ValueError, r"temperature_for_candidates=.*got -1.0"),
        ({"num_threads": 0}, ValueError, r"num_threads=.*got 0"),
        ({"max_lm_calls": -5}, ValueError, r"max_lm_calls=.*got -5"),
        ({"seed": True}, ValueError, r"seed=.*got True"),
        ({"prompt_model": "openai/gpt"}, TypeError, r"prompt_model=.*'openai/gpt'"),
    ],
)
def test_bad_arguments_are_named_with_the_value_received(kwargs, error, match):
    with pytest.raises(error, match=match):
        SIMBA(**{"metric": exact, **kwargs})


def test_bad_compile_inputs_fail_before_any_lm_call():
    lm = ScriptedLM(answer)
    with pl.context(lm=lm):
        with pytest.raises(ValueError, match="trainset is empty"):
            SIMBA(exact).compile(pl.Predict("question -> answer"), trainset=[])
        with pytest.raises(ValueError, match="at least one Predict"):
            SIMBA(exact).compile(pl.Module(), trainset=qa(3))
        with pytest.raises(ValueError, match=r"valset\[0\] has no inputs"):
            SIMBA(exact).compile(pl.Predict("question -> answer"), trainset=qa(3), valset=[pl.Example(question="q")])
    assert lm.requests == []
