"""Fault injection against a real llama.cpp server (SmolLM2), through a proxy of our own on 127.0.0.1.

Each fault must end as an expected event: no crash, errors counted apart from wrong answers, and
conditions that will not go away (a hanging server, revoked credentials) stop the run within a
bounded number of calls.
"""

from __future__ import annotations

import time

import pytest

import promptless as pl
from promptless.lm.retry import Backoff
from tests.integration.conftest import LlamaServer
from tests.integration.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

PAIRS = [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9)]
QUESTIONS = [f"What is {a} plus {b}?" for a, b in PAIRS]


@pytest.fixture
def proxy(llama_server):
    running = FaultProxy(llama_server, hang_s=20).start()
    yield running
    running.stop()


def lm_through(proxy: FaultProxy, **kwargs) -> pl.LM:
    kwargs.setdefault("backoff", Backoff(retries=2, base=0.05, cap=0.2))
    return pl.LM("openai/smollm2", api_base=proxy.base, cache=False, max_tokens=16, **kwargs)


def devset():
    return [pl.Example(question=q, answer="x").with_inputs("question") for q in QUESTIONS]


def contains(example, prediction, trace=None):
    return example.answer in str(prediction.answer)


def test_a_hanging_server_stops_an_evaluation_like_a_dead_one(proxy):
    proxy.fault = "hang"
    program = pl.Predict("question -> answer", lm=lm_through(proxy, timeout=1.0))
    started = time.monotonic()
    with pytest.raises(pl.LMTimeout):
        pl.Evaluate(devset(), contains, num_threads=1)(program)
    assert time.monotonic() - started < 30
    assert proxy.requests <= 3 * 2  # three examples in a row, each tried twice (a timeout is retried once)


def test_revoked_credentials_mid_run_stop_the_run_at_once(proxy):
    program = pl.Predict("question -> answer", lm=lm_through(proxy))
    assert program(question=QUESTIONS[0]).answer is not None  # the server works
    proxy.fault, before = "unauthorized", proxy.requests
    with pytest.raises(pl.LMAuthError):
        pl.Evaluate(devset(), contains, num_threads=2)(program)
    assert proxy.requests - before <= 2 * 2  # at most the calls in flight: never the whole dev set
    proxy.requests = 0
    with pytest.raises(pl.LMAuthError):
        program.batch([{"question": q} for q in QUESTIONS * 5], num_threads=2)
    assert proxy.requests <= 2 * 2


def test_corrupted_replies_are_retried_and_counted_never_a_crash(proxy):
    proxy.fault = "corrupt_every_3rd"
    program = pl.Predict("question -> answer", lm=lm_through(proxy))
    result = pl.Evaluate(devset(), contains, num_threads=2)(program)
    assert result.n == len(QUESTIONS)
    # A corrupted reply is retried; one that stays corrupt (or an answer SmolLM2 garbles) is an error, counted
    # apart from wrong answers, and the run goes on.
    assert result.errors <= 2
    assert all(detail.split(":")[0] in ("LMUnavailable", "ParseError") for detail in result.error_details.values())
    assert proxy.requests > len(QUESTIONS)  # the retries happened


def test_a_refused_request_format_fails_at_once_with_a_clear_error(proxy):
    proxy.fault = "format_refused"
    program = pl.Predict("question -> answer: int", lm=lm_through(proxy))
    with pytest.raises(pl.LMBadRequest, match="response_format"):
        program(question=QUESTIONS[0])
    assert proxy.requests <= 2  # one per dialect, no retries of a request the server will never take


def test_a_killed_server_stops_the_run_and_a_restarted_one_serves_the_same_lm(tmp_path):
    server = LlamaServer(tmp_path / "server.log").start()
    try:
        lm = pl.LM("openai/smollm2", api_base=server.base, cache=False, max_tokens=16,
                   backoff=Backoff(retries=2, base=0.05, cap=0.2))
        program = pl.Predict("question -> answer", lm=lm)
        assert program(question=QUESTIONS[0]).answer is not None
        server.kill()
        started = time.monotonic()
        with pytest.raises(pl.LMUnavailable, match="cannot connect"):
            pl.Evaluate(devset(), contains, num_threads=2)(program)
        assert time.monotonic() - started < 15  # three outages in a row, each after its retries
        server.start()  # same port
        result = pl.Evaluate(devset()[:3], contains, num_threads=1)(program)
        assert result.n == 3  # the same LM object recovers (a garbled answer may still be a ParseError)
        assert not [d for d in result.error_details.values() if d.startswith("LMUnavailable")], result.error_details
    finally:
        server.stop()


def test_a_compile_interrupted_by_a_fault_resumes_without_repeating_a_finished_call(proxy, tmp_path):
    pairs = zip(QUESTIONS, PAIRS, strict=True)
    trainset = [pl.Example(question=q, answer=str(a + b)).with_inputs("question") for q, (a, b) in pairs]
    optimizer_args = {"max_bootstrapped_demos": 2, "max_labeled_demos": 2, "num_candidate_programs": 2}
    optimizer_args["num_threads"] = 1

    def compile_once(checkpoint):
        lm = lm_through(proxy)
        optimizer = pl.BootstrapFewShotWithRandomSearch(contains, checkpoint=checkpoint, **optimizer_args)
        with pl.context(lm=lm):
            return optimizer.compile(pl.Predict("question -> answer"), trainset=trainset[:4], valset=trainset[4:])

    proxy.requests = 0
    clean = compile_once(tmp_path / "clean.json")
    clean_calls = proxy.requests
    proxy.requests, proxy.fail_after = 0, clean_calls // 2
    with pytest.raises(pl.LMAuthError):
        compile_once(tmp_path / "resumed.json")
    first_part = proxy.requests
    proxy.requests, proxy.fail_after = 0, None
    resumed = compile_once(tmp_path / "resumed.json")
    assert resumed.compile_report.resumed_steps >= 1
    assert resumed.compile_report.chosen == clean.compile_report.chosen
    # Finished scoring is not repeated; only the step that was cut off runs again.
    assert proxy.requests + first_part <= clean_calls + len(trainset)
