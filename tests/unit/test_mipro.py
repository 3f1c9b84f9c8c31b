"""MIPROv2's bookkeeping against the scripted test LM (promptless.testing.ScriptedLM, not a model).

The script: the dataset summary is a fixed text; a proposed instruction says
``level=L`` with ``L`` set by the tip the proposal was asked for; a task call
answers question ``qN`` right when ``N % 5 < level`` (level 1 without a
``level=``), so every instruction has a known score on every example.
"""

import json
import re
import subprocess
import sys

import pytest

import promptless as pl
from promptless.optimizers.mipro import MIPROv2, auto_trials
from promptless.optimizers.proposer import TIPS
from promptless.testing import ScriptedLM

optuna = pytest.importorskip("optuna")

SUMMARY = "SUMMARY-7F3: questions qN with answers aN."
LEVELS = {"none": 2, "creative": 3, "simple": 4, "description": 5, "high_stakes": 1, "persona": 0}
TIP_OF_TEXT = {text or "(none)": key for key, text in TIPS.items()}


def qa(n, start=0):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(start, start + n)]


def exact(example, prediction, trace=None):
    return float(example.answer == prediction.answer)


def kind(request):
    system = request.messages[0]["content"]
    if '"proposed_instruction"' in system:
        return "propose"
    if '"summary"' in system:
        return "summary"
    return "task"


def tip(request):
    return TIP_OF_TEXT[re.search(r"Tip: (.*)", request.messages[1]["content"]).group(1)]


def level_of(instructions):
    found = re.search(r"level=(\d)", instructions)
    return int(found.group(1)) if found else 1


def level(request):
    return level_of(request.messages[0]["content"])


def question(request):
    return int(re.findall(r"Question: q(\d+)", request.messages[-1]["content"])[-1])


class Script:
    """The reply function (see the module docstring); ``crash_at`` raises KeyboardInterrupt at that call."""

    def __init__(self, crash_at=None, bad_tips=(), failing_tips=(), summary=SUMMARY):
        self.calls = 0
        self.crash_at = crash_at
        self.bad_tips, self.failing_tips, self.summary = set(bad_tips), set(failing_tips), summary

    def __call__(self, request):
        self.calls += 1
        if self.calls == self.crash_at:
            raise KeyboardInterrupt
        what = kind(request)
        if what == "summary":
            return {"summary": self.summary} if self.summary else "no json here"
        if what == "propose":
            if tip(request) in self.bad_tips:
                return "I think the instruction should be nicer"  # not JSON: a ParseError after the retry
            if tip(request) in self.failing_tips:
                return pl.LMBadRequest("proposer request rejected")  # not an outage: skipped
            return {"proposed_instruction": f"Answer the question. level={LEVELS[tip(request)]}"}
        q = question(request)
        return {"answer": f"a{q}" if q % 5 < level(request) else "wrong"}


def mipro(**kwargs):
    settings = {"auto": None, "num_candidates": 4, "num_trials": 6, "minibatch_size": 5, "minibatch_full_eval_steps": 3}
    return MIPROv2(exact, **{**settings, **kwargs})


def compile_with(lm, optimizer, student=None, **data):
    data = {"trainset": qa(10), "valset": qa(20, start=100), **data}
    with pl.context(lm=lm):
        return optimizer.compile(student or pl.Predict("question -> answer"), **data)


def instruction_levels(lm):
    """Level of instruction candidate i: the original (1), then one per proposal, in the order proposed."""
    return [1] + [LEVELS[tip(r)] for r in lm.requests if kind(r) == "propose"]


def search_calls(lm):
    """The task calls after the last proposal: the trials and full evaluations (the baseline came before)."""
    last_proposal = max(i for i, r in enumerate(lm.requests) if kind(r) == "propose")
    return lm.requests[last_proposal + 1 :]


def expected_score(questions, lvl):
    return sum(q % 5 < lvl for q in questions) / len(questions)


