"""GEPA (promptless.optimizers.reflective) and its pool arithmetic (pareto.py), against ScriptedLM only.

The scripted world: the task LM answers question ``qN`` right only when the
predictor's instruction contains the token ``<N>``; the reflection LM appends a
``<N>`` for every "expected aN" it reads in the feedback. So a proposal helps on
exactly the examples whose feedback reached the reflection prompt.
"""

import json
import random
import re

import pytest

import promptless as pl
from promptless.evaluate.feedback import FeedbackMetric, ScoreWithFeedback, split_score
from promptless.lm.errors import LMAuthError
from promptless.optimizers.pareto import (
    best_per_example,
    compose,
    find_merge,
    merge_subsample,
    pareto_members,
    remove_dominated,
    select_from_front,
    win_counts,
)
from promptless.optimizers.reflective import GEPA, Reflective
from promptless.testing import ScriptedLM


def qa(n, start=0):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(start, start + n)]


def task_reply(request):
    system = request.messages[0]["content"]
    number = re.findall(r"Question: q(\d+)", request.text)[-1]
    return {"answer": f"a{number}" if f"<{number}>" in system else "wrong"}


def current_instruction(request):
    return re.search(r"Current instruction: (.*)", request.messages[-1]["content"]).group(1)


def learning_reply(request):
    """Keep the current instruction's tokens and add one per example the feedback says was wrong."""
    known = re.findall(r"<\d+>", current_instruction(request))
    learned = [f"<{n}>" for n in re.findall(r"expected a(\d+)", request.text)]
    return {"new_instruction": "Answer the question. " + "".join(sorted(set(known + learned)))}


def feedback_metric(example, prediction, trace=None):
    right = example.answer == prediction.answer
    return ScoreWithFeedback(float(right), None if right else f"expected {example.answer}, got {prediction.answer}")


def is_proposal(request):
    return "new_instruction" in request.text


def compile_world(reflect=learning_reply, metric=feedback_metric, task=task_reply, trainset=None, **kwargs):
    """One GEPA compile of a single Predict in the scripted world; returns (program, task LM, reflection LM)."""
    task_lm, reflection_lm = ScriptedLM(task), ScriptedLM(reflect)
    kwargs.setdefault("num_threads", 1)
    kwargs.setdefault("reflection_lm", reflection_lm)
    with pl.context(lm=task_lm):
        program = GEPA(metric, **kwargs).compile(
            pl.Predict("question -> answer"), trainset=trainset or qa(30), valset=kwargs.pop("valset", None)
        )
    return program, task_lm, reflection_lm


