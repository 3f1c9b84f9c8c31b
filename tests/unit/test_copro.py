"""COPRO's bookkeeping against ScriptedLM (a scripted test double, not a model).

The task LM answers question ``qI`` right when the instruction says ``level K``
with ``I < K``, so an instruction's score is known in advance; the proposer is
scripted to propose ``level ...`` instructions in a fixed order.
"""

import json
import re

import pytest

import promptless as pl
from promptless.lm.errors import LMAuthError, LMContextOverflow
from promptless.optimizers.copro import COPRO
from promptless.testing import ScriptedLM

PROPOSER = "instruction optimizer"  # in both proposer signatures' instructions, never in a task prompt


def qa(n):
    return [pl.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(n)]


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


def answer_by_level(request):
    """Right on question qI iff the system prompt's instruction says ``level K`` with I < K."""
    level = re.findall(r"level (\d+)", request.messages[0]["content"])
    k = int(level[0]) if level else 0
    i = int(re.findall(r"Question: q(\d+)", request.text)[-1])
    return {"answer": f"a{i}" if i < k else "wrong"}


def scripted(proposals, *, crash_at=None):
    """One LM for everything: proposer requests get the next of ``proposals``, task requests ``answer_by_level``."""
    queue = list(proposals)
    seen = {"n": 0}

    def reply(request):
        seen["n"] += 1
        if seen["n"] == crash_at:
            raise KeyboardInterrupt  # a simulated crash, mid-compile
        if PROPOSER in request.text:
            item = queue.pop(0) if queue else "no more proposals"
            return {"proposed_instruction": item} if isinstance(item, str) else item["raw"]
        return answer_by_level(request)

    return ScriptedLM(reply)


def proposer_requests(lm):
    return [r for r in lm.requests if PROPOSER in r.text]


def task_requests(lm):
    return [r for r in lm.requests if PROPOSER not in r.text]


def compile_copro(lm, student=None, n=4, **kwargs):
    kwargs.setdefault("num_threads", 1)
    optimizer = COPRO(exact, **{"breadth": 3, "depth": 2, **kwargs})
    with pl.context(lm=lm):
        return optimizer.compile(student or pl.Predict("question -> answer"), trainset=qa(n))


def scores(report):
    return {c.name.split(" [")[0]: c.score for c in report.candidates}


# -- the algorithm ----------------------------------------------------------------------------------
def test_proposals_are_parsed_scored_and_the_best_is_returned():
    task = ScriptedLM(answer_by_level)
    proposer = scripted(["level 1", "level 2", "level 3", "level 4", "level 5"])
    student = pl.Predict("question -> answer")
    optimizer = COPRO(exact, breadth=3, depth=2, init_temperature=1.2, prompt_model=proposer, num_threads=1)
    with pl.context(lm=task):
        program = optimizer.compile(student, trainset=qa(4))
    report = program.compile_report
    assert scores(report) == {
        "baseline": 0.0,
        "self: level 1": 25.0,
        "self: level 2": 50.0,
        "self: level 3": 75.0,
        "self: level 4": 100.0,
        "self: level 5": 100.0,
    }
    assert report.chosen.startswith("self: level 4") and report.significant is True  # ties: the first scored
    assert program.signature.instructions == "level 4"
    assert not hasattr(student, "compile_report") and "level" not in student.signature.instructions
    # proposals go to prompt_model only, n per call, sampled at init_temperature with a rollout per call
    assert all(PROPOSER not in r.text for r in task.requests)
    calls = proposer_requests(proposer)
    assert [(r.n, r.temperature, r.rollout_id) for r in calls] == [(2, 1.2, 0)] * 2 + [(3, 1.2, 1)] * 3
    assert [c.notes for c in report.candidates[1:]] == ["round 1"] * 2 + ["round 2"] * 3
    assert any(note.startswith("self round 2/2: 3 distinct proposals, 3 scored") for note in report.notes)
    assert program.results_latest["self"]["max"] == [0.5, 1.0]  # track_stats, as DSPy names it
    assert program.results_best["self"]["depth"] == [0, 1]