def test_trials_ask_and_tell_the_params_they_score_and_the_best_minibatch_config_gets_the_full_eval(monkeypatch):
    asked, told = [], []
    ask, tell = optuna.study.Study.ask, optuna.study.Study.tell

    def recording_ask(self, *args, **kwargs):
        trial = ask(self, *args, **kwargs)
        asked.append(trial)
        return trial

    def recording_tell(self, trial, values=None, *args, **kwargs):
        told.append((dict(trial.params), values))
        return tell(self, trial, values, *args, **kwargs)

    monkeypatch.setattr(optuna.study.Study, "ask", recording_ask)
    monkeypatch.setattr(optuna.study.Study, "tell", recording_tell)
    lm = ScriptedLM(Script())
    program = compile_with(lm, mipro(num_trials=7, num_threads=1))
    logs = program.trial_logs
    levels = instruction_levels(lm)
    assert len(levels) == 4 and len(logs) == 7

    assert [t.params for t in asked] == [p for p, _ in told] == [e["params"] for e in logs]
    assert [v for _, v in told] == [e["score"] for e in logs]

    # The task calls after the proposals, in order: each trial's minibatch, then any full evaluation.
    calls = iter(search_calls(lm))
    fully_scored = {"instr=[0] demos=[0]"}  # the baseline
    means = {}
    for entry in logs:
        batch = [next(calls) for _ in range(5)]
        lvl = levels[entry["params"]["0_predictor_instruction"]]
        assert {level(r) for r in batch} == {lvl}  # the program scored is the one the params name
        no_demos = entry["params"]["0_predictor_demos"] == 0
        assert all((len(r.messages) == 2) == no_demos for r in batch)
        assert entry["score"] == expected_score([question(r) - 100 for r in batch], lvl)
        means.setdefault(entry["config"], []).append(entry["score"])
        if "full_eval" in entry:
            unscored = {c: sum(v) / len(v) for c, v in means.items() if c not in fully_scored}
            best = max(unscored, key=unscored.get)  # ties: the first seen, as dicts keep order
            assert entry["full_eval"]["config"] == best
            fully_scored.add(best)
            full = [next(calls) for _ in range(20)]
            best_level = levels[int(re.search(r"instr=\[(\d+)\]", best).group(1))]
            assert {level(r) for r in full} == {best_level}
            assert entry["full_eval"]["score"] == expected_score([question(r) - 100 for r in full], best_level)
    assert next(calls, None) is None
    assert [e["trial"] for e in logs if "full_eval" in e] == [2, 5, 6]  # every 3 trials, and after the last


def test_minibatch_and_full_evaluation_cadence():
    lm = ScriptedLM(Script())
    program = compile_with(lm, mipro(num_trials=7, num_threads=2))
    report = program.compile_report
    logs = program.trial_logs
    fulls = [e["full_eval"]["config"] for e in logs if "full_eval" in e]
    assert len(fulls) == 3
    assert len(search_calls(lm)) == 7 * 5 + 20 * len(fulls)
    assert [c.name for c in report.candidates] == ["baseline", *fulls]  # only full evaluations can be chosen
    assert all(c.n == 20 for c in report.candidates)
    assert any("7 trials: 7 minibatch evaluations of 5 examples" in note for note in report.notes)

    full_lm = ScriptedLM(Script())
    program = compile_with(full_lm, mipro(num_trials=5, minibatch=False))
    logs = program.trial_logs
    assert all(e["kind"] == "full" and "full_eval" not in e for e in logs)
    new = {e["config"] for e in logs} - {"instr=[0] demos=[0]"}
    assert {c.name for c in program.compile_report.candidates} == {"baseline", *new}
    assert len(search_calls(full_lm)) == 20 * len(new)  # a repeated configuration is not scored again

    small_lm = ScriptedLM(Script())
    program = compile_with(small_lm, mipro(num_trials=3, minibatch_size=35), valset=qa(8, start=100))
    assert all(e["kind"] == "full" for e in program.trial_logs)
    assert "minibatch trials" not in program.compile_report.forecast.phases


class Pipeline(pl.Module):
    def __init__(self):
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.Predict("query -> answer")

    def forward(self, question):
        return self.answer(query=self.rewrite(question=question).query)


