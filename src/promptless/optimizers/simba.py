"""SIMBA: stochastic introspective mini-batch ascent (DSPy's ``SIMBA``), on the shared search machinery.

Each step draws a minibatch of training examples and runs ``num_candidates``
sampled variants of the pool's best programs on every example (temperature 1.0,
a distinct ``rollout_id`` per sample so the LM cache does not collapse them).
Examples whose outcomes vary most are where the program is unsure; for each of
them a new candidate is built from a pool program, either by appending the best
trajectory's steps as demos (``append_a_demo``) or by asking an LM to contrast a
better and a worse trajectory and appending its advice to the instructions
(``append_a_rule``). Candidates are scored on the same minibatch and join the
pool. At the end the pool's best by minibatch average are scored on the full
valset, and ``SearchRun.finish`` chooses honestly against the baseline.

Error contract: a program run that raises scores 0 (up to ``max_errors`` per
step); a rule proposal that fails to parse, or raises any non-fatal error, is
skipped, logged and counted in a report note; errors that ``promptless.errors.cannot_recover`` end the compile.

Resume: the probe, each step's rollouts, each candidate built, each minibatch
score and each finished step are checkpointed, so a restarted compile repeats no
finished proposal or evaluation. ``max_steps`` is not part of the checkpoint's
identity: compiling again with a larger ``max_steps`` continues the search.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict
from typing import Any

from typing_extensions import Unpack

from promptless.errors import cannot_recover
from promptless.evaluate.evaluate import Evaluate, TooManyErrors
from promptless.evaluate.feedback import call_metric
from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.optimizers.base import Metric, Optimizer, check_int, check_trainset
from promptless.optimizers.checkpoint import fingerprint
from promptless.optimizers.plan import Plan, Probe, probe
from promptless.optimizers.search import SearchOptions, SearchRun, search_settings
from promptless.optimizers.simba_steps import (
    Bucket,
    Candidate,
    OfferFeedback,
    Rollout,
    StrategySkipped,
    append_a_demo,
    append_a_rule,
    make_buckets,
    minibatches,
    order_buckets,
    percentile,
    plain,
    program_source,
    softmax_sample,
    top_k_plus_baseline,
)
from promptless.primitives import Example
from promptless.settings import context, current, run_in_context
from promptless.signature import ensure_signature

log = logging.getLogger("promptless.optimizers")


class SIMBA(Optimizer):
    """DSPy's SIMBA: minibatch ascent that learns demos and rules from its own high-variance examples.

    ``bsize`` examples per step (at most the trainset), ``num_candidates`` rollouts
    per example and new candidates per step, ``max_steps`` steps, at most
    ``max_demos`` demos per predictor (0: rules only). ``temperature_for_sampling``
    and ``temperature_for_candidates`` are the softmax temperatures for picking
    the program to roll out and the program to build a candidate from.
    ``prompt_model`` writes the rules (default: the LM in force).
    """

    def __init__(
        self,
        metric: Metric,
        bsize: int = 32,
        num_candidates: int = 6,
        max_steps: int = 8,
        max_demos: int = 4,
        temperature_for_sampling: float = 0.2,
        temperature_for_candidates: float = 0.2,
        *,
        demo_input_field_maxlen: int | None = 100_000,
        prompt_model: Any = None,
        **search: Unpack[SearchOptions],
    ) -> None:
        if not callable(metric):
            raise TypeError(f"SIMBA(metric=) must be callable, got {metric!r}")
        check_int("SIMBA", "bsize", bsize, 1)
        check_int("SIMBA", "num_candidates", num_candidates, 1)
        check_int("SIMBA", "max_steps", max_steps, 0)
        check_int("SIMBA", "max_demos", max_demos, 0)
        if demo_input_field_maxlen is not None:
            check_int("SIMBA", "demo_input_field_maxlen", demo_input_field_maxlen, 1)
        for name, value in (
            ("temperature_for_sampling", temperature_for_sampling),
            ("temperature_for_candidates", temperature_for_candidates),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"SIMBA({name}=) must be a number > 0, got {value!r}")
        if prompt_model is not None and not callable(prompt_model):
            raise TypeError(f"SIMBA(prompt_model=) must be an LM or None, got {prompt_model!r}")
        self.metric = metric
        self.bsize, self.num_candidates, self.max_steps, self.max_demos = bsize, num_candidates, max_steps, max_demos
        self.temperature_for_sampling = float(temperature_for_sampling)
        self.temperature_for_candidates = float(temperature_for_candidates)
        self.demo_input_field_maxlen = demo_input_field_maxlen
        self.prompt_model = prompt_model
        self.settings = search_settings("SIMBA", search)

    @property
    def strategies(self) -> list[str]:
        return ["demo", "rule"] if self.max_demos > 0 else ["rule"]

    # -- forecast -----------------------------------------------------------------------------------
    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """What a compile will spend: probe, baseline, per step rollouts + rule calls + minibatch evals, finals."""
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        return self._plan_from(probe(student, train, self.metric), len(train), len(val))

    def _plan_from(self, measured: Probe, train_size: int, val_size: int) -> Plan:
        bsize, per_step = min(self.bsize, train_size), self.num_candidates
        finals = min(self.num_candidates, self.max_steps * per_step)
        phases = {
            "probe": measured.runs,
            "baseline": val_size,
            "rollouts": self.max_steps * bsize * self.num_candidates,
            "minibatch evals": self.max_steps * per_step * bsize,
            "final evals": finals * val_size,
        }
        rule_calls = math.ceil(self.max_steps * per_step / len(self.strategies))  # expected: strategies are drawn
        return Plan.from_probe("SIMBA", phases, measured, proposer_calls=rule_calls)

    # -- compile ------------------------------------------------------------------------------------
    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        if not isinstance(student, Module) or not student.named_predictors():
            raise ValueError(f"SIMBA needs a program with at least one Predict to optimise, got {student!r}")
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        notes = []
        if valset is None:
            notes.append("no valset given: candidates were chosen on the trainset they learned from (optimistic)")
        if teacher is not None:
            notes.append("SIMBA learns from the student's own rollouts; the teacher was not used")
        if self.bsize > len(train):
            notes.append(f"bsize={self.bsize} is larger than the trainset: minibatches of {len(train)}")
        identity = {
            "bsize": self.bsize,
            "num_candidates": self.num_candidates,
            "max_demos": self.max_demos,
            "temperatures": [self.temperature_for_sampling, self.temperature_for_candidates],
            "demo_input_field_maxlen": self.demo_input_field_maxlen,
            "prompt_model": getattr(self.prompt_model, "model", None),
            "trainset": fingerprint([[ex.toDict(), sorted(ex.input_keys or ())] for ex in train]),
        }
        # The baseline SearchRun may return, and the root of every candidate: never the caller's object.
        run = SearchRun(
            "SIMBA", student.deepcopy(), self.metric, val, self.settings, testset=testset, identity=identity
        )
        search = _Search(self, run, train, len(val))
        with run:
            search.forecast()
            run.score_baseline()
            search.ascend()
            search.score_finalists()
        return run.finish([*notes, *search.notes()])


class _BudgetReserve(Exception):
    """Another step would leave too little budget for the final evaluation."""


class _Search:
    """One compile's pool, steps and bookkeeping (the optimizer itself holds only settings)."""

    def __init__(self, optimizer: SIMBA, run: SearchRun, train: list[Example], val_size: int) -> None:
        self.opt, self.run, self.train, self.val_size = optimizer, run, train, val_size
        self.student = run.student
        self.bsize = min(optimizer.bsize, len(train))
        self.batches = minibatches(len(train), self.bsize, optimizer.max_steps, optimizer.settings.seed)
        self.pool = [Candidate("baseline", self.student, _digest(self.student))]
        # The docstring's continuation lines are indented; the prompt needs none of that whitespace.
        self.advisor = Predict(ensure_signature(OfferFeedback, inspect.cleandoc(OfferFeedback.instructions)))
        first_lm = next((p.lm for p in self.student.predictors() if p.lm is not None), None)
        self.advisor_lm = optimizer.prompt_model or current().lm or first_lm  # DSPy: prompt_model or settings.lm
        self.program_code = program_source(self.student)
        self.threads = max(1, optimizer.settings.num_threads or current().num_threads)
        self.evaluate = Evaluate(
            [], optimizer.metric, num_threads=self.threads, max_errors=optimizer.settings.max_errors
        )
        self.step_notes: list[str] = []
        self.outcomes: Counter[str] = Counter()
        self.finalists: list[str] = []

    # -- phases --------------------------------------------------------------------------------------
    def forecast(self) -> None:
        """Probe (or recall the probe of an interrupted run) and put the plan in the report."""
        stored = self.run.recall("probe")
        if stored is not None:
            measured = Probe(**stored)
        else:
            measured = probe(self.student, self.train, self.opt.metric)
            if not measured.errors:  # a probe cut short (e.g. by the budget) is not worth keeping
                self.run.remember("probe", asdict(measured))
        plan = self.opt._plan_from(measured, len(self.train), self.val_size)
        self.run.report.forecast = plan
        log.info("%s", plan.summary())

    def ascend(self) -> None:
        for step in range(self.opt.max_steps):
            try:
                self.step(step)
            except _BudgetReserve as stop:
                self.run.report.stopped_by_budget = str(stop)
                self.step_notes.append(str(stop))
                log.info("SIMBA: %s", stop)
                return

    def score_finalists(self) -> None:
        """The pool's best by minibatch average (distinct programs, not the baseline) on the full valset."""
        ranked = sorted(range(1, len(self.pool)), key=lambda i: self.pool[i].average, reverse=True)
        seen, finalists = {self.pool[0].digest}, []
        for i in ranked:
            if self.pool[i].digest not in seen and len(finalists) < self.opt.num_candidates:
                seen.add(self.pool[i].digest)
                finalists.append(self.pool[i])
        for candidate in finalists:
            self.run.score(candidate.name, candidate.program)
            self.finalists.append(candidate.name)

    def notes(self) -> list[str]:
        out = list(self.step_notes)
        if self.outcomes:
            counts = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items()))
            out.append(f"strategy outcomes over all steps: {counts}")
        if self.outcomes["rule failed"]:
            failed = self.outcomes["rule failed"]
            out.append(f"{failed} rule proposal(s) failed (unparseable advice or an error) and were skipped")
        if self.finalists:
            out.append(f"scored on the full valset (best by minibatch average): {', '.join(self.finalists)}")
        return out

    # -- one step ------------------------------------------------------------------------------------
    def step(self, step: int) -> None:
        record = self.run.recall(f"step {step}")
        if record is None:
            self._check_reserve(step)
            record = self._run_step(step)
            self.run.remember(f"step {step}", record)
        for entry in record["candidates"]:
            self.pool.append(Candidate(entry["name"], self._program(entry["state"]), entry["digest"], entry["scores"]))
        self.step_notes.append(record["note"])
        self.outcomes.update(record["outcomes"])

    def _run_step(self, step: int) -> dict[str, Any]:
        opt, batch = self.opt, [self.train[i] for i in self.batches[step]]
        rng = random.Random(f"simba/{opt.settings.seed}/{step}")
        averages = [c.average for c in self.pool]
        top = top_k_plus_baseline(averages, opt.num_candidates)
        assignments = [
            (position, softmax_sample(rng, top, averages, opt.temperature_for_sampling), r)
            for r in range(opt.num_candidates)
            for position in range(len(batch))
        ]
        stored = self.run.recall(f"step {step} buckets")
        if stored is None:
            buckets = make_buckets(self._rollouts(step, batch, assignments))
            self.run.remember(f"step {step} buckets", [asdict(b) for b in buckets])
        else:
            buckets = [Bucket.from_dict(b) for b in stored]
        all_scores = [s for b in buckets for s in b.scores]
        p10, p90 = percentile(all_scores, 10), percentile(all_scores, 90)
        ordered = order_buckets(buckets)
        built, outcomes = [], Counter[str]()
        for i, bucket in enumerate(ordered):
            if len(built) >= opt.num_candidates:
                break
            source = softmax_sample(rng, top, averages, opt.temperature_for_candidates)
            strategy = rng.choice(opt.strategies)
            key = f"step {step} bucket {i}"
            outcome = self.run.recall(key)
            if outcome is None:
                outcome = self._build(strategy, source, bucket, batch[bucket.example], p10, p90)
                self.run.remember(key, outcome)
            outcomes[outcome["outcome"]] += 1
            if outcome["state"] is not None:
                built.append(outcome)
        candidates = []
        for k, outcome in enumerate(built):
            program = self._program(outcome["state"])
            digest = _digest(program)
            name = f"s{step + 1}.{k + 1} {outcome['strategy']} {digest[:8]}"
            scores = self._minibatch_scores(f"step {step} eval {name}", program, batch)
            candidates.append({"name": name, "digest": digest, "state": outcome["state"], "scores": scores})
        best = max((sum(c["scores"]) / len(c["scores"]) for c in candidates), default=None)
        spreads = [b.spread for b in buckets]
        note = (
            f"step {step + 1}: {len(batch)} examples x {opt.num_candidates} rollouts, mean "
            f"{sum(all_scores) / len(all_scores):.3f}; spread max {max(spreads):.2f}, mean "
            f"{sum(spreads) / len(spreads):.2f}, {sum(s > 0 for s in spreads)} examples varied; "
            f"strategies: {', '.join(f'{n} {w}' for w, n in sorted(outcomes.items())) or 'none'}; "
            f"best new candidate minibatch score: {'-' if best is None else f'{best:.3f}'}"
        )
        log.info("SIMBA %s", note)
        return {"candidates": candidates, "note": note, "outcomes": dict(outcomes)}

    def _check_reserve(self, step: int) -> None:
        """Stop before a step whose cost would leave too little budget to score the finalists."""
        budget, plan = self.run.budget, self.run.report.forecast
        if budget.max_lm_calls is None and budget.max_tokens is None:
            return
        per_run = plan.calls_per_run if plan is not None else 1.0
        step_calls = math.ceil(2 * self.bsize * self.opt.num_candidates * per_run) + self.opt.num_candidates
        finalists = min(self.opt.num_candidates, len(self.pool) - 1 + self.opt.num_candidates)
        needed = step_calls + math.ceil(finalists * self.val_size * per_run)
        why = f"stopped before step {step + 1} of {self.opt.max_steps}: it and the final evaluation need ~{needed} "
        if budget.max_lm_calls is not None and budget.lm_calls + needed > budget.max_lm_calls:
            raise _BudgetReserve(why + f"LM calls, {budget.max_lm_calls - budget.lm_calls} left of max_lm_calls")
        tokens_per_call = sum(plan.tokens_per_call) if plan is not None else 0.0
        if budget.max_tokens is not None and budget.tokens + needed * tokens_per_call > budget.max_tokens:
            raise _BudgetReserve(why + f"calls (~{needed * tokens_per_call:.0f} tokens), more than max_tokens leaves")

    def _rollouts(self, step: int, batch: list[Example], assignments: list[tuple[int, int, int]]) -> list[Rollout]:
        """Run every (example, program, sample) in threads; results in assignment order, whatever the timing."""
        copies: dict[tuple[int, int], Module] = {}
        jobs = []
        for position, index, r in assignments:
            rollout_id = 1 + step * self.opt.num_candidates + r
            if (index, rollout_id) not in copies:
                copies[(index, rollout_id)] = _sampling_copy(self.pool[index].program, rollout_id)
            jobs.append((copies[(index, rollout_id)], batch[position], position, index, rollout_id))
        pool = ThreadPoolExecutor(max_workers=self.threads)
        try:
            futures = [pool.submit(run_in_context(self._rollout), *job) for job in jobs]
            rollouts = [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # also on Ctrl-C: start nothing more
        errors = [r for r in rollouts if r.error is not None]
        limit = self.opt.settings.max_errors
        if limit is not None and len(errors) > limit:
            raise TooManyErrors(
                f"{len(errors)} rollouts failed in step {step + 1} (max_errors={limit}); last: {errors[-1].error}"
            )
        return rollouts

    def _rollout(self, program: Module, example: Example, position: int, index: int, rollout_id: int) -> Rollout:
        names = {id(p): name for name, p in program.named_predictors()}
        trace: list[Any] = []
        outputs, error, score = None, None, 0.0
        try:
            with context(trace=trace):
                prediction = program(**example.inputs())
            outputs = plain(prediction.toDict() if isinstance(prediction, Example) else {"output": prediction})
            score = float(call_metric(self.opt.metric, example, prediction) or 0.0)
        except Exception as failure:  # scored as a failure; its partial trace is still worth learning from
            if cannot_recover(failure):
                raise
            error = f"{type(failure).__name__}: {failure}"
            log.debug("SIMBA rollout on example %d failed: %s", position, error)
        steps = [
            {"module": names[id(s.predictor)], "inputs": plain(s.inputs), "outputs": plain(s.outputs.toDict())}
            for s in trace
            if id(s.predictor) in names
        ]
        return Rollout(position, index, rollout_id, score, steps, outputs, error)

    def _build(
        self, strategy: str, source: int, bucket: Bucket, example: Example, p10: float, p90: float
    ) -> dict[str, Any]:
        """Apply one strategy to a copy of pool program ``source``: the new state, or why there is none."""
        program = self.pool[source].program.deepcopy()
        outcome: dict[str, Any] = {"strategy": strategy, "source": source, "state": None}
        try:
            if strategy == "demo":
                detail = append_a_demo(
                    program, bucket, max_demos=self.opt.max_demos, maxlen=self.opt.demo_input_field_maxlen, p10=p10
                )
            else:
                with context(lm=self.advisor_lm) if self.advisor_lm is not None else nullcontext():
                    detail = append_a_rule(
                        program,
                        bucket,
                        advisor=self.advisor,
                        program_code=self.program_code,
                        example=example,
                        p10=p10,
                        p90=p90,
                    )
        except StrategySkipped as skipped:
            log.info("SIMBA %s skipped: %s", strategy, skipped)
            return {**outcome, "outcome": f"{strategy} skipped", "detail": str(skipped)}
        except Exception as failure:  # ParseError from the advisor, or anything else a proposal may raise
            if cannot_recover(failure):
                raise
            log.warning("SIMBA rule proposal failed, skipped: %s: %s", type(failure).__name__, failure)
            return {**outcome, "outcome": f"{strategy} failed", "detail": f"{type(failure).__name__}: {failure}"}
        return {**outcome, "outcome": f"{strategy} applied", "detail": detail, "state": program.dump_state()}

    def _minibatch_scores(self, key: str, program: Module, batch: list[Example]) -> list[float]:
        stored = self.run.recall(key)
        if stored is not None:
            return list(stored)
        scores = self.evaluate(program, devset=batch).scores
        self.run.remember(key, scores)
        return scores

    def _program(self, state: dict[str, Any]) -> Module:
        """A pool program from its JSON state, so a resumed run holds exactly what an uninterrupted one does."""
        program = self.student.deepcopy()
        program.load_state(state)
        return program


def _sampling_copy(program: Module, rollout_id: int) -> Module:
    """A copy that samples at temperature 1.0 under its own ``rollout_id`` (a distinct cache key)."""
    copy = program.deepcopy()
    for predictor in copy.predictors():
        predictor.config = {**predictor.config, "temperature": 1.0, "rollout_id": rollout_id}
    return copy


def _digest(program: Module) -> str:
    return fingerprint(program.dump_state()["predictors"])