def test_the_revision_prompt_shows_the_scored_history_best_last():
    lm = scripted(["level 2", "level 1", "level 3", "level 4", "level 5"])
    compile_copro(lm)
    first, revision = proposer_requests(lm)[0], proposer_requests(lm)[2]
    assert "Basic instruction: Given the fields `question`, produce the fields `answer`." in first.text
    history = revision.messages[-1]["content"]
    assert re.findall(r"Instruction #\d: (.*)\nResulting Score #\d: ([\d.]+)", history) == [
        ("Given the fields `question`, produce the fields `answer`.", "0.0"),
        ("level 1", "25.0"),
        ("level 2", "50.0"),
    ]


def test_the_history_shown_is_the_best_breadth_instructions():
    lm = scripted(["level 1", "level 2", "level 3", "level 4", "level 5", "level 6", "level 7", "level 8"])
    compile_copro(lm, n=8, depth=3)
    last = proposer_requests(lm)[-1].messages[-1]["content"]
    assert re.findall(r"Instruction #\d: (.*)", last) == ["level 3", "level 4", "level 5"]


def test_duplicate_proposals_are_not_scored_again():
    current = "Given the fields `question`, produce the fields `answer`."
    # round 1 repeats itself; round 2 repeats round 1 and the original instruction
    lm = scripted(["level 1", "level 1", "level 2", "level 1", current])
    program = compile_copro(lm)
    report = program.compile_report
    assert len(task_requests(lm)) == 3 + 4 + 4 + 4  # probe, baseline, level 1, level 2: nothing twice
    assert [name.split(" [")[0] for name in scores(report)] == ["baseline", "self: level 1", "self: level 2"]
    assert any(
        note.startswith("self round 2/2: 3 distinct proposals, 1 scored, 2 already seen") for note in report.notes
    )
    assert any("2 proposals repeated an instruction already scored" in note for note in report.notes)


class Pipeline(pl.Module):
    def __init__(self):
        self.rewrite = pl.Predict("question -> query")
        self.answer = pl.Predict("query -> answer")

    def forward(self, question):
        return self.answer(query=self.rewrite(question=question).query)


def pipeline_lm():
    """Rewrite: right query under an 'R' instruction. Answer: needs the right query, and an 'A' one past q1."""
    count = {"R": 0, "A": 0}

    def reply(request):
        system, text = request.messages[0]["content"], request.text
        if PROPOSER in text:
            tag = "R" if "fields `query`." in text or "R v" in text else "A"
            count[tag] += 1
            return {"proposed_instruction": f"{tag} v{count[tag]}"}
        if "Question: q" in text:
            i = re.findall(r"Question: (q\d+)", text)[-1]
            return {"query": f"find {i}" if "R v" in system else "lost"}
        found = re.findall(r"Query: find q(\d+)", text)
        i = int(found[-1]) if found else -1
        return {"answer": f"a{i}" if i >= 0 and (i < 2 or "A v" in system) else "wrong"}

    return ScriptedLM(reply)


def test_predictors_are_optimized_one_after_another_with_the_others_at_their_best():
    lm = pipeline_lm()
    program = compile_copro(lm, Pipeline(), breadth=2)
    tags = [r.messages[-1]["content"] for r in proposer_requests(lm)]
    assert [("R" if "`query`." in t or "R v" in t else "A") for t in tags] == ["R", "R", "R", "A", "A", "A"]
    # the answer step's first proposal is made from its own instruction, after rewrite's rounds are done
    assert "Given the fields `query`, produce the fields `answer`." in tags[3]
    assert program.rewrite.signature.instructions == "R v1"  # 50%; its later ties do not replace it
    assert program.answer.signature.instructions == "A v1"  # 100%, scored with rewrite at R v1
    report = program.compile_report
    assert scores(report) == {
        "baseline": 0.0,
        "rewrite: R v1": 50.0,
        "rewrite: R v2": 50.0,
        "rewrite: R v3": 50.0,
        "answer: A v1": 100.0,
        "answer: A v2": 100.0,
        "answer: A v3": 100.0,
    }
    answer_prompts = [r for r in task_requests(lm) if "A v" in r.messages[0]["content"]]
    assert len(answer_prompts) == 3 * 4
    answer_stage = task_requests(lm)[-3 * 4 * 2 :]  # the answer step's candidates, two calls per example
    rewrite_prompts = [r.messages[0]["content"] for r in answer_stage if "Question: q" in r.text]
    assert len(rewrite_prompts) == 12 and all("R v1" in p for p in rewrite_prompts)  # rewrite held at its best


