"""GEPA on the real embedded model (SmolLM2-135M), on a small BIG-Bench Hard slice.

Small on purpose (8 train / 8 val / 6 test, 3 iterations of 3-example minibatches)
so it runs in a few minutes on two CPU cores; it checks the loop end to end (traced
runs, feedback in the reflection prompt, Pareto pool, report, resume), not a gain.
The same small model writes the new instructions: its proposals are weak but parse,
since the proposer's output is constrained like any other signature's.
"""

import importlib.util
import json
from pathlib import Path
from typing import Literal

import pytest

import promptless as pl
from promptless.evaluate.feedback import ScoreWithFeedback

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "bbh_sports_understanding_30.json"  # the first 30 of the same task


class Plausible(pl.Signature):
    """Is the sentence about sports plausible?"""

    question: str = pl.InputField()
    answer: Literal["yes", "no"] = pl.OutputField()


def with_feedback(example, prediction, trace=None):
    right = example.answer == prediction.answer
    return ScoreWithFeedback(float(right), f"expected {example.answer!r}, got {prediction.answer!r}")


@pytest.fixture(scope="module")
def examples():
    """BBH sports_understanding from ../shared/data (examples/_data.py), or the in-repo fixture without it."""
    spec = importlib.util.spec_from_file_location("_data", ROOT / "examples" / "_data.py")
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    if (data.DATA / "bbh" / "sports_understanding.json").is_file():
        return data.bbh("sports_understanding")[:30]
    rows = json.loads(FIXTURE.read_text())["examples"]
    return [pl.Example(question=r["input"], answer=r["target"]).with_inputs("question") for r in rows]


def test_gepa_evolves_instructions_from_feedback_and_resumes_from_its_checkpoint(examples, tmp_path):
    from promptless.lm.cache import Cache
    from promptless.optimizers.reflective import GEPA

    lm = pl.LM("local/smollm2-135m", cache=Cache(tmp_path / "cache"), max_tokens=160, history_size=1000)
    student = pl.Predict(Plausible)
    settings = dict(
        max_iterations=3,
        reflection_minibatch_size=3,
        reflection_lm=lm,
        checkpoint=tmp_path / "gepa.json",
        fallback_to_baseline=False,  # the choice is made even without a significant gain
        seed=0,
    )
    train, val, test = examples[:8], examples[8:16], examples[16:22]
    with pl.context(lm=lm):
        compiled = GEPA(with_feedback, **settings).compile(student, trainset=train, valset=val, testset=test)
    report = compiled.compile_report
    print(report.summary())

    assert report.forecast is not None and "upper bound" in report.forecast.summary()
    assert 0 < report.total_calls <= 1.1 * report.forecast.lm_calls  # parse retries are the only excess
    names = [c.name for c in report.candidates]
    assert names[0] == "baseline" and all(c.n == 8 for c in report.candidates)
    assert all(name.startswith("cand ") for name in names[1:])
    assert any(note.startswith("3 iterations") for note in report.notes)
    assert any(note.startswith("Pareto front:") for note in report.notes)
    assert report.chosen in names and report.test is not None and report.test.n == 6

    proposals = [entry.request for entry in lm.history if "new_instruction" in entry.request.text]
    assert proposals, "no iteration reached the reflection LM (every minibatch perfect?)"
    assert all("expected '" in request.text and "Feedback:" in request.text for request in proposals)
    assert student.signature.instructions == Plausible.instructions  # the student is untouched
    assert compiled(question=test[0].question).answer in {"yes", "no"}

    # The checkpoint holds the whole search: a second compile replays it without a single LM call.
    fresh = pl.LM("local/smollm2-135m", cache=Cache(tmp_path / "cache"), max_tokens=160)
    with pl.context(lm=fresh):
        again = GEPA(with_feedback, **{**settings, "reflection_lm": fresh}).compile(student, trainset=train, valset=val)
    assert len(fresh.history) == 0
    assert again.compile_report.chosen == report.chosen
    assert again.signature.instructions == compiled.signature.instructions