# -- the pool's arithmetic ---------------------------------------------------------------------------------
def test_pareto_front_is_per_example_with_ties_and_drops_covered_candidates():
    scores = [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert best_per_example(scores) == [{0, 1}, {1}, {2}]  # a tie keeps both
    assert remove_dominated(best_per_example(scores), scores) == [{1}, {1}, {2}]  # 0 wins nothing 1 does not
    assert pareto_members(scores) == [1, 2] and win_counts(scores) == {1: 2, 2: 1}
    # identical score vectors (also all zero): the older candidate stays, and every example keeps one
    assert pareto_members([[0, 0], [0, 0]]) == [0]
    assert pareto_members([[0.5, 1], [0.5, 1], [1, 0]]) == [0, 2]
    # a candidate best on one example only survives even with a lower mean
    assert pareto_members([[1, 1, 1, 0], [0, 0, 0, 1]]) == [0, 1]


def test_parents_are_drawn_in_proportion_to_their_example_wins():
    scores = [[1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 0]]  # 2 is covered by 1: never drawn
    rng = random.Random(0)
    draws = [select_from_front(scores, rng) for _ in range(4000)]
    assert set(draws) == {0, 1}
    assert draws.count(1) / len(draws) == pytest.approx(0.75, abs=0.03)
    again = random.Random(0)
    assert [select_from_front(scores, again) for _ in range(50)] == draws[:50]  # seeded


def test_merge_takes_each_predictor_from_the_descendant_that_changed_it():
    ancestor = {"rewrite": "R0", "answer": "A0"}
    merged, sources = compose(ancestor, {"rewrite": "R1", "answer": "A0"}, {"rewrite": "R0", "answer": "A2"}, True)
    assert merged == {"rewrite": "R1", "answer": "A2"} and sources == ("a", "b")
    both = compose(ancestor, {"rewrite": "R1", "answer": "A0"}, {"rewrite": "R2", "answer": "A0"}, prefer_a=False)
    assert both[0] == {"rewrite": "R2", "answer": "A0"}  # changed by both: the better descendant's

    instructions = [ancestor, {"rewrite": "R1", "answer": "A0"}, {"rewrite": "R0", "answer": "A2"}]
    parents = [[], [0], [0]]
    scores = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    plan = find_merge([0, 1, 2], parents, instructions, scores, set(), random.Random(0))
    assert (plan.a, plan.b, plan.ancestor) == (1, 2, 0)  # 0 and 1 are not merged: 0 is 1's ancestor
    assert plan.instructions == {"rewrite": "R1", "answer": "A2"}
    assert find_merge([0, 1, 2], parents, instructions, scores, {(1, 2, 0)}, random.Random(0)) is None
    same_change = [ancestor, {"rewrite": "R1", "answer": "A0"}, {"rewrite": "R1", "answer": "A0"}]
    assert find_merge([1, 2], parents, same_change, scores, set(), random.Random(0)) is None

    picked = merge_subsample([1, 0, 0, 1, 0, 0], [0, 1, 0, 1, 0, 1], 3, random.Random(1))
    assert len(picked) == 3 == len(set(picked)) and 0 in picked  # 0 is where a alone wins
    assert any(i in picked for i in (1, 5)) and any(i in picked for i in (2, 3, 4))


def test_split_score_reads_every_metric_result():
    assert split_score(True) == (1.0, None) and split_score(0.25) == (0.25, None)
    with pytest.raises(TypeError, match="must return a number"):  # None is no score (MetricError, a TypeError)
        split_score(None)
    assert split_score(ScoreWithFeedback(0.0, "too long")) == (0.0, "too long")
    assert split_score({"score": 1, "feedback": " ok "}) == (1.0, "ok")
    assert split_score(pl.Prediction(score=0.5, feedback="half")) == (0.5, "half")
    assert float(ScoreWithFeedback(0.75, "x")) == 0.75 and ScoreWithFeedback(1, "y")["feedback"] == "y"
    with pytest.raises(TypeError, match="without a 'score'"):
        split_score({"feedback": "no score"})
    with pytest.raises(TypeError, match="must return a number"):
        split_score("yes")
    # wrapped, a dict-returning metric reads as a float, as Evaluate needs
    example, prediction = qa(1)[0], pl.Prediction(answer="a0")
    wrapped = FeedbackMetric(lambda ex, pred, trace=None: {"score": 0.5, "feedback": "half"})
    assert wrapped(example, prediction) == 0.5 and not wrapped.per_predictor
    assert wrapped.judge(example, prediction, [], "self", []) == (0.5, "half")
    result = pl.Evaluate(devset=qa(2), metric=wrapped, num_threads=1)(lambda question: prediction)
    assert result.score == 50.0 and result.errors == 0


# -- the search --------------------------------------------------------------------------------------------
def test_accepted_children_are_scored_in_full_and_the_pool_is_checkpointed(tmp_path):
    path = tmp_path / "gepa.json"
    student = pl.Predict("question -> answer")
    before = student.signature.instructions
    program, _, _ = compile_world(max_iterations=3, checkpoint=path, fallback_to_baseline=False)
    report = program.compile_report
    names = [c.name for c in report.candidates]
    assert names[0] == "baseline" and names[1] == "cand 1 (parent 0, mutated self)"
    assert len(names) == 4 and all(c.n == 30 for c in report.candidates)
    assert any("3 accepted, 0 rejected" in note for note in report.notes)
    assert any(note.startswith("Pareto front:") for note in report.notes)
    assert any("optimistic" in note for note in report.notes)
    state = json.loads(path.read_text())["values"]["value:state"]
    assert state["iteration"] == 3 and len(state["pool"]) == 4
    for k, candidate in enumerate(state["pool"][1:], 1):
        parent = state["pool"][candidate["parents"][0]]
        assert candidate["parents"][0] < k and len(candidate["scores"]) == 30
        learned = re.findall(r"<(\d+)>", candidate["instructions"]["self"])
        assert len(learned) == len(re.findall(r"<\d+>", parent["instructions"]["self"])) + 3  # one minibatch more
        assert candidate["scores"] == [float(str(i) in learned) for i in range(30)]  # its full-valset scores
    best = max(state["pool"], key=lambda c: sum(c["scores"]))
    assert program.signature.instructions == best["instructions"]["self"]
    assert student.signature.instructions == before  # the student is untouched


def test_a_proposal_no_better_on_the_minibatch_is_not_scored_on_the_valset():
    program, task_lm, _ = compile_world(lambda r: {"new_instruction": "Think harder."}, max_iterations=4)
    report = program.compile_report
    assert [c.name for c in report.candidates] == ["baseline"]
    assert any("0 accepted, 4 rejected" in note for note in report.notes)
    assert len(task_lm.requests) == 3 + 30 + 4 * (3 + 3)  # probe, baseline, parent + child minibatches only
    assert report.chosen == "baseline"


@pytest.mark.parametrize(
    "metric",
    [
        feedback_metric,
        lambda ex, pred, trace=None: {"score": float(ex.answer == pred.answer), "feedback": f"expected {ex.answer}"},
        lambda ex, pred, trace=None: pl.Prediction(
            score=float(ex.answer == pred.answer), feedback=f"expected {ex.answer}"
        ),
    ],
    ids=["ScoreWithFeedback", "dict", "Prediction"],
)
def test_metric_feedback_reaches_the_reflection_prompt(metric):
    program, _, reflection_lm = compile_world(metric=metric, max_iterations=1)
    prompt = reflection_lm.requests[0].messages[-1]["content"]
    shown = re.findall(r"expected (a\d+)", prompt)
    assert len(shown) == 3 and all(f"- question: q{a[1:]}" in prompt for a in shown)
    assert "- answer: wrong" in prompt
    assert program.compile_report.candidates[-1].score == pytest.approx(100 * 3 / 30)


def test_a_metric_with_pred_name_gives_feedback_per_predictor_and_plain_metrics_get_a_default():
    seen = []

    def per_predictor(example, prediction, trace=None, pred_name=None, pred_trace=None):
        right = float(example.answer == prediction.answer)
        if pred_name is None:
            return right
        seen.append((pred_name, [step.inputs for step in pred_trace], len(trace)))
        return {"score": right, "feedback": f"step {pred_name}: expected {example.answer}"}

    _, _, reflection_lm = compile_world(metric=per_predictor, max_iterations=1)
    assert "step self: expected a" in reflection_lm.requests[0].text
    assert [name for name, _, _ in seen] == ["self"] * 3 and all(n == 1 for _, _, n in seen)
    assert all(inputs[0]["question"].startswith("q") for _, inputs, _ in seen)

    def plain(example, prediction, trace=None):
        return example.answer == prediction.answer

    _, _, reflection_lm = compile_world(metric=plain, max_iterations=1)
    assert "This trajectory got a score of 0." in reflection_lm.requests[0].text


def test_proposals_go_to_the_reflection_lm_and_the_program_to_the_task_lm():
    _, task_lm, reflection_lm = compile_world(max_iterations=3)
    assert len(reflection_lm.requests) == 3 and all(is_proposal(r) for r in reflection_lm.requests)
    assert task_lm.requests and not any(is_proposal(r) for r in task_lm.requests)
    # without a reflection LM, proposals use the LM in force
    one_lm = ScriptedLM(lambda r: learning_reply(r) if is_proposal(r) else task_reply(r))
    with pl.context(lm=one_lm):
        GEPA(feedback_metric, max_iterations=2, num_threads=1).compile(
            pl.Predict("question -> answer"), trainset=qa(30)
        )
    assert sum(map(is_proposal, one_lm.requests)) == 2


def test_a_proposal_that_fails_to_parse_is_skipped_and_counted():
    replies = iter(["not json at all", "still not json", {"new_instruction": ""}])

    def flaky(request):
        return next(replies, None) or learning_reply(request)

    program, _, reflection_lm = compile_world(flaky, max_iterations=3, fallback_to_baseline=False)
    report = program.compile_report
    assert any("1 accepted" in note and "2 failed to parse or raised" in note for note in report.notes)
    assert len(reflection_lm.requests) == 2 + 1 + 1  # a parse retry, an empty reply, then a good one
    assert report.chosen.startswith("cand 1 ")


def test_a_fatal_error_from_the_reflection_lm_ends_the_compile():
    with pytest.raises(LMAuthError):
        compile_world(lambda r: LMAuthError("bad key"), max_iterations=2)


def test_a_perfect_minibatch_is_skipped_without_a_proposal():
    def always_right(request):
        return {"answer": "a" + re.findall(r"Question: q(\d+)", request.text)[-1]}

    program, _, reflection_lm = compile_world(task=always_right, max_iterations=3)
    assert reflection_lm.requests == []
    assert any("3 skipped" in note for note in program.compile_report.notes)


def test_a_budget_stop_returns_the_best_so_far():
    # probe 3 + baseline 30, then 3 + 1 + 3 + 30 per iteration: the second full eval runs out at call 100
    program, _, _ = compile_world(max_iterations=5, max_lm_calls=100, fallback_to_baseline=False)
    report = program.compile_report
    assert report.stopped_by_budget and "max_lm_calls=100" in report.stopped_by_budget
    assert report.lm_calls == 100
    assert report.chosen == "cand 1 (parent 0, mutated self)" == report.candidates[-1].name
    assert len(re.findall(r"<\d+>", program.signature.instructions)) == 3


@pytest.mark.parametrize(
    ("crash_on", "at_call", "repeated_task_calls"),
    [
        ("reflection", 3, 0),  # the third proposal: everything before it was checkpointed
        ("task", 74, 2),  # iteration 1's child minibatch: its finished first run and the crashed one run again
    ],
)
def test_a_crashed_compile_resumes_without_repeating_finished_steps(tmp_path, crash_on, at_call, repeated_task_calls):
    settings = {"max_iterations": 4, "fallback_to_baseline": False}
    clean, clean_task, clean_reflection = compile_world(**settings)

    calls = {"n": 0}

    def crashing(reply):
        def script(request):
            calls["n"] += 1
            if calls["n"] == at_call:
                raise KeyboardInterrupt
            return reply(request)

        return script

    path = tmp_path / "gepa.json"
    task, reflect = (
        (task_reply, crashing(learning_reply)) if crash_on == "reflection" else (crashing(task_reply), learning_reply)
    )
    first_task, first_reflection = ScriptedLM(task), ScriptedLM(reflect)
    with pytest.raises(KeyboardInterrupt), pl.context(lm=first_task):
        GEPA(feedback_metric, reflection_lm=first_reflection, checkpoint=path, num_threads=1, **settings).compile(
            pl.Predict("question -> answer"), trainset=qa(30)
        )
    resumed, second_task, second_reflection = compile_world(checkpoint=path, **settings)

    # no proposal is asked for twice, and only the interrupted evaluation is run again
    finished_proposals = len(first_reflection.requests) - (crash_on == "reflection")
    assert finished_proposals + len(second_reflection.requests) == len(clean_reflection.requests)
    assert len(first_task.requests) + len(second_task.requests) == len(clean_task.requests) + repeated_task_calls
    report, clean_report = resumed.compile_report, clean.compile_report
    assert report.resumed_steps > 0
    assert [(c.name, c.score) for c in report.candidates] == [(c.name, c.score) for c in clean_report.candidates]
    assert report.chosen == clean_report.chosen
    assert resumed.signature.instructions == clean.signature.instructions


@pytest.mark.parametrize("budget", [{"max_iterations": 5}, {"max_metric_calls": 150}], ids=["iterations", "runs"])
def test_the_forecast_matches_the_calls_made_when_every_proposal_is_accepted(budget):
    program, task_lm, reflection_lm = compile_world(**budget)
    report = program.compile_report
    assert any(" 0 rejected" in note for note in report.notes)
    forecast = report.forecast
    assert abs(forecast.lm_calls - report.total_calls) <= 0.05 * report.total_calls
    assert report.total_calls == len(task_lm.requests) + len(reflection_lm.requests)  # the probe is counted too
    assert forecast.phases["probe"] == 3
    expected = "upper bound" if "max_iterations" in budget else "up to "
    assert expected in forecast.summary()


def test_plan_without_compiling_and_the_auto_budget_mapping():
    optimizer = GEPA(feedback_metric, auto="light", reflection_lm=ScriptedLM(learning_reply))
    with pl.context(lm=ScriptedLM(task_reply)):
        plan = optimizer.plan(pl.Predict("question -> answer"), qa(30), qa(10, start=100))
    # DSPy's auto_budget: light = 6 candidates, 1 predictor -> 10 trials of 35 + 3 full evals + 30 bootstrap runs
    assert optimizer.metric_call_limit(1, 30, 10, True) == 10 + 30 + 10 * 35 + 3 * 10 == 420
    iterations = plan.proposer_calls
    assert iterations == -(-(420 - 10) // (6 + 10))  # all accepted: 6 minibatch runs + a full eval each
    assert plan.phases == {"probe": 3, "baseline": 10, "minibatches": 6 * iterations, "full evals": 10 * iterations}
    assert GEPA(feedback_metric, max_full_evals=2).metric_call_limit(1, 30, 10, True) == 80
    assert GEPA(feedback_metric, max_full_evals=2).metric_call_limit(1, 30, 30, False) == 60
    assert Reflective is GEPA


def test_merges_combine_sibling_changes_to_two_predictors(tmp_path):
    """Changing one predictor fixes q0 (rewrite) or q1 (answer); changing both in a line is rejected on the
    minibatch (q0, q1), so only two siblings of the student, merged, reach q3."""

    class Pipeline(pl.Module):
        def __init__(self):
            self.rewrite = pl.Predict("question -> query")
            self.answer = pl.Predict("query -> answer")

        def forward(self, question):
            return self.answer(query=self.rewrite(question=question).query)

    def task(request):
        system, last = request.messages[0]["content"], request.messages[-1]["content"]
        if last.startswith("Question:"):
            return {"query": last.split(": ")[1] + ("|R+" if "+" in system else "|R")}
        number, rewrite_changed = re.search(r"q(\d+)\|R(\+?)", last).groups()
        changed = (bool(rewrite_changed), "+" in system)
        right = {"0": (True, False), "1": (False, True), "2": (False, False), "3": (True, True)}[number] == changed
        return {"answer": f"a{number}" if right else "wrong"}

    task_lm, reflection_lm = ScriptedLM(task), ScriptedLM(lambda r: {"new_instruction": current_instruction(r) + " +"})
    path = tmp_path / "gepa.json"
    with pl.context(lm=task_lm):
        program = GEPA(
            feedback_metric,
            max_iterations=8,
            reflection_minibatch_size=2,
            reflection_lm=reflection_lm,
            num_threads=1,
            checkpoint=path,
        ).compile(Pipeline(), trainset=qa(2), valset=qa(4))
    report = program.compile_report
    assert any("merges: 1 tried, 1 accepted" in note for note in report.notes), report.summary()
    pool = json.loads(path.read_text())["values"]["value:state"]["pool"]
    merged = next(c for c in pool if "merge of" in c["name"])
    a, b = merged["parents"]
    assert pool[a]["parents"] == pool[b]["parents"] == [0]  # siblings, both children of the student
    seed = pool[0]["instructions"]
    assert merged["instructions"] == {"rewrite": seed["rewrite"] + " +", "answer": seed["answer"] + " +"}
    assert merged["scores"] == [0.0, 0.0, 0.0, 1.0]
    assert {pool[a]["name"], pool[b]["name"]} == {
        "cand 1 (parent 0, mutated rewrite)",
        "cand 2 (parent 0, mutated answer)",
    }
    assert merged["name"] == "cand 3 (merge of 1 and 2, ancestor 0)"


def test_the_same_seed_gives_the_same_search():
    first, _, _ = compile_world(max_iterations=4, seed=7)
    second, _, _ = compile_world(max_iterations=4, seed=7)
    summary = [(c.name, c.score) for c in first.compile_report.candidates]
    assert summary == [(c.name, c.score) for c in second.compile_report.candidates]
    assert first.signature.instructions == second.signature.instructions


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metric": None, "auto": "light"}, TypeError, "metric=\\).* None"),
        ({"auto": "extreme"}, ValueError, "auto=\\).*'extreme'"),
        ({"auto": "light", "max_metric_calls": 10}, ValueError, "at most one .*max_metric_calls"),
        ({}, ValueError, "needs a budget"),
        ({"auto": "light", "reflection_minibatch_size": 0}, ValueError, "reflection_minibatch_size=\\).* got 0"),
        ({"max_metric_calls": -5}, ValueError, "max_metric_calls=\\).* got -5"),
        ({"max_iterations": 1.5}, ValueError, "max_iterations=\\).* got 1.5"),
        ({"auto": "light", "max_lm_calls": -1}, ValueError, "max_lm_calls=\\).* got -1"),
        ({"auto": "light", "candidate_selection_strategy": "best"}, ValueError, "candidate_selection_strategy.*'best'"),
        ({"auto": "light", "max_merge_invocations": -1}, ValueError, "max_merge_invocations=\\).* got -1"),
        ({"auto": "light", "reflection_lm": ScriptedLM(), "prompt_model": ScriptedLM()}, ValueError, "not both"),
    ],
)
def test_bad_arguments_are_named_with_the_value_received(kwargs, error, message):
    kwargs = {"metric": feedback_metric, **kwargs}
    with pytest.raises(error, match=message):
        GEPA(kwargs.pop("metric"), **kwargs)


def test_bad_compile_inputs_fail_before_any_lm_call():
    lm = ScriptedLM(task_reply)
    optimizer = GEPA(feedback_metric, max_iterations=1, reflection_lm=lm)
    with pl.context(lm=lm):
        with pytest.raises(ValueError, match="teacher"):
            optimizer.compile(
                pl.Predict("question -> answer"), trainset=qa(3), teacher=pl.Predict("question -> answer")
            )
        with pytest.raises(ValueError, match="trainset is empty"):
            optimizer.compile(pl.Predict("question -> answer"), trainset=[])
        with pytest.raises(ValueError, match="no Predict modules"):
            optimizer.compile(pl.Module(), trainset=qa(3))
    assert lm.requests == []