# -- robustness -------------------------------------------------------------------------------------
def test_unparsable_or_empty_proposals_are_skipped_and_counted():
    garbage = {"raw": "I think you should try harder!"}
    # round 1: both completions and both parse retries are garbage (the whole call fails);
    # round 2: one good, one garbage (retried, garbage again), one empty
    lm = scripted([garbage, garbage, garbage, garbage, "level 4", garbage, "", garbage])
    program = compile_copro(lm)
    report = program.compile_report
    assert program.signature.instructions == "level 4"
    assert [name.split(" [")[0] for name in scores(report)] == ["baseline", "self: level 4"]
    assert any(
        note.startswith("self round 1/2: 0 distinct proposals, 0 scored, 0 already seen, 2 unparsable")
        for note in report.notes
    )
    assert any(
        note.startswith("self round 2/2: 1 distinct proposals, 1 scored, 0 already seen, 2 unparsable")
        for note in report.notes
    )
    assert any(note == "4 proposals did not parse or were empty and were skipped" for note in report.notes)


def test_a_failing_proposer_call_is_skipped_but_a_fatal_error_ends_the_compile():
    def overflow(request):
        return LMContextOverflow("prompt too long") if PROPOSER in request.text else answer_by_level(request)

    program = compile_copro(ScriptedLM(overflow))
    assert program.compile_report.chosen == "baseline"
    assert any("5 proposals did not parse" in note for note in program.compile_report.notes)

    def auth(request):
        return LMAuthError("bad key") if PROPOSER in request.text else answer_by_level(request)

    with pytest.raises(LMAuthError):
        compile_copro(ScriptedLM(auth))


def test_a_budget_stop_returns_the_best_so_far():
    lm = scripted(["level 1", "level 4", "level 2", "level 3", "level 5"])
    # probe 3 + baseline 4 + proposer 1 + two candidates 8 + proposer 1 = 17; level 2 is cut off after 2 calls
    program = compile_copro(lm, max_lm_calls=19)
    report = program.compile_report
    assert report.stopped_by_budget and "max_lm_calls=19" in report.stopped_by_budget
    assert report.lm_calls == 19
    assert report.chosen.startswith("self: level 4") and program.signature.instructions == "level 4"
    assert [name.split(" [")[0] for name in scores(report)] == ["baseline", "self: level 1", "self: level 4"]


def test_resume_after_a_crash_repeats_no_proposal_or_scoring(tmp_path):
    proposals = ["level 1", "level 2", "level 3", "level 4", "level 5"]
    uninterrupted = scripted(proposals)
    expected = compile_copro(uninterrupted)
    # requests: probe 3, baseline 4, round-1 proposals 2, candidates 8, round-2 proposals 3 = 20; then 3 x 4
    assert len(uninterrupted.requests) == 32
    path = tmp_path / "copro.json"
    with pytest.raises(KeyboardInterrupt):
        compile_copro(scripted(proposals, crash_at=22), checkpoint=path)  # inside round 2's first candidate
    saved = json.loads(path.read_text())["values"]
    assert {"value:probe", "value:proposals:self:0", "value:proposals:self:1"} <= set(saved)
    resumed_lm = scripted(["not to be asked"])
    resumed = compile_copro(resumed_lm, checkpoint=path)
    assert proposer_requests(resumed_lm) == []
    assert len(task_requests(resumed_lm)) == 3 * 4  # the unfinished candidate again, then the two after it
    report, want = resumed.compile_report, expected.compile_report
    assert report.resumed_steps == len(saved)
    assert resumed.signature.instructions == expected.signature.instructions == "level 4"
    assert [(c.name, c.score) for c in report.candidates] == [(c.name, c.score) for c in want.candidates]
    assert report.chosen == want.chosen


