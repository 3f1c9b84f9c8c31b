"""``RayExecutor``: map a program over examples on Ray actors, each with its own LM.

The driver (this process) describes the job once (``recipes``), starts the actors on
first use (``ray.init()`` on this machine, or joins the cluster at ``address``: see
``cluster``) and keeps them for later calls, so an optimizer that scores many candidates
loads each worker's model once. It keeps exactly ``threads_per_worker`` examples in flight per actor: a stop (a
fatal error, ``max_errors``, the budget) takes effect within one call per worker.

Results reach ``on_outcome`` in this thread, each example exactly once; usage goes to the
usage tracker in force here, history entries to the driver's LM objects, and a budget in
force is enforced across all workers by one ``BudgetKeeper`` actor and charged here at the
end. A worker that dies has its unfinished examples sent to the others and is replaced
(up to ``max_restarts`` times in all); when none is left, ``WorkersLost`` says how many
examples did not run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptless.distributed.cluster import connect, same_cluster
from promptless.distributed.recipes import JobBuilder, import_ray, pickled
from promptless.distributed.worker import BudgetKeeper, Result, Worker, restored
from promptless.errors import ClusterError, WorkersLost
from promptless.executor import OnOutcome
from promptless.settings import current

log = logging.getLogger("promptless.distributed")

POLL_S = 0.5  # how often on_tick is called while results are awaited
START_TIMEOUT_S = 120.0  # how long new actors may take to answer (CPUs held by other jobs, a runtime_env to build)


@dataclass
class _Slot:
    handle: Any
    in_flight: int = 0
    pid: int = 0
    jobs: set[str] = field(default_factory=set)


class RayExecutor:
    """``RayExecutor()`` on this machine; ``RayExecutor(address="host:port")`` or ``"auto"`` joins a running cluster.

    ``num_workers`` actors (default: one per CPU Ray sees), each ``num_cpus`` CPUs and
    ``threads_per_worker`` examples at a time (1 suits the embedded model, which serializes
    its calls). ``program_factory`` builds a fresh program in a worker when its class cannot
    be called without arguments. ``init`` is passed to ``ray.init``. New actors that have not
    answered after ``start_timeout`` seconds raise ``ClusterError``. The actors live until
    ``close()`` (or the end of a ``with`` block), which also ends this executor's ``ray.init``:
    a cluster it started stops, one it joined keeps running (only this driver leaves it). With
    ``keep_workers=False`` the actors are stopped after each call (what ``executor="ray"`` does).
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        address: str | None = None,
        threads_per_worker: int = 1,
        num_cpus: float = 1,
        program_factory: Callable[[], Any] | None = None,
        max_restarts: int | None = None,
        keep_workers: bool = True,
        init: dict[str, Any] | None = None,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        for name, value in (("num_workers", num_workers), ("max_restarts", max_restarts)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"RayExecutor({name}=) must be a non-negative int or None, got {value!r}")
        if num_workers == 0:
            raise ValueError("RayExecutor(num_workers=0): at least one worker is needed")
        if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
            raise ValueError(f"RayExecutor(threads_per_worker=) must be an int >= 1, got {threads_per_worker!r}")
        if isinstance(start_timeout, bool) or not isinstance(start_timeout, int | float) or not start_timeout > 0:
            raise ValueError(f"RayExecutor(start_timeout=) must be a number of seconds > 0, got {start_timeout!r}")
        self.num_workers = num_workers
        self.address = address
        self.threads_per_worker = threads_per_worker
        self.num_cpus = num_cpus
        self.program_factory = program_factory
        self.max_restarts = max_restarts
        self.keep_workers = keep_workers
        self.init = dict(init or {})
        self.start_timeout = start_timeout
        self.restarts = 0
        self.workers: list[_Slot] = []
        self._started_ray = False  # this executor called ray.init (a cluster of its own, or this driver's job)
        self._lock = threading.Lock()  # one map at a time: the actors' slots are this executor's state

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> RayExecutor:
        """Start Ray (unless it runs already) and the workers; ``map_program`` does this on first use."""
        ray = import_ray()
        if not ray.is_initialized():
            connect(ray, self.address, self.init)
            self._started_ray = True
        elif not self._started_ray:
            same_cluster(ray, self.address)
        cpus = float(ray.cluster_resources().get("CPU", 0))
        wanted = self.num_workers or max(1, int(cpus // max(self.num_cpus, 1e-9)))
        if wanted * self.num_cpus > cpus:  # the actors would wait for CPUs that never come
            raise ValueError(
                f"RayExecutor(num_workers={wanted}, num_cpus={self.num_cpus}) needs {wanted * self.num_cpus:g} CPUs "
                f"and the Ray cluster has {cpus:g}; ask for fewer workers or a smaller num_cpus per worker"
            )
        alive = []
        for slot in self.workers:  # one that died since the last call is replaced (and counted as a restart)
            try:
                slot.pid = ray.get(slot.handle.ping.remote())
                alive.append(slot)
            except ray.exceptions.RayActorError:
                log.warning("Ray worker pid %s died between calls; starting another", slot.pid)
                self.restarts += 1
        self.workers = alive
        while len(self.workers) < wanted:
            self.workers.append(self._spawn())
        try:
            pids = ray.get([slot.handle.ping.remote() for slot in self.workers], timeout=self.start_timeout)
        except ray.exceptions.GetTimeoutError:
            free = float(ray.available_resources().get("CPU", 0))
            self.stop_workers()
            raise ClusterError(
                f"{wanted} Ray workers did not start within {self.start_timeout:g} s (the cluster has {cpus:g} CPUs, "
                f"{free:g} free: other jobs may hold them; `ray status` shows them)"
            ) from None
        for slot, pid in zip(self.workers, pids, strict=True):
            slot.pid = pid
        return self

    def stop_workers(self) -> None:
        """Stop the actors (their CPUs go back to Ray); the next call starts new ones."""
        if self.workers:
            ray = import_ray()
            for slot in self.workers:
                ray.kill(slot.handle)
        self.workers = []

    def close(self) -> None:
        """Stop the workers and end this executor's ``ray.init``: a cluster it joined keeps running."""
        if not self.workers and not self._started_ray:
            return
        ray = import_ray()
        self.stop_workers()
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self) -> _Slot:
        ray = import_ray()
        actor = ray.remote(Worker).options(num_cpus=self.num_cpus, max_concurrency=self.threads_per_worker)
        return _Slot(actor.remote())

    # -- the seam --------------------------------------------------------------------------------------
    def map_program(
        self,
        program: Any,
        examples: Sequence[Any],
        *,
        metric: Callable[[Any, Any], Any] | None = None,
        num_threads: int | None = None,
        on_outcome: OnOutcome,
        stop: threading.Event | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """See ``promptless.executor.Executor``; ``num_threads`` is ignored (``threads_per_worker`` counts)."""
        items = list(examples)
        builder = JobBuilder()
        job = builder.build(program, metric, self.program_factory, current())  # CannotTravel: before any start
        blob = pickled(job)
        if not items:
            return
        with self._lock:
            self.start()
            try:
                _Run(self, items, blob, builder.originals, on_outcome, stop or threading.Event(), on_tick).execute()
            finally:
                if not self.keep_workers:
                    self.stop_workers()


class _Run:
    """One ``map_program`` call: the queue, the slots in flight, the merging of results."""

    def __init__(
        self,
        executor: RayExecutor,
        items: list[Any],
        blob: bytes,
        lms: list[Any],
        on_outcome: OnOutcome,
        stop: threading.Event,
        on_tick: Callable[[], None] | None,
    ) -> None:
        self.ray = import_ray()
        self.executor, self.items, self.on_outcome, self.stop, self.on_tick = executor, items, on_outcome, stop, on_tick
        self.settings = current()
        self.lms_by_model = {lm.model: lm for lm in lms}
        self.job_id = uuid.uuid4().hex
        self.job_ref = self.ray.put(blob)
        self.keeper = self._keeper()
        self.queue: deque[int] = deque(range(len(items)))
        self.in_flight: dict[Any, tuple[_Slot, int]] = {}
        self.finished: set[int] = set()

    def _keeper(self) -> Any:
        budget = self.settings.budget
        if budget is None:
            return None
        calls, tokens = budget.remaining()
        return self.ray.remote(BudgetKeeper).options(num_cpus=0).remote(calls, tokens)

    def execute(self) -> None:
        failure: BaseException | None = None
        try:
            self._prepare(list(self.executor.workers))
            while True:
                if failure is None:
                    self._fill()
                if not self.in_flight:
                    break
                ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    try:
                        self._collect(ref, deliver=failure is None)
                    except BaseException as error:  # on_outcome stopped the run (Module.batch's fatal error)
                        failure = failure or error
                        self.stop.set()
                if self.on_tick is not None:
                    self.on_tick()
                if not self.executor.workers and self.queue and failure is None:
                    failure = WorkersLost(
                        f"every Ray worker died ({self.executor.restarts} restarts used); "
                        f"{len(self.queue)} of {len(self.items)} examples did not run"
                    )
        except BaseException:  # Ctrl-C or a Ray failure: the calls in flight are cancelled, not awaited
            for ref in self.in_flight:
                self.ray.cancel(ref)
            raise
        finally:
            self._settle_budget()
        if failure is not None:
            raise failure

    def _prepare(self, slots: list[_Slot]) -> None:
        """Send the job to ``slots``; one that died since the last call is dropped (and replaced, if allowed)."""
        refs = [slot.handle.prepare.remote(self.job_id, self.job_ref, self.keeper) for slot in slots]
        for slot, ref in zip(slots, refs, strict=True):
            try:
                slot.pid = self._get_all([ref])[0]
            except self.ray.exceptions.RayActorError as error:
                self._drop(slot, error)
                continue
            slot.jobs.add(self.job_id)

    def _get_all(self, refs: list[Any]) -> list[Any]:
        """``ray.get``, with an error a worker raised while preparing shown as itself (a missing model, ...)."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else None
            raise (cause or error) from None

    def _fill(self) -> None:
        per_worker = self.executor.threads_per_worker
        for slot in list(self.executor.workers):
            while not self.stop.is_set() and self.queue and slot.in_flight < per_worker:
                index = self.queue.popleft()
                ref = slot.handle.run.remote(self.job_id, index, self.items[index])
                self.in_flight[ref] = (slot, index)
                slot.in_flight += 1

    def _collect(self, ref: Any, *, deliver: bool) -> None:
        slot, index = self.in_flight.pop(ref)
        slot.in_flight -= 1
        try:
            result: Result = self._get_all([ref])[0]
        except self.ray.exceptions.RayActorError as error:
            self._lost(slot, index, error)
            return
        if index in self.finished or not deliver:
            return
        self.finished.add(index)
        result.outcome.error = restored(result.outcome.error)
        self._merge(result)
        self.on_outcome(index, result.outcome)

    def _lost(self, slot: _Slot, index: int, error: BaseException) -> None:
        """A worker died running ``index``: the example goes back to the front of the queue."""
        if index not in self.finished:
            self.queue.appendleft(index)
        self._drop(slot, error)

    def _drop(self, slot: _Slot, error: BaseException) -> None:
        """Take a dead worker out; start a replacement (prepared with this job) unless the restarts are spent."""
        if slot not in self.executor.workers:
            return
        self.executor.workers.remove(slot)
        log.warning("Ray worker pid %s died (%s); its examples go to the other workers", slot.pid, type(error).__name__)
        limit = self.executor.max_restarts
        if limit is None:
            limit = max(1, self.executor.num_workers or len(self.executor.workers) + 1)
        if self.executor.restarts >= limit or self.stop.is_set():
            return
        self.executor.restarts += 1
        replacement = self.executor._spawn()
        self.executor.workers.append(replacement)
        self._prepare([replacement])  # a replacement that dies at once is dropped the same way

    def _merge(self, result: Result) -> None:
        """The worker's usage into the tracker in force here; its history into the driver's LM of that model."""
        tracker = self.settings.usage_tracker
        hits = result.cache_hits  # a cache hit is recorded under its model too (with no tokens), so one is there
        if tracker is not None:
            for model, used in result.usage.items():
                tracker.add_usage(model, used, hits)
                hits = 0
        for entry in result.history:
            lm = self.lms_by_model.get(entry.model)
            if lm is not None and hasattr(lm, "history"):
                lm.history.append(entry)

    def _settle_budget(self) -> None:
        """What the workers spent, charged to the budget in force here (and its outer budgets)."""
        if self.keeper is None:
            return
        try:
            calls, tokens = self.ray.get(self.keeper.spent.remote(), timeout=30)
            self.settings.budget.absorb(calls, tokens)
        finally:
            self.ray.kill(self.keeper)
