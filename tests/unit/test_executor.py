"""The executor seam (``promptless.executor``): the thread implementation, who goes through it, what travels.

Ray itself is exercised in tests/integration/test_ray.py on a real local cluster; here the
descriptions a RayExecutor would send are built and rebuilt in this process.
"""

from __future__ import annotations

import sys
import threading

import pytest

import promptless as pl
from promptless.budget import Budget
from promptless.distributed import RayExecutor, resolve_executor
from promptless.errors import CannotTravel, ClusterError, LMAuthError
from promptless.executor import Executor, Outcome, ThreadExecutor, executor_in_force, run_example
from promptless.testing import ScriptedLM
from promptless.trace import UsageTracker
from promptless.types import Usage


def answer_of(request):
    return {"answer": "yes" if "good" in request.text else "no"}


def exact(example, prediction, trace=None):
    return example.answer == prediction.answer


def devset(n=12):
    return [
        pl.Example(question=f"q{i} {'good' if i % 3 else 'bad'}", answer="yes" if i % 2 else "no").with_inputs(
            "question"
        )
        for i in range(n)
    ]


class Spy:
    """An Executor that counts its calls and runs them on threads."""

    def __init__(self):
        self.calls = []
        self.inner = ThreadExecutor()

    def map_program(self, program, examples, **kwargs):
        self.calls.append(len(list(examples)))
        self.inner.map_program(program, examples, **kwargs)


# -- the thread implementation ---------------------------------------------------------------------------
def test_thread_executor_gives_each_example_exactly_once_with_settings_following():
    seen: dict[int, Outcome] = {}
    lock = threading.Lock()

    def record(index, outcome):
        with lock:
            assert index not in seen
            seen[index] = outcome

    with pl.context(lm=ScriptedLM(answer_of)):
        ThreadExecutor(num_threads=3).map_program(pl.Predict("question -> answer"), devset(), on_outcome=record)
    assert sorted(seen) == list(range(12))
    assert [seen[i].prediction.answer for i in range(12)] == ["no" if i % 3 == 0 else "yes" for i in range(12)]


def test_run_example_keeps_the_prediction_beside_a_metric_error_and_tells_the_two_apart():
    def broken(example, prediction):
        raise KeyError("no such field")

    with pl.context(lm=ScriptedLM(answer_of)):
        outcome = run_example(pl.Predict("question -> answer"), devset()[1], broken)
        failed = run_example(pl.Predict("question -> answer"), {"nope": 1}, None)
    assert outcome.in_metric and isinstance(outcome.error, KeyError) and outcome.prediction.answer == "yes"
    assert not failed.in_metric and isinstance(failed.error, TypeError) and failed.prediction is None


def test_a_stop_set_by_on_outcome_starts_no_further_example():
    stop = threading.Event()
    seen = []

    def record(index, outcome):
        seen.append(index)
        stop.set()

    with pl.context(lm=ScriptedLM(answer_of)):
        ThreadExecutor(1).map_program(pl.Predict("question -> answer"), devset(40), on_outcome=record, stop=stop)
    assert 1 <= len(seen) <= 3  # one thread: what was in its window of 2 at most, never the 40


def test_an_error_on_outcome_raises_is_raised_by_the_run():
    def record(index, outcome):
        raise LMAuthError("bad key")

    with pl.context(lm=ScriptedLM(answer_of)), pytest.raises(LMAuthError):
        ThreadExecutor(2).map_program(pl.Predict("question -> answer"), devset(), on_outcome=record)


# -- choosing one ----------------------------------------------------------------------------------------
def test_executor_names_and_objects():
    assert isinstance(executor_in_force(None), ThreadExecutor)
    assert isinstance(resolve_executor("threads"), ThreadExecutor)
    spy = Spy()
    assert resolve_executor(spy) is spy and isinstance(spy, Executor)
    with pl.context(executor=spy):
        assert resolve_executor() is spy
    ray_by_name = resolve_executor("ray")  # built, not started: Ray starts on the first map
    assert isinstance(ray_by_name, RayExecutor) and not ray_by_name.keep_workers and not ray_by_name.workers
    with pytest.raises(ValueError, match="'threads', 'ray'"):
        resolve_executor("dask")
    with pytest.raises(TypeError, match="map_program"):
        resolve_executor(object())
    with pytest.raises(ValueError, match="num_workers"):
        RayExecutor(num_workers=-1)