def pipeline_reply(request):
    what = kind(request)
    if what == "summary":
        return {"summary": SUMMARY}
    if what == "propose":
        return {"proposed_instruction": f"Do the step well ({tip(request)})."}
    user = request.messages[-1]["content"]
    if user.startswith("Query:"):
        return {"answer": "a" + re.findall(r"Query: find q(\d+)", user)[-1]}
    return {"query": f"find q{question(request)}"}


def test_grounded_proposals_see_the_data_summary_the_program_structure_and_their_predictors_demos():
    lm = ScriptedLM(pipeline_reply)
    program = compile_with(lm, mipro(num_candidates=4, num_trials=2), student=Pipeline())
    summary_requests = [r for r in lm.requests if kind(r) == "summary"]
    assert len(summary_requests) == 1
    assert "Question: q" in summary_requests[0].messages[1]["content"]  # grounded in training examples
    proposals = [r for r in lm.requests if kind(r) == "propose"]
    assert len(proposals) == 2 * 3  # two predictors, three proposals each
    for request in proposals:
        user = request.messages[1]["content"]
        assert SUMMARY in user
        assert "`rewrite`: question -> query" in user and "`answer`: query -> answer" in user
    rewrite = [r.messages[1]["content"] for r in proposals if "Step: `rewrite`" in r.messages[1]["content"]]
    answer = [r.messages[1]["content"] for r in proposals if "Step: `answer`" in r.messages[1]["content"]]
    assert len(rewrite) == len(answer) == 3
    # The first is grounded in the unshuffled bootstrap (four traced demos): each step sees its own fields.
    assert "Question: q0\nQuery: find q0" in rewrite[0] and "Answer:" not in rewrite[0]
    assert "Query: find q0\nAnswer: a0" in answer[0] and "Question:" not in answer[0]
    assert all("Query: find q" in t for t in rewrite[1:2] + answer[1:2])  # the shuffled bootstrap (topped up)
    assert all("Question: q" in t and "Answer: a" in t for t in rewrite[2:] + answer[2:])  # then labelled examples
    assert len({tip(r) for r in proposals[:3]}) == 3  # the tip varies per candidate
    assert program.compile_report.forecast.proposer_calls == 1 + 6


def test_proposals_that_fail_are_skipped_counted_and_do_not_end_the_compile():
    lm = ScriptedLM(Script(bad_tips={"persona", "creative"}, failing_tips={"simple"}, summary=None))
    program = compile_with(lm, mipro(num_candidates=7, num_trials=4))
    report = program.compile_report
    proposals = [r for r in lm.requests if kind(r) == "propose"]
    assert len(proposals) == 6 + 2  # the two unreadable ones got their parse retry
    notes = "\n".join(report.notes)
    assert "3 of 6 instruction proposals parsed" in notes
    assert notes.count("proposer call failed and was skipped") == 4  # three proposals and the summary
    assert "ParseError" in notes and "LMBadRequest" in notes
    assert "self: 4 instruction candidates: [0] the original; [1] 'Answer the question. level=" in notes
    assert all("Dataset summary: (no summary)" in r.messages[1]["content"] for r in proposals)
    assert max(e["params"]["0_predictor_instruction"] for e in program.trial_logs) <= 3


def test_a_proposer_that_keeps_timing_out_ends_the_compile():
    """A timeout that outlived the LM's retries is an outage: skipping it would compile on a hanging server."""
    script = Script()

    def hanging(request):
        return pl.LMTimeout("proposer timed out") if kind(request) == "propose" else script(request)

    lm = ScriptedLM(hanging)
    with pytest.raises(pl.LMTimeout, match="proposer timed out"):
        compile_with(lm, mipro())


def test_duplicate_proposals_are_dropped_from_the_search_space():
    def reply(request):
        if kind(request) == "propose":
            return {"proposed_instruction": "Answer the question. level=3"}
        return Script()(request)

    program = compile_with(ScriptedLM(reply), mipro(num_candidates=5, num_trials=5))
    notes = "\n".join(program.compile_report.notes)
    assert "4 of 4 instruction proposals parsed (3 duplicates dropped)" in notes
    assert "self: 2 instruction candidates" in notes
    assert {e["params"]["0_predictor_instruction"] for e in program.trial_logs} <= {0, 1}


