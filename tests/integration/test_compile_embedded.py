"""BootstrapFewShot on the real embedded model, on a small BIG-Bench Hard slice."""

import json
from pathlib import Path
from typing import Literal

import pytest

import promptless as pl

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.integration

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


def test_bootstrapped_demos_pass_the_metric_and_the_artifact_reloads(examples, tmp_path):
    from promptless.lm.cache import Cache

    lm = pl.LM("local/gemma-3-270m", cache=Cache(tmp_path / "cache"))
    with pl.context(lm=lm):
        compiled = pl.BootstrapFewShot(exact, max_bootstrapped_demos=3, max_labeled_demos=3).compile(
            pl.ChainOfThought(Plausible), trainset=examples[:16]
        )
        report = compiled.compile_report
        assert report.lm_calls > 0 and report.wall_time_s > 0
        demos = compiled.predict.demos
        booted = [d for d in demos if "reasoning" in d]
        assert booted, report.summary()
        by_question = {ex.question: ex for ex in examples}
        assert all(d.answer == by_question[d.question].answer for d in booted)  # every traced demo passed

        path = compiled.save(tmp_path / "compiled.json")
        reloaded = pl.ChainOfThought(Plausible).load(path)
        for example in examples[16:22]:
            first = compiled(question=example.question)
            again = reloaded(question=example.question)
            assert (first.reasoning, first.answer) == (again.reasoning, again.answer)
        assert lm.history[-1].response.cached  # the reloaded program sent byte-identical requests
