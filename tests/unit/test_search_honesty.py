"""The shared search machinery: budget at the LM seam, checkpoint, paired CIs, baseline fallback, test gate, plan.

ScriptedLM throughout (a scripted test double, not a model).
"""

import json

import pytest

from promptless import Example, Predict, context
from promptless.budget import Budget, BudgetExhausted
from promptless.evaluate.stats import bootstrap_ci, paired_bootstrap_ci
from promptless.optimizers.checkpoint import Checkpoint, CheckpointMismatch
from promptless.optimizers.plan import Plan, bootstrap_runs, probe
from promptless.optimizers.search import SearchRun, SearchSettings
from promptless.testing import ScriptedLM


def exact(example, prediction, trace=None):
    return float(example.answer == prediction.answer)


def dataset(n):
    return [Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def answer_all(request):
    """Answers q<i> correctly when the prompt's instructions say 'good', else wrongly."""
    question = request.text.rsplit("q", 1)[-1].split()[0].strip('"}').rstrip(".")
    good = "good" in request.text.split("q" + question)[0]
    return {"answer": f"a{question}" if good else "wrong"}


def test_budget_stops_lm_calls_at_the_seam_and_cache_hits_are_free(tmp_path):
    from promptless.lm.cache import Cache

    lm = ScriptedLM(default={"answer": "x"}, cache=Cache(tmp_path))
    predict = Predict("question -> answer", lm=lm)
    budget = Budget(max_lm_calls=2)
    with context(budget=budget):
        predict(question="one")
        predict(question="two")
        predict(question="one")  # a cache hit: not charged
        with pytest.raises(BudgetExhausted, match="max_lm_calls=2"):
            predict(question="three")
    assert budget.lm_calls == 2 and len(lm.requests) == 2
    assert budget.tokens > 0


def test_budget_rejects_bad_limits():
    with pytest.raises(ValueError, match=r"max_lm_calls.*-1"):
        Budget(max_lm_calls=-1)


def test_paired_bootstrap_against_known_values():
    diffs_base = [0.0] * 100
    better = [1.0] * 30 + [0.0] * 70
    lo, hi = paired_bootstrap_ci(diffs_base, better)
    # normal approximation: 0.3 ± 1.96 * sqrt(0.3 * 0.7 / 100) = 0.3 ± 0.090
    assert lo == pytest.approx(0.21, abs=0.02) and hi == pytest.approx(0.39, abs=0.02)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_ci([1.0], [1.0, 0.0])


def _run(tmp_path, lm, instructions, settings=None, testset=None):
    student = Predict("question -> answer", lm=lm)
    run = SearchRun("Test", student, exact, dataset(40), settings or SearchSettings(), testset=testset)
    with run:
        run.score_baseline()
        for text in instructions:
            candidate = student.deepcopy()
            candidate.signature = candidate.signature.with_instructions(text)
            run.score(f"instr={text}", candidate)
    return run.finish()


def test_a_significantly_better_candidate_is_chosen_with_its_paired_interval(tmp_path):
    program = _run(tmp_path, ScriptedLM(answer_all), ["be good", "be bad"])
    report = program.compile_report
    assert report.chosen == "instr=be good" and report.significant is True
    good = next(c for c in report.candidates if c.name == "instr=be good")
    assert good.delta == pytest.approx(100.0) and good.delta_ci[0] > 0
    assert "good" in program.signature.instructions
    assert "vs baseline" in report.summary()


def test_no_significant_gain_returns_the_baseline_and_says_so(tmp_path):
    program = _run(tmp_path, ScriptedLM(answer_all), ["be bad", "be worse"])
    report = program.compile_report
    assert report.chosen == "baseline" and report.significant is False
    assert any("not significantly better" in note or "no candidate is significantly" in note for note in report.notes)
    kept = _run(tmp_path, ScriptedLM(answer_all), ["be bad"], SearchSettings(fallback_to_baseline=False))
    assert kept.compile_report.chosen == "instr=be bad"


def test_the_testset_is_scored_once_apart_from_selection(tmp_path):
    lm = ScriptedLM(answer_all)
    program = _run(tmp_path, lm, ["be good"], testset=dataset(10))
    report = program.compile_report
    assert report.test is not None and report.test.n == 10 and report.test.score == 100.0
    assert report.candidates[-1].n == 40  # selection used the valset only


def test_budget_ends_the_search_with_the_best_so_far(tmp_path):
    settings = SearchSettings(max_lm_calls=100, num_threads=1)
    program = _run(tmp_path, ScriptedLM(answer_all), ["be good", "be bad", "be good too"], settings)
    report = program.compile_report
    assert report.stopped_by_budget and "max_lm_calls=100" in report.stopped_by_budget
    assert report.chosen == "instr=be good"
    assert report.lm_calls == 100


def test_checkpoint_resume_skips_finished_scoring(tmp_path):
    path = tmp_path / "ck.json"
    calls = {"n": 0}

    def crashing(request):
        calls["n"] += 1
        if calls["n"] == 70:
            raise KeyboardInterrupt
        return answer_all(request)

    settings = SearchSettings(checkpoint=path, num_threads=1)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, ScriptedLM(crashing), ["be good", "be bad"], settings)
    saved = json.loads(path.read_text())
    assert saved["format"] == "promptless.checkpoint"
    assert any(key.startswith("score:baseline:") and key.endswith(":full") for key in saved["values"])
    lm = ScriptedLM(answer_all)
    program = _run(tmp_path, lm, ["be good", "be bad"], settings)
    assert len(lm.requests) == 80  # the baseline's 40 were not run again
    assert program.compile_report.resumed_steps == 1 and program.compile_report.chosen == "instr=be good"


