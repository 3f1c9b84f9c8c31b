"""Few-shot optimizers' bookkeeping, against the scripted test LM (promptless.testing.ScriptedLM)."""

import re

import pytest

import promptless as pl
from promptless.optimizers.bootstrap import TooManyErrors
from promptless.testing import ScriptedLM


def qa(n):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def last_question(request):
    return re.findall(r"Question: (q\d+)", request.text)[-1]


def echo_lm(**kwargs):
    """Answers `aN` to question `qN` (right), except where `wrong` says otherwise."""
    wrong = kwargs.pop("wrong", set())
    return ScriptedLM(lambda r: {"answer": "x" if last_question(r) in wrong else "a" + last_question(r)[1:]}, **kwargs)


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


class Pipeline(pl.Module):
    def __init__(self):
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.Predict("query -> answer")

    def forward(self, question):
        return self.answer(query=self.rewrite(question=question).query)


def test_labeled_few_shot_is_seeded_and_leaves_the_student_alone():
    student = pl.Predict("question -> answer")
    a = pl.LabeledFewShot(k=3).compile(student, trainset=qa(10))
    b = pl.LabeledFewShot(k=3).compile(student, trainset=qa(10))
    assert a.demos == b.demos and len(a.demos) == 3 and student.demos == []
    assert pl.LabeledFewShot(k=3, sample=False).compile(student, trainset=qa(10)).demos == qa(10)[:3]


def test_bootstrap_keeps_only_passing_traces():
    lm = echo_lm(wrong={"q1", "q3"})
    with pl.context(lm=lm):
        program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=3, max_labeled_demos=0).compile(
            pl.Predict("question -> answer"), trainset=qa(6)
        )
    assert [d.question for d in program.demos] == ["q0", "q2", "q4"]
    assert all(d.answer == "a" + d.question[1:] for d in program.demos)
    assert program.compile_report.lm_calls >= 5


def test_bootstrap_gives_each_stage_its_own_demos_without_intermediate_labels():
    def reply(request):
        if "Query:" in request.messages[-1]["content"]:  # second stage: answer from the query
            return {"answer": "a" + re.findall(r"Query: find (q\d+)", request.text)[-1][1:]}
        return {"query": f"find {last_question(request)}"}

    with pl.context(lm=ScriptedLM(reply)):
        program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0).compile(
            Pipeline(), trainset=qa(4)
        )
    assert [d.toDict() for d in program.rewrite.demos] == [
        {"question": "q0", "query": "find q0"},
        {"question": "q1", "query": "find q1"},
    ]
    assert [d.toDict() for d in program.answer.demos] == [
        {"query": "find q0", "answer": "a0"},
        {"query": "find q1", "answer": "a1"},
    ]


def test_threshold_semantics():
    def half(example, prediction, trace=None):
        return 0.5

    with pl.context(lm=echo_lm()):
        loose = pl.BootstrapFewShot(half, max_labeled_demos=0).compile(pl.Predict("question -> answer"), trainset=qa(3))
        strict = pl.BootstrapFewShot(half, metric_threshold=0.6, max_labeled_demos=0).compile(
            pl.Predict("question -> answer"), trainset=qa(3)
        )
    assert len(loose.demos) == 3 and strict.demos == []


def test_example_is_excluded_from_its_own_teacher_demos():
    lm = echo_lm()
    with pl.context(lm=lm):
        pl.BootstrapFewShot(exact, max_bootstrapped_demos=4, max_labeled_demos=4).compile(
            pl.Predict("question -> answer"), trainset=qa(4)
        )
    for request in lm.requests:
        own = last_question(request)
        assert request.text.count(f"Question: {own}\n") + request.text.endswith(f"Question: {own}") == 1
        assert len(request.messages) == 1 + 2 * 3 + 1  # the three other examples as demos


def test_later_rounds_resample_with_fresh_rollout_ids():
    failing_once = {"q0"}

    def reply(request):
        q = last_question(request)
        if q in failing_once and request.temperature == 0.0:
            return {"answer": "wrong"}
        return {"answer": "a" + q[1:]}

    lm = ScriptedLM(reply)
    with pl.context(lm=lm):
        program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2, max_labeled_demos=0, max_rounds=2).compile(
            pl.Predict("question -> answer"), trainset=qa(2)
        )
    assert sorted(d.question for d in program.demos) == ["q0", "q1"]
    retry = [r for r in lm.requests if r.temperature == 1.0]
    assert len(retry) == 1 and retry[0].rollout_id == 1 and last_question(retry[0]) == "q0"