def test_an_error_that_will_not_go_away_still_ends_the_compile():
    def reply(request):
        if kind(request) == "propose":
            return pl.LMAuthError("401")
        return Script()(request)

    with pytest.raises(pl.LMAuthError):
        compile_with(ScriptedLM(reply), mipro())


def test_budget_stop_returns_the_best_fully_scored_so_far():
    full = compile_with(ScriptedLM(Script()), mipro(num_trials=9, num_threads=1))
    total = full.compile_report.total_calls
    limit = total - 30  # runs out during the last stretch of trials
    lm = ScriptedLM(Script())
    program = compile_with(lm, mipro(num_trials=9, num_threads=1, max_lm_calls=limit, fallback_to_baseline=False))
    report = program.compile_report
    assert report.stopped_by_budget and f"max_lm_calls={limit}" in report.stopped_by_budget
    assert len(lm.requests) == report.lm_calls == limit
    assert len(program.trial_logs) < 9
    scored = [c for c in report.candidates if c.name != "baseline"]
    assert scored and report.chosen == max(scored, key=lambda c: c.score).name
    assert max(c.score for c in scored) == pytest.approx(100 * level_of(program.signature.instructions) / 5)


def test_resume_after_a_crash_rebuilds_the_study_and_repeats_nothing(tmp_path, monkeypatch):
    def settings(**kwargs):
        return mipro(num_trials=7, num_threads=1, **kwargs)

    reference_lm = ScriptedLM(Script())
    reference = compile_with(reference_lm, settings())
    before_trials = len(reference_lm.requests) - len(search_calls(reference_lm))
    first_proposal = next(i for i, r in enumerate(reference_lm.requests) if kind(r) == "propose") + 1
    added = []
    add_trial = optuna.study.Study.add_trial
    monkeypatch.setattr(
        optuna.study.Study, "add_trial", lambda self, trial: added.append(trial.params) or add_trial(self, trial)
    )
    # Crash at the second proposal, and at the first call of trial 2 (before the first full evaluation).
    for crash_at, replayed in ((first_proposal + 1, 0), (before_trials + 2 * 5 + 1, 2)):
        path = tmp_path / f"crash{crash_at}.json"
        with pytest.raises(KeyboardInterrupt):
            compile_with(ScriptedLM(Script(crash_at=crash_at)), settings(checkpoint=path))
        saved = json.loads(path.read_text())["values"]
        assert "value:probe" in saved and any(k.startswith("score:baseline:") and k.endswith(":full") for k in saved)
        added.clear()
        lm = ScriptedLM(Script())
        resumed = compile_with(lm, settings(checkpoint=path))
        assert len(lm.requests) == len(reference_lm.requests) - (crash_at - 1)  # nothing finished is done again
        made = [kind(r) for r in lm.requests]
        assert made.count("summary") == 0 and made.count("propose") == max(0, 3 - (crash_at - first_proposal))
        assert added[: 1 + replayed] == [{"0_predictor_instruction": 0, "0_predictor_demos": 0}] + [
            e["params"] for e in reference.trial_logs[:replayed]
        ]
        report = resumed.compile_report
        assert report.resumed_steps > 0
        assert resumed.trial_logs == reference.trial_logs
        assert report.chosen == reference.compile_report.chosen
        assert [(c.name, c.score) for c in report.candidates] == [
            (c.name, c.score) for c in reference.compile_report.candidates
        ]
        assert resumed.dump_state() == reference.dump_state()
    assert any("resumed: 2 trials replayed" in note for note in report.notes)


def echo(request):
    what = kind(request)
    if what == "summary":
        return {"summary": SUMMARY}
    if what == "propose":
        return {"proposed_instruction": f"Answer ({tip(request)})."}
    user = request.messages[-1]["content"]
    if user.startswith("Query:"):
        return {"answer": "a" + re.findall(r"Query: find q(\d+)", user)[-1]}
    return {"query": f"find q{question(request)}"}