def test_evaluate_batch_and_the_optimizers_scoring_go_through_the_executor_in_force():
    spy = Spy()
    program = pl.Predict("question -> answer")
    with pl.context(lm=ScriptedLM(answer_of), executor=spy):
        through_spy = pl.Evaluate(devset(), exact)(program)
        outputs = program.batch(devset(5))
        pl.BootstrapFewShotWithRandomSearch(exact, num_candidate_programs=1, max_bootstrapped_demos=1).compile(
            program, trainset=devset(6), valset=devset(6)
        )
    with pl.context(lm=ScriptedLM(answer_of)):
        on_threads = pl.Evaluate(devset(), exact)(program)
    assert spy.calls[:2] == [12, 5] and len(spy.calls) >= 4  # the compile scored its baseline and candidates
    assert through_spy.scores == on_threads.scores and through_spy.usage.total == on_threads.usage.total
    assert [o.answer for o in outputs] == ["no", "yes", "yes", "no", "yes"]


def test_evaluate_takes_an_executor_argument_over_the_setting():
    spy, other = Spy(), Spy()
    with pl.context(lm=ScriptedLM(answer_of), executor=other):
        pl.Evaluate(devset(4), exact, executor=spy)(pl.Predict("question -> answer"))
    assert spy.calls == [4] and other.calls == []


# -- the pieces a Ray run sums -----------------------------------------------------------------------------
def test_budget_remaining_and_absorb_follow_the_outer_budgets():
    outer = Budget(max_lm_calls=10, max_tokens=1000)
    inner = Budget(max_lm_calls=4, parent=outer)
    outer.lm_calls = 8
    assert inner.remaining() == (2, 1000)
    inner.absorb(2, 30)
    assert (inner.lm_calls, inner.tokens, outer.lm_calls, outer.tokens) == (2, 30, 10, 30)
    assert Budget().remaining() == (None, None)


def test_usage_tracker_add_usage_reaches_the_parents():
    parent = UsageTracker()
    child = UsageTracker(parent=parent)
    child.add_usage("m", Usage(10, 2, 0, 1), cache_hits=3)
    assert parent.total == Usage(10, 2, 0, 1) and parent.cache_hits == 3
    assert child.snapshot() == {"m": Usage(10, 2, 0, 1)}


# -- what travels to Ray workers (described and rebuilt here) ------------------------------------------------
ray = pytest.importorskip("ray")
from promptless.distributed.recipes import JobBuilder, pickled, unpickled  # noqa: E402


def travelled(program, metric=None, **settings):
    with pl.context(**settings):
        job = JobBuilder().build(program, metric, None, pl.settings.current())
    return unpickled(pickled(job))


def test_a_predict_and_a_chain_of_thought_are_rebuilt_from_their_state():
    predict = pl.Predict("question -> answer")
    predict.demos = [pl.Example(question="q", answer="a")]
    predict.config = {"n": 12}  # above what a file may ask for: the user's own program keeps it
    cot = pl.ChainOfThought("question -> answer: int")
    cot.predict.signature = cot.predict.signature.with_instructions("Count.")
    for program in (predict, cot):
        job = travelled(program, lm=ScriptedLM(answer_of))
        lms = [recipe.build() for recipe in job.lms]
        rebuilt = job.program.build(lms)
        assert type(rebuilt) is type(program) and rebuilt.dump_state() == program.dump_state()
    assert rebuilt.predict.signature.instructions == "Count." and predict.config == {"n": 12}


class Pipeline(pl.Module):
    def __init__(self, hops):
        super().__init__()
        self.hops = [pl.Predict("question -> answer") for _ in range(hops)]

    def forward(self, question):
        return self.hops[-1](question=question)


def make_pipeline():
    return Pipeline(2)