def test_errors_count_against_the_budget_and_the_run_goes_on():
    lm = ScriptedLM(lambda r: "garbage" if last_question(r) in {"q0", "q1"} else {"answer": "a" + last_question(r)[1:]})
    with pl.context(lm=lm, max_parse_retries=0):
        program = pl.BootstrapFewShot(exact, max_labeled_demos=0, max_bootstrapped_demos=2).compile(
            pl.Predict("question -> answer"), trainset=qa(4)
        )
        assert [d.question for d in program.demos] == ["q2", "q3"]
        with pytest.raises(TooManyErrors, match="max_errors=1"):
            pl.BootstrapFewShot(exact, max_labeled_demos=0, max_errors=1).compile(
                pl.Predict("question -> answer"), trainset=qa(4)
            )


@pytest.mark.parametrize("error", [pl.LMAuthError("401"), pl.LMUnavailable("down after retries")])
def test_errors_that_will_not_go_away_stop_the_run(error):
    lm = ScriptedLM(default=error)
    with pl.context(lm=lm), pytest.raises(type(error)):
        pl.BootstrapFewShot(exact, max_labeled_demos=0, num_threads=1, holdout=0).compile(
            pl.Predict("question -> answer"), trainset=qa(20)
        )
    assert len(lm.requests) == 1


def test_threads_do_not_change_the_result():
    results = []
    for threads in (1, 4):
        with pl.context(lm=echo_lm(wrong={"q2", "q5"})):
            program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=4, num_threads=threads).compile(
                pl.Predict("question -> answer"), trainset=qa(12)
            )
        results.append(program.demos)
    assert results[0] == results[1]


def test_teacher_runs_on_its_own_lm():
    student_lm, teacher_lm = echo_lm(), echo_lm()
    student = pl.Predict("question -> answer", lm=None)
    with pl.context(lm=student_lm):
        pl.BootstrapFewShot(exact, max_labeled_demos=0, teacher_settings={"lm": teacher_lm}).compile(
            student, trainset=qa(3)
        )
    assert student_lm.requests == [] and len(teacher_lm.requests) == 3


def test_compiled_multi_stage_program_round_trips(tmp_path):
    def reply(request):
        if "Query:" in request.messages[-1]["content"]:
            return {"answer": "a" + re.findall(r"Query: find (q\d+)", request.text)[-1][1:]}
        return {"query": f"find {last_question(request)}"}

    with pl.context(lm=ScriptedLM(reply)):
        program = pl.BootstrapFewShot(exact, max_bootstrapped_demos=2).compile(Pipeline(), trainset=qa(4))
    program.save(tmp_path / "p.json")
    loaded = Pipeline().load(tmp_path / "p.json")
    assert loaded.dump_state() == program.dump_state()
    lm_a, lm_b = ScriptedLM(reply), ScriptedLM(reply)
    with pl.context(lm=lm_a):
        program(question="q9")
    with pl.context(lm=lm_b):
        loaded(question="q9")
    assert [r.messages for r in lm_a.requests] == [r.messages for r in lm_b.requests]


def test_random_search_reports_every_candidate_and_keeps_the_best():
    with pl.context(lm=echo_lm(wrong={"q1"})):
        program = pl.BootstrapFewShotWithRandomSearch(
            exact, num_candidate_programs=3, max_bootstrapped_demos=2, max_labeled_demos=2, search_space="dspy"
        ).compile(pl.Predict("question -> answer"), trainset=qa(6), valset=qa(4))
    report = program.compile_report
    names = [c.name for c in report.candidates]
    assert names[:3] == ["baseline", "labelled k=2", "bootstrap"] and len(names) == 5
    assert all(c.ci is not None and c.n == 4 for c in report.candidates)
    assert all(c.delta == 0.0 for c in report.candidates[1:])  # each scores 75 %, as the baseline does
    assert report.chosen == "baseline" and report.significant is False
    assert "no candidate is significantly better" in report.summary()


