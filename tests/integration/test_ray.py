"""RayExecutor on a real local Ray cluster started here (2 CPUs), against the thread executor.

One cluster for the module (Ray's start costs seconds), shut down at teardown. Scripted
LMs are module-level functions (they travel by reference); what they saw is written to
files, since each worker is its own process. The embedded-model tests load Gemma once
per actor.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import promptless as pl
from promptless.errors import BudgetExhausted, LMAuthError
from promptless.testing import ScriptedLM

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

CALLS_ENV = "PROMPTLESS_TEST_CALLS"  # where the scripted LMs append one line per call they answer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    calls = tmp_path_factory.mktemp("ray") / "calls.jsonl"
    os.environ[CALLS_ENV] = str(calls)  # before ray.init: the workers inherit it
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield calls
    ray.shutdown()
    os.environ.pop(CALLS_ENV, None)


@pytest.fixture
def calls(cluster):
    cluster.write_text("")
    return cluster


def logged(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _log(request) -> str:
    question = request.text.rsplit("q=", 1)[-1].split()[0] if "q=" in request.text else "?"
    with open(os.environ[CALLS_ENV], "a") as out:
        out.write(json.dumps({"pid": os.getpid(), "q": question}) + "\n")
    return question


def sentiment_reply(request):
    question = _log(request)
    time.sleep(0.02)
    if question.endswith("7"):
        return "not json at all"  # a parse failure: counted as an error the same way on both executors
    return {"answer": "yes" if int(question[1:]) % 3 else "no"}


def dying_reply(request):
    """The first worker to see q=die exits in the middle of the call; the retry answers."""
    question = _log(request)
    marker = Path(os.environ[CALLS_ENV]).with_suffix(".died")
    if question == "die" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    time.sleep(0.05)
    return {"answer": "yes"}


def auth_failure(request):
    _log(request)
    time.sleep(0.2)
    raise LMAuthError("401: bad key")


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


def questions(n, *, extra=()):
    names = [f"q{i}" for i in range(n)] + list(extra)
    return [
        pl.Example(
            question=f"q={name} ?", answer="yes" if name[1:].isdigit() and int(name[1:]) % 3 else "no"
        ).with_inputs("question")
        for name in names
    ]


def test_evaluate_and_batch_on_ray_give_what_threads_give(cluster, calls):
    program = pl.Predict("question -> answer")
    program.demos = [pl.Example(question="q=demo ?", answer="yes")]
    dev = questions(16)
    lm = ScriptedLM(sentiment_reply)
    with pl.context(lm=lm, max_parse_retries=0):
        on_threads = pl.Evaluate(dev, exact, num_threads=2)(program)
        batch_threads = program.batch(dev, return_failed_examples=True)
        history_before = len(lm.history)
        with pl.RayExecutor(num_workers=2) as executor:
            on_ray = pl.Evaluate(dev, exact, executor=executor, display_progress=True)(program)
            batch_ray = program.batch(dev, return_failed_examples=True, executor=executor)
    assert on_ray.scores == on_threads.scores and on_ray.errors == on_threads.errors == 1
    assert on_ray.error_details.keys() == on_threads.error_details.keys()
    assert [p and p.answer for _, p, _ in on_ray.results] == [p and p.answer for _, p, _ in on_threads.results]
    assert on_ray.usage.total == on_threads.usage.total and on_ray.usage.total.calls == 16
    assert len(lm.history) - history_before == 32  # the workers' history entries came back to the driver's LM
    assert [r and r.answer for r in batch_ray[0]] == [r and r.answer for r in batch_threads[0]]
    assert batch_ray[1] == batch_threads[1] and len(batch_ray[2]) == 1
    pids = {line["pid"] for line in logged(calls)}
    assert len(pids) >= 3  # this process (threads) and two workers


def test_a_killed_worker_has_its_example_retried_exactly_once(cluster, calls):
    dev = questions(10, extra=["die"])
    dev.insert(3, dev.pop())  # q=die early, while both workers are busy
    with pl.context(lm=ScriptedLM(dying_reply)), pl.RayExecutor(num_workers=2) as executor:
        evaluate = pl.Evaluate(dev, lambda ex, pred: pred.answer == "yes", executor=executor)
        result = evaluate(pl.Predict("question -> answer"))
        assert executor.restarts == 1 and len(executor.workers) == 2  # replaced
        first_run = logged(calls)
        ray.kill(executor.workers[0].handle)  # one dies between two calls: the next call replaces it
        again = evaluate(pl.Predict("question -> answer"))
        assert executor.restarts == 2 and len(executor.workers) == 2 and again.n == 11 and again.errors == 0
    assert result.n == 11 and result.errors == 0 and result.score == 100.0  # nothing lost, nothing counted twice
    attempts: dict[str, list[int]] = {}
    for line in first_run:
        attempts.setdefault(line["q"], []).append(line["pid"])
    assert len(attempts["die"]) == 2 and attempts["die"][0] != attempts["die"][1]  # retried once, elsewhere
    assert all(len(pids) == 1 for q, pids in attempts.items() if q != "die")


def test_a_budget_holds_across_the_workers(cluster, calls):
    budget = pl.Budget(max_lm_calls=5)
    with (
        pl.context(lm=ScriptedLM(sentiment_reply), budget=budget),
        pl.RayExecutor(num_workers=2) as executor,
        pytest.raises(BudgetExhausted),
    ):
        pl.Evaluate(questions(20), exact, executor=executor)(pl.Predict("question -> answer"))
    assert len(logged(calls)) == 5  # five calls reached the backend, over both workers together
    assert budget.lm_calls == 5 and budget.tokens > 0  # and the driver's budget was charged with them


def test_a_fatal_error_stops_the_run_within_one_call_per_worker(cluster, calls):
    with (
        pl.context(lm=ScriptedLM(auth_failure)),
        pl.RayExecutor(num_workers=2) as executor,
        pytest.raises(LMAuthError, match="bad key"),
    ):
        pl.Evaluate(questions(20), exact, executor=executor)(pl.Predict("question -> answer"))
    assert len(logged(calls)) <= 2


def test_the_cli_runs_jsonl_lines_on_ray_in_input_order(cluster, calls, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from promptless.cli import common, main

    program = pl.Predict("question -> answer")
    program.save(tmp_path / "p.json")
    lines = [json.dumps({"question": f"q={q} ?"}) for q in ("q1", "q2", "q3", "q7", "q4")] + ["{broken"]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(common, "make_lm", lambda model, *, api_base=None: ScriptedLM(sentiment_reply))
    args = ["run", str(tmp_path / "p.json"), "--jsonl", str(tmp_path / "in.jsonl")]
    on_threads = CliRunner().invoke(main.app, args)
    on_ray = CliRunner().invoke(main.app, [*args, "--ray"])
    assert on_ray.exit_code == on_threads.exit_code == 1, on_ray.output  # two lines failed: exit 1, all written
    assert on_ray.stdout == on_threads.stdout
    outputs = [json.loads(line) for line in on_ray.stdout.splitlines()]
    assert [o.get("answer") for o in outputs] == ["yes", "yes", "no", None, "yes", None]
    assert "error" in outputs[3] and "error" in outputs[5]


# -- the embedded model in each actor -------------------------------------------------------------------------
def test_embedded_model_actors_answer_as_threads_do_and_share_one_disk_cache(cluster, tmp_path):
    pytest.importorskip("llama_cpp")
    from typing import Literal

    class Sentiment(pl.Signature):
        """Classify the sentiment of a movie review sentence."""

        sentence: str = pl.InputField()
        sentiment: Literal["positive", "negative"] = pl.OutputField()

    sentences = [
        "a gorgeous, witty film",
        "dull and lifeless",
        "i loved every minute",
        "a tedious mess",
        "warm and funny",
        "painfully slow",
    ]
    dev = [
        pl.Example(sentence=s, sentiment="positive" if i % 2 == 0 else "negative").with_inputs("sentence")
        for i, s in enumerate(sentences)
    ]
    program = pl.Predict(Sentiment)
    program.demos = [pl.Example(sentence="a triumph", sentiment="positive")]

    def accuracy(example, prediction, trace=None):
        return example.sentiment == prediction.sentiment

    no_cache = pl.LM("local/gemma-3-270m", cache=False, n_threads=1)
    with pl.context(lm=no_cache):
        on_threads = pl.Evaluate(dev, accuracy, num_threads=1)(program)
    shared = pl.LM("local/gemma-3-270m", cache=pl.lm.cache.Cache(tmp_path / "cache"), n_threads=1)
    with pl.context(lm=shared), pl.RayExecutor(num_workers=2) as executor:
        on_ray = pl.Evaluate(dev, accuracy, executor=executor)(program)
        batched = program.batch(dev, executor=executor)  # from the shared cache now: the same answers
    assert [p.sentiment for p in batched] == [p.sentiment for _, p, _ in on_ray.results]
    assert [p.sentiment for _, p, _ in on_ray.results] == [p.sentiment for _, p, _ in on_threads.results]
    assert on_ray.scores == on_threads.scores and on_ray.errors == 0
    with pl.context(lm=pl.LM("local/gemma-3-270m", cache=pl.lm.cache.Cache(tmp_path / "cache"))):
        replayed = pl.Evaluate(dev, accuracy, num_threads=1)(program)  # every answer the workers wrote is on disk
    assert replayed.usage.cache_hits == len(dev) and replayed.usage.total.calls == 0
    assert replayed.scores == on_ray.scores


def test_an_optimizer_scores_its_candidates_on_the_workers_with_the_same_outcome(cluster, calls):
    trainset, valset = questions(8), questions(12)[8:] + questions(4)

    def compile_with(**settings):
        optimizer = pl.BootstrapFewShotWithRandomSearch(exact, num_candidate_programs=2, max_bootstrapped_demos=2)
        with pl.context(lm=ScriptedLM(sentiment_reply), max_parse_retries=0, **settings):
            return optimizer.compile(pl.Predict("question -> answer"), trainset=trainset, valset=valset)

    on_threads = compile_with()
    local_calls = len(logged(calls))
    with pl.RayExecutor(num_workers=2) as executor:
        on_ray = compile_with(executor=executor)
    worker_pids = {line["pid"] for line in logged(calls)[local_calls:]} - {os.getpid()}
    assert len(worker_pids) == 2  # the candidates were scored on both workers
    scores = lambda report: [(c.name, c.score, c.errors) for c in report.candidates]  # noqa: E731
    assert scores(on_ray.compile_report) == scores(on_threads.compile_report)
    assert on_ray.compile_report.chosen == on_threads.compile_report.chosen
    assert on_ray.dump_state() == on_threads.dump_state()
    assert on_ray.compile_report.lm_calls == on_threads.compile_report.lm_calls  # the workers' calls counted


def test_more_workers_than_the_cluster_has_cpus_is_refused_not_left_waiting(cluster):
    with pl.context(lm=ScriptedLM(sentiment_reply)), pytest.raises(ValueError, match="needs 3 CPUs"):
        pl.Evaluate(questions(2), exact, executor=pl.RayExecutor(num_workers=3))(pl.Predict("question -> answer"))