def test_a_program_that_needs_arguments_names_program_factory_and_a_factory_is_checked():
    with pytest.raises(CannotTravel, match="program_factory"):
        travelled(Pipeline(2), lm=ScriptedLM(answer_of))
    with pl.context(lm=ScriptedLM(answer_of)):
        job = JobBuilder().build(Pipeline(2), None, make_pipeline, pl.settings.current())
        assert unpickled(pickled(job)).program.build([]).dump_state() == Pipeline(2).dump_state()
        with pytest.raises(CannotTravel, match="does not rebuild it"):
            JobBuilder().build(Pipeline(3), None, make_pipeline, pl.settings.current())


def test_an_ensemble_travels_as_its_members_rebuilt_one_by_one():
    members = [pl.Predict("question -> answer") for _ in range(3)]
    members[1].demos = [pl.Example(question="q", answer="a")]
    ensemble = pl.Ensemble(size=2, seed=4).compile(members)
    with pl.context(lm=ScriptedLM(answer_of)):
        job = JobBuilder().build(ensemble, None, None, pl.settings.current())
    rebuilt = unpickled(pickled(job)).program.build([])
    assert type(rebuilt) is type(ensemble) and len(rebuilt.programs) == 3
    assert rebuilt.dump_state() == ensemble.dump_state()  # the members' demos came back with the state
    assert (rebuilt._size, rebuilt._seed, rebuilt._reduce_fn) == (2, 4, ensemble._reduce_fn)


def test_the_lm_travels_as_its_arguments_with_its_cache_location(tmp_path):
    lm = pl.LM("local/gemma-3-270m", cache=pl.lm.cache.Cache(tmp_path), temperature=0.3, n_threads=1)
    job = travelled(pl.Predict("question -> answer"), lm=lm)
    rebuilt = job.lms[job.settings.lm].build()
    assert type(rebuilt) is pl.LM and rebuilt is not lm
    assert (rebuilt.model, rebuilt.temperature, rebuilt._cache.path) == (lm.model, 0.3, lm._cache.path)
    assert rebuilt._backend_kwargs == {"n_threads": 1} and rebuilt._backend is None  # loads its own model


class CountingCallback(pl.BaseCallback):
    def __init__(self):
        self.ends = 0

    def on_lm_end(self, call_id, outputs, exception=None):
        self.ends += 1


def test_callbacks_that_can_travel_go_to_the_workers_and_others_are_refused():
    job = travelled(pl.Predict("question -> answer"), lm=ScriptedLM(answer_of), callbacks=[CountingCallback()])
    (copy,) = job.settings.callbacks
    assert isinstance(copy, CountingCallback) and copy.ends == 0

    class HoldsALock(pl.BaseCallback):
        def __init__(self):
            self.lock = threading.Lock()

    with pytest.raises(CannotTravel, match="the configured callbacks"):
        travelled(pl.Predict("question -> answer"), lm=ScriptedLM(answer_of), callbacks=[HoldsALock()])


def test_what_cannot_travel_is_refused_with_its_name():
    lock = threading.Lock()

    def holds_a_lock(example, prediction):
        with lock:
            return True

    program = pl.Predict("question -> answer")
    with pytest.raises(CannotTravel, match="the metric cannot be sent"):
        travelled(program, holds_a_lock, lm=ScriptedLM(answer_of))
    with pytest.raises(CannotTravel, match="list of replies"):
        travelled(program, lm=ScriptedLM(["yes"]))

    class MyLM(pl.LM):
        pass

    with pytest.raises(CannotTravel, match="MyLM cannot be rebuilt"):
        travelled(program, lm=MyLM("openai/x", api_base="http://127.0.0.1:9/v1"))
    with pytest.raises(CannotTravel, match="no LM is configured"):
        travelled(program)
    with pytest.raises(CannotTravel, match="trace"):
        travelled(program, lm=ScriptedLM(answer_of), trace=[])


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pl.context(lm=ScriptedLM(answer_of)), pytest.raises(ImportError, match=r"pip install 'promptless\[ray\]'"):
        pl.Evaluate(devset(2), exact, executor="ray")(pl.Predict("question -> answer"))


