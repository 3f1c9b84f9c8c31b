"""MIPROv2 on the real embedded model (SmolLM2-135M), on a small BIG-Bench Hard slice.

Small on purpose (12 train / 12 val, a few trials, minibatches of 4) so it runs in a
few minutes on two CPU cores; it checks the pipeline end to end, not a gain.
"""

import json
from pathlib import Path
from typing import Literal

import pytest

import promptless as pl

pytest.importorskip("llama_cpp")
pytest.importorskip("optuna")
pytestmark = pytest.mark.integration

# The first 30 examples of BBH sports_understanding (../shared/data/bbh), kept in the repo: see fixtures/SOURCE.md.
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bbh_sports_understanding_30.json"


class Plausible(pl.Signature):
    """Is the sentence about sports plausible?"""

    question: str = pl.InputField()
    answer: Literal["yes", "no"] = pl.OutputField()


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


@pytest.fixture(scope="module")
def examples():
    rows = json.loads(FIXTURE.read_text())["examples"]
    return [pl.Example(question=r["input"], answer=r["target"]).with_inputs("question") for r in rows]


def test_light_mipro_completes_with_a_forecast_scored_candidates_and_a_choice(examples, tmp_path):
    from promptless.lm.cache import Cache
    from promptless.optimizers.mipro import MIPROv2

    lm = pl.LM("local/smollm2-135m", cache=Cache(tmp_path / "cache"), max_tokens=160)
    student = pl.Predict(Plausible)
    optimizer = MIPROv2(
        exact,
        auto="light",
        num_candidates=4,
        num_trials=4,
        max_bootstrapped_demos=2,
        max_labeled_demos=2,
        minibatch_size=4,
        minibatch_full_eval_steps=2,
        checkpoint=tmp_path / "mipro.json",
        fallback_to_baseline=False,  # the choice is made even without a significant gain
    )
    with pl.context(lm=lm):
        compiled = optimizer.compile(student, trainset=examples[:12], valset=examples[12:24], testset=examples[24:])
        report = compiled.compile_report
        print(report.summary())

        assert report.forecast is not None and report.forecast.lm_calls > 0
        assert report.forecast.phases["minibatch trials"] == 4 * 4
        assert report.total_calls > 0 and report.total_calls <= 1.5 * report.forecast.lm_calls
        names = [c.name for c in report.candidates]
        assert names[0] == "baseline" and len(names) >= 2
        for candidate in report.candidates[1:]:
            assert candidate.n == 12 and candidate.delta is not None and candidate.delta_ci is not None
            assert candidate.delta_ci[0] <= candidate.delta <= candidate.delta_ci[1]
        assert report.chosen in names and report.chosen != "baseline"
        assert report.test is not None and report.test.n == 6
        assert len(compiled.trial_logs) == 4
        assert any("4 trials" in note for note in report.notes)

        assert student.demos == [] and student.signature.instructions == Plausible.instructions
        assert compiled(question=examples[24].question).answer in {"yes", "no"}

        # The checkpoint holds the whole search: a second compile replays it without running the search again.
        calls_before = len(lm.history)
        again = optimizer.compile(student, trainset=examples[:12], valset=examples[12:24])
        assert again.compile_report.chosen == report.chosen
        assert len(lm.history) == calls_before  # no probe, bootstrap, proposal or trial was run again