# -- forecast ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("pipeline", [False, True])
def test_the_forecast_matches_the_calls_made(pipeline):
    lm = pipeline_lm() if pipeline else scripted([f"level {i}" for i in range(1, 20)])
    student = Pipeline() if pipeline else pl.Predict("question -> answer")
    optimizer = COPRO(exact, breadth=3, depth=3, num_threads=1)
    with pl.context(lm=lm):
        program = optimizer.compile(student, trainset=qa(6))
        standalone = optimizer.plan(student, qa(6))
    report = program.compile_report
    forecast = report.forecast
    per_predictor = (3 - 1) + 2 * 3
    assert forecast.phases == {
        "probe": 3,
        "baseline": 6,
        **{path: per_predictor * 6 for path, _ in student.named_predictors()},
    }
    assert forecast.proposer_calls == 3 * len(student.named_predictors())
    assert abs(forecast.lm_calls - report.total_calls) <= 0.05 * report.total_calls
    assert forecast.lm_calls == report.total_calls  # deterministic script, no duplicates: exact
    assert standalone.lm_calls == forecast.lm_calls


# -- arguments --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"breadth": 1}, ValueError, r"breadth=\) must be an int >= 2, got 1 \(DSPy"),
        ({"breadth": 2.5}, ValueError, r"breadth=\) must be an int >= 2, got 2.5"),
        ({"depth": 0}, ValueError, r"depth=\) must be an int >= 1, got 0"),
        ({"init_temperature": -0.1}, ValueError, r"init_temperature=\) must be a number >= 0, got -0.1"),
        ({"track_stats": "yes"}, TypeError, r"track_stats=\) must be True or False, got 'yes'"),
        ({"prompt_model": "openai/gpt-4o"}, TypeError, r"prompt_model=\) must be an LM or None, got 'openai/gpt-4o'"),
        ({"num_threads": 0}, ValueError, r"num_threads=\) must be an int >= 1 or None, got 0"),
        ({"max_lm_calls": -5}, ValueError, r"max_lm_calls=\) must be an int >= 0 or None, got -5"),
        ({"checkpoint": 3}, TypeError, r"checkpoint=\) must be a path or None, got 3"),
    ],
)
def test_bad_arguments_are_refused_with_the_value_received(kwargs, error, match):
    with pytest.raises(error, match=match):
        COPRO(exact, **kwargs)


def test_bad_metric_and_bad_compile_inputs_are_refused_before_any_call():
    with pytest.raises(TypeError, match=r"metric=.*must be callable, got 'exact'"):
        COPRO("exact")
    lm = ScriptedLM([])
    with pl.context(lm=lm), pytest.raises(ValueError, match="trainset is empty"):
        COPRO(exact).compile(pl.Predict("question -> answer"), trainset=[])
    with pl.context(lm=lm), pytest.raises(TypeError, match=r"eval_kwargs=.*must be a dict"):
        COPRO(exact).compile(pl.Predict("question -> answer"), trainset=qa(2), eval_kwargs=[1])
    with pl.context(lm=lm), pytest.raises(ValueError, match=r"num_threads=\) must be an int >= 1, got 0"):
        COPRO(exact).compile(pl.Predict("question -> answer"), trainset=qa(2), eval_kwargs={"num_threads": 0})
    assert lm.requests == []


def test_dspy_eval_kwargs_are_taken_and_valset_defaulting_is_reported():
    lm = scripted(["level 4", "level 1", "level 2", "level 3", "level 5"])
    optimizer = COPRO(exact, breadth=3, depth=2)
    with pl.context(lm=lm):
        program = optimizer.compile(
            pl.Predict("question -> answer"), trainset=qa(4), eval_kwargs={"num_threads": 1, "display_table": 0}
        )
    notes = program.compile_report.notes
    assert "no valset given: candidates were scored on the trainset (optimistic)" in notes
    assert any("eval_kwargs ['display_table'] ignored" in note for note in notes)
    assert program.signature.instructions == "level 4"