# -- joining a cluster by address (the real head node: tests/integration/test_ray_cluster.py) -----------------
def test_addresses_are_read_and_refused_with_what_was_given(monkeypatch):
    from promptless.distributed import cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.host_and_port("127.0.0.1:6379") == ("127.0.0.1", 6379)
    assert cluster.host_and_port("ray://head-node:10001") == ("head-node", 10001)
    for bad in ("head-node", "head:port", ":6379"):
        with pytest.raises(ValueError, match=f"got {bad!r}"):
            cluster.host_and_port(bad)
    assert not cluster.joins(None) and not cluster.joins("local") and cluster.joins("auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")  # ray.init() with no address joins RAY_ADDRESS's cluster
    assert cluster.joins(None)
    with pytest.raises(ValueError, match="start_timeout"):
        RayExecutor(start_timeout=0)


def test_the_job_ships_this_promptless_beside_what_the_user_ships():
    from pathlib import Path

    from promptless.distributed import cluster

    assert Path(cluster.PACKAGE_DIR) == Path(pl.__file__).resolve().parent
    assert cluster.shipped(None) == {"py_modules": [cluster.PACKAGE_DIR]}
    mine = {"py_modules": ["/src/mylib"], "env_vars": {"A": "1"}}
    assert cluster.shipped(mine) == {"py_modules": ["/src/mylib", cluster.PACKAGE_DIR], "env_vars": {"A": "1"}}
    assert mine["py_modules"] == ["/src/mylib"]  # the user's dict is not changed
    assert cluster.shipped(cluster.shipped(None)) == cluster.shipped(None)


def test_a_refusal_reads_as_one_line_that_says_what_to_do(monkeypatch):
    from promptless.distributed import cluster

    class AuthenticationError(Exception):  # Ray's class of that name, as ray.init chains it
        pass

    def chained(inner):
        try:
            try:
                raise inner
            except Exception as error:
                raise RuntimeError("Failed to connect to GCS.\nLast connection error: ...") from error
        except RuntimeError as outer:
            return outer

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    refused = cluster.refusal("10.0.0.5:6379", chained(AuthenticationError("InvalidAuthToken")))
    assert "10.0.0.5:6379" in refused and "RAY_AUTH_MODE=token" in refused and "\n" not in refused
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "refused the token" in cluster.refusal("10.0.0.5:6379", chained(AuthenticationError("x")))
    late = cluster.refusal("10.0.0.5:80", chained(TimeoutError("Timed out while waiting for GCS")))
    assert late.startswith("something listens at 10.0.0.5:80") and "\n" not in late
    other = cluster.refusal("10.0.0.5:6379", RuntimeError("Version mismatch\ndetails"))
    assert other == "could not join the Ray cluster at 10.0.0.5:6379: Version mismatch"


class FakeRay:
    """What ``cluster.connect`` and ``same_cluster`` use of Ray: ``init`` records its options."""

    def __init__(self, gcs_address: str = "") -> None:
        self.options: list[dict] = []
        self.gcs_address = gcs_address

    def init(self, **options):
        self.options.append(options)

    def get_runtime_context(self):
        return self


def test_ray_init_starts_a_cluster_with_cluster_options_and_joins_one_with_the_job_only(monkeypatch):
    import socket

    from promptless.distributed import cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fake = FakeRay()
    cluster.connect(fake, None, {"num_cpus": 2})
    assert fake.options[-1] == {"include_dashboard": False, "configure_logging": False, "num_cpus": 2}
    with socket.socket() as listener:  # something listens: the TCP probe passes (FakeRay has no GCS client)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        cluster.connect(fake, address, {"namespace": "mine"})
    joined = fake.options[-1]
    assert joined == {
        "namespace": "mine",
        "runtime_env": {"py_modules": [cluster.PACKAGE_DIR]},
        "configure_logging": False,
        "address": address,
    }
    with pytest.raises(ClusterError, match=f"no Ray cluster answers at {address}"):
        cluster.connect(fake, address, {})  # the listener is gone
    assert len(fake.options) == 2  # ray.init was not called for it


def test_an_address_other_than_the_connected_clusters_is_refused():
    from promptless.distributed import cluster

    connected = FakeRay(gcs_address="192.0.2.2:6379")
    for same in (None, "auto", "127.0.0.1:6379", "ray://head:10001"):
        cluster.same_cluster(connected, same)
    with pytest.raises(ValueError, match=r"already initialized in this process \(its cluster is at 192.0.2.2:6379\)"):
        cluster.same_cluster(connected, "127.0.0.1:6390")