def test_a_checkpointed_score_belongs_to_the_candidates_content_not_its_name(tmp_path):
    """Reproduces the stale-score bug: a resumed run rebuilt 'candidate' with other instructions and inherited
    the first run's score. Now a stored score is reused only for the same content on the same valset."""
    path = tmp_path / "ck.json"
    settings = SearchSettings(checkpoint=path, num_threads=1)
    student = Predict("question -> answer", lm=ScriptedLM(answer_all))

    def score_as_candidate(text):
        candidate = student.deepcopy()
        candidate.signature = candidate.signature.with_instructions(text)
        run = SearchRun("Test", student, exact, dataset(10), settings)
        with run:
            return run.score("candidate", candidate).scores

    assert score_as_candidate("be bad") == [0.0] * 10
    assert score_as_candidate("be good") == [1.0] * 10  # same name, other content: scored again
    assert score_as_candidate("be bad") == [0.0] * 10  # and the first one's score is still there


def test_a_checkpoint_of_another_compile_is_refused(tmp_path):
    path = tmp_path / "ck.json"
    Checkpoint(path, optimizer="A", key="1").put("x", 1)
    assert Checkpoint(path, optimizer="A", key="1").get("x") == 1
    with pytest.raises(CheckpointMismatch, match="another compile"):
        Checkpoint(path, optimizer="B", key="1")
    path.write_text("not json")
    with pytest.raises(CheckpointMismatch, match="not readable JSON"):
        Checkpoint(path, optimizer="A", key="1")


def test_probe_measures_calls_and_pass_rate_and_plan_adds_up():
    lm = ScriptedLM(answer_all)
    student = Predict("question -> answer", lm=lm)
    measured = probe(student, dataset(5), exact)
    assert measured.runs == 3 and measured.lm_calls == 3 and measured.pass_rate == 0.0
    plan = Plan("X", {"probe": 3, "eval": 40}, proposer_calls=5, calls_per_run=measured.calls_per_run)
    assert plan.lm_calls == 48 and "48 LM calls" in plan.summary()
    assert bootstrap_runs(train_size=50, max_demos=4, pass_rate=1.0, threads=4) == 4
    assert bootstrap_runs(train_size=50, max_demos=4, pass_rate=0.5, threads=4) == 8
    assert bootstrap_runs(train_size=6, max_demos=4, pass_rate=0.1, threads=4) == 6


def test_an_outer_budget_still_counts_inside_a_search(tmp_path):
    outer = Budget(max_lm_calls=50)
    with context(budget=outer):
        program = _run(tmp_path, ScriptedLM(answer_all), ["be good", "be bad"], SearchSettings(num_threads=1))
    report = program.compile_report
    assert report.stopped_by_budget and "max_lm_calls=50" in report.stopped_by_budget
    assert outer.lm_calls == 50 and report.lm_calls == 50