def test_random_search_searches_the_joint_space_by_default_within_the_demo_ceiling():
    optimizer = pl.BootstrapFewShotWithRandomSearch(
        exact, num_candidate_programs=6, max_bootstrapped_demos=2, max_labeled_demos=2
    )
    assert optimizer.search_space == "joint"
    with pl.context(lm=echo_lm(wrong={"q1"})):
        program = optimizer.compile(pl.Predict("question -> answer"), trainset=qa(8), valset=qa(4))
    names = [c.name for c in program.compile_report.candidates]
    assert names[0] == "baseline" and len(names) > 1
    demo_counts = {int(name.split()[0]) for name in names[1:] if name.split()[0].isdigit()}
    assert demo_counts and max(demo_counts) <= 4  # 2 bootstrapped + 2 labelled at most
    assert not any("calibrated" in name for name in names)  # a free-text answer has no label to choose


def test_knn_picks_the_nearest_examples_as_demos():
    train = [
        pl.Example(question="what colour is the sky", answer="blue").with_inputs("question"),
        pl.Example(question="how many legs does a spider have", answer="8").with_inputs("question"),
        pl.Example(question="what colour is grass", answer="green").with_inputs("question"),
    ]
    lm = ScriptedLM(default={"answer": "ok"})
    program = pl.KNNFewShot(k=1, trainset=train).compile(pl.Predict("question -> answer", lm=lm))
    program(question="how many legs does an ant have")
    assert "spider" in lm.requests[0].text and "sky" not in lm.requests[0].text

    def embed(texts):
        return [[1.0, 0.0] if "colour" in t else [0.0, 1.0] for t in texts]

    lm = ScriptedLM(default={"answer": "ok"})
    program = pl.KNNFewShot(k=2, trainset=train, embedder=embed).compile(pl.Predict("question -> answer", lm=lm))
    program(question="what colour is snow")
    assert "sky" in lm.requests[0].text and "grass" in lm.requests[0].text and "spider" not in lm.requests[0].text


def test_majority_and_ensemble():
    votes = [pl.Prediction(answer=a) for a in ["Paris", "paris.", "Lyon"]]
    assert pl.majority(votes).answer == "Paris"
    assert (
        pl.majority(pl.Prediction.from_completions([{"answer": "x"}, {"answer": "y"}, {"answer": "y"}])).answer == "y"
    )
    programs = [pl.Predict("question -> answer", lm=ScriptedLM(default={"answer": a})) for a in ["b", "a", "b"]]
    assert pl.Ensemble().compile(programs)(question="q").answer == "b"
    assert len(pl.Ensemble(reduce_fn=None, size=2).compile(programs)(question="q")) == 2
    with pytest.raises(ValueError, match="size=5"):
        pl.Ensemble(size=5).compile(programs)


def test_bootstrap_scores_the_result_on_a_valset_when_given():
    with pl.context(lm=echo_lm(wrong={"q7"})):
        program = pl.BootstrapFewShot(exact, max_labeled_demos=0).compile(
            pl.Predict("question -> answer"), trainset=qa(4), valset=qa(8)
        )
    baseline, candidate = program.compile_report.candidates
    assert candidate.name == "compiled" and candidate.n == 8 and candidate.score == 87.5
    assert candidate.ci[0] < 87.5 <= candidate.ci[1]
    assert baseline.name == "baseline" and candidate.delta == 0.0
    assert program.compile_report.lm_calls == 8 + 4 + 8  # baseline, teacher runs, compiled
    assert program.compile_report.chosen == "baseline"  # no better than the uncompiled program


def test_a_metric_saying_no_is_an_error_not_a_pass():
    """bool("no") is True: judging by truthiness made wrong answers into demos. One rule now: numbers and bools."""
    lm = ScriptedLM(default={"answer": "wrong"})
    with pytest.raises(pl.MetricError, match="returned str 'no'"):
        pl.BootstrapFewShot(lambda ex, pred, trace=None: "no").compile(
            pl.Predict("question -> answer", lm=lm),
            trainset=[pl.Example(question="q", answer="a").with_inputs("question")],
        )


def test_metric_errors_while_bootstrapping_are_counted_in_the_report():
    lm = ScriptedLM(default={"answer": "a"})
    trainset = [pl.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(3)]
    trainset.append(pl.Example(question="q9").with_inputs("question"))  # no label

    def exact(example, pred, trace=None):
        return example.answer == pred.answer

    program = pl.BootstrapFewShot(exact, max_labeled_demos=0).compile(
        pl.Predict("question -> answer", lm=lm), trainset=trainset
    )
    notes = "\n".join(program.compile_report.notes)
    assert "the metric raised on 1 example(s) while bootstrapping (first: AttributeError" in notes
    assert "3 of the examples tried passed the metric" in notes
