"""The LM wrapper around every backend: retries, typed errors, cache keys, history, settings."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import promptless as pl
from promptless.lm.base import Request
from promptless.lm.retry import Backoff
from promptless.settings import run_in_context
from promptless.testing import ScriptedLM


def test_transient_errors_are_retried_then_raised():
    slept: list[float] = []
    backoff = Backoff(retries=2, sleep=slept.append)
    lm = ScriptedLM([pl.LMUnavailable("503"), pl.LMRateLimited("429"), "ok"], backoff=backoff)
    assert lm("hi") == ["ok"]
    assert len(slept) == 2 and all(0.3 <= s <= 1.5 for s in slept)  # 0.5 s then 1 s, ±25 % jitter
    lm = ScriptedLM(default=pl.LMUnavailable("down"), backoff=backoff)
    with pytest.raises(pl.LMUnavailable):
        lm("hi")
    assert len(lm.requests) == 3  # first try + 2 retries
    lm = ScriptedLM(default=pl.LMTimeout("slow"), backoff=backoff)
    with pytest.raises(pl.LMTimeout):
        lm("hi")
    assert len(lm.requests) == 2  # a timeout is retried once: each try costs a whole timeout


@pytest.mark.parametrize("error", [pl.LMAuthError("401"), pl.LMNotFound("404"), pl.LMContextOverflow("too long")])
def test_permanent_errors_stop_at_once(error):
    lm = ScriptedLM(default=error, num_retries=5)
    with pytest.raises(type(error)):
        lm("hi")
    assert len(lm.requests) == 1


def test_cache_key_ignores_secrets_and_honours_rollout_id():
    request = Request(prompt="x", temperature=1.0)
    assert request.cache_key("m") == Request(prompt="x", temperature=1.0).cache_key("m")
    assert request.cache_key("m") != Request(prompt="x", temperature=1.0, rollout_id=1).cache_key("m")
    a = pl.LM("openai/m", api_base="http://127.0.0.1:1/v1", api_key="sk-one", cache=False)
    assert "sk-one" not in repr(a.settings()) and "sk-one" not in repr(a)


def test_bad_model_names_are_explained():
    with pytest.raises(ValueError, match="needs a model name"):
        pl.LM("")
    with pytest.raises(ValueError, match="unknown provider"):
        _ = pl.LM("anthropic/claude", cache=False).backend
    with pytest.raises(ValueError, match="embedded models are"):
        _ = pl.LM("local/llama-70b", cache=False).model_type


def test_request_needs_one_of_prompt_or_messages():
    with pytest.raises(ValueError, match="exactly one"):
        Request()
    with pytest.raises(ValueError, match="exactly one"):
        Request(prompt="a", messages=({"role": "user", "content": "b"},))


def test_history_is_per_lm_and_bounded():
    lm = ScriptedLM(default="x", history_size=3)
    for _ in range(5):
        lm("hi")
    assert len(lm.history) == 3
    assert len(ScriptedLM().history) == 0


def test_usage_is_tracked_per_block():
    lm = ScriptedLM(default={"answer": "a"})
    with pl.track_usage() as usage:
        pl.Predict("question -> answer", lm=lm)(question="one two three")
        pl.Predict("question -> answer", lm=lm)(question="four")
    assert usage.total.calls == 2
    assert usage.by_model["scripted/test"].completion_tokens > 0


def test_configure_and_context():
    with pytest.raises(TypeError, match="unknown setting"):
        pl.configure(llm=None)
    lm = ScriptedLM()
    with pytest.raises(RuntimeError), pl.context(lm=lm):
        assert pl.settings.current().lm is lm
        raise RuntimeError("boom")
    assert pl.settings.current().lm is None  # restored on error


def test_run_in_context_carries_settings_to_threads():
    lm = ScriptedLM()
    seen = {}

    def probe(key):
        seen[key] = pl.settings.current().lm

    with pl.context(lm=lm), ThreadPoolExecutor(2) as pool:
        pool.submit(run_in_context(probe), "library").result()
        pool.submit(probe, "plain").result()
    assert seen == {"library": lm, "plain": None}


def test_context_is_isolated_between_threads():
    lms = [ScriptedLM(default={"answer": str(i)}) for i in range(4)]
    answers = {}

    def worker(i):
        with pl.context(lm=lms[i]):
            for _ in range(20):
                answers.setdefault(i, set()).add(pl.Predict("question -> answer")(question="q").answer)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: {str(i)} for i in range(4)}