def test_forecast_agrees_with_the_calls_made():
    optimizer = mipro(num_candidates=5, num_trials=8, minibatch_size=6, num_threads=3)
    lm = ScriptedLM(echo)
    with pl.context(lm=lm):
        ahead = optimizer.plan(Pipeline(), qa(12), qa(20, start=100))
    program = compile_with(ScriptedLM(echo), optimizer, student=Pipeline(), trainset=qa(12))
    report = program.compile_report
    assert ahead.lm_calls == report.forecast.lm_calls
    assert report.forecast.phases["bootstrap"] > 0 and report.forecast.proposer_calls == 1 + 2 * 4
    assert abs(report.forecast.lm_calls - report.total_calls) <= 0.05 * report.total_calls
    assert report.forecast.calls_per_run == 2.0
    assert f"forecast {report.forecast.lm_calls} LM calls" in report.summary()

    # Every trial a full evaluation: the forecast counts each; a repeated configuration is free.
    optimizer = mipro(num_candidates=3, num_trials=5, minibatch=False)
    program = compile_with(ScriptedLM(echo), optimizer, student=Pipeline(), trainset=qa(12))
    report = program.compile_report
    seen = {"instr=[0,0] demos=[0,0]"}
    repeats = 0
    for entry in program.trial_logs:
        repeats += entry["config"] in seen
        seen.add(entry["config"])
    assert report.total_calls == report.forecast.lm_calls - repeats * 20 * 2


def test_compile_is_deterministic_and_leaves_the_student_alone():
    student = pl.Predict("question -> answer")
    student.demos = [pl.Example(question="q1", answer="a1")]
    before = student.dump_state()
    first = compile_with(ScriptedLM(Script()), mipro(), student=student)
    second = compile_with(ScriptedLM(Script()), mipro(), student=student)
    assert student.dump_state() == before and not hasattr(student, "compile_report")
    assert first.trial_logs == second.trial_logs and first.dump_state() == second.dump_state()
    other_seed = compile_with(ScriptedLM(Script()), mipro(seed=3), student=student)
    assert other_seed.trial_logs != first.trial_logs


def test_auto_presets_and_trial_counts():
    assert [auto_trials(1, n, True) for n in (6, 12, 18)] == [10, 18, 27]
    assert [auto_trials(2, n, True) for n in (6, 12, 18)] == [20, 28, 33]
    assert auto_trials(1, 6, False) == 9
    light = MIPROv2(exact).shape(num_predictors=1, val_size=200)
    assert (light.num_candidates, light.num_trials, light.minibatch, light.full_evals) == (6, 10, True, 2)
    heavy = MIPROv2(exact, auto="heavy", num_trials=4).shape(num_predictors=1, val_size=10)
    assert (heavy.num_candidates, heavy.num_trials, heavy.minibatch) == (18, 4, False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auto": "extreme"}, r"auto=\) must be 'light', 'medium', 'heavy' or None, got 'extreme'"),
        ({"auto": None}, r"auto=None\) needs num_candidates= and num_trials= \(got num_candidates=None"),
        ({"auto": None, "num_candidates": 3, "num_trials": 0}, r"num_trials=\) must be an int >= 1, got 0"),
        ({"minibatch_size": 0}, r"minibatch_size=\) must be an int >= 1, got 0"),
        ({"max_labeled_demos": -1}, r"max_labeled_demos=\) must be an int >= 0, got -1"),
        ({"minibatch_full_eval_steps": 2.5}, r"minibatch_full_eval_steps=\) must be an int >= 1, got 2.5"),
        ({"minibatch": "yes"}, r"minibatch=\) must be True or False, got 'yes'"),
        ({"prompt_model": "gpt"}, r"prompt_model=\) must be an LM or None, got 'gpt'"),
    ],
)
def test_bad_arguments_are_named_with_the_value_received(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        MIPROv2(exact, **kwargs)
    with pytest.raises(TypeError, match=r"metric=\) must be callable, got 'exact'"):
        MIPROv2("exact")


def test_optuna_is_imported_only_by_compile_with_a_clear_message(monkeypatch):
    code = "import sys, promptless, promptless.optimizers.mipro; print('optuna' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    monkeypatch.setitem(sys.modules, "optuna", None)
    lm = ScriptedLM(Script())
    with pytest.raises(ImportError, match=r"MIPROv2 needs optuna: pip install 'promptless\[optim\]'"):
        compile_with(lm, mipro())
    assert lm.requests == []
