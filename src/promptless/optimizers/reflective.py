"""GEPA: evolve each predictor's instruction by reflecting on traced failures, keeping a per-example Pareto pool.

One iteration (Agrawal et al. 2025, "GEPA: Reflective Prompt Evolution Can Outperform Reinforcement Learning"):

1. a parent is drawn from the candidates that are best on at least one valset
   example, in proportion to how many examples each one is best on;
2. one of its predictors is picked, round robin per candidate (a child goes on from its parent's turn);
3. the parent runs on a minibatch of ``reflection_minibatch_size`` training examples
   with a trace; the metric gives each example a score and, ideally, feedback text;
4. the reflection LM reads that predictor's inputs, outputs and feedback and writes
   a new instruction for it (a typed ``Predict``, so the adapters parse it);
5. the child runs on the same minibatch; only if its total is higher is it scored on
   the full valset (eligible to be returned) and added to the pool.

After an accepted proposal a *merge* is due (``use_merge``, at most
``max_merge_invocations``): two front candidates that descend from a common
ancestor are combined by taking, per predictor, the instruction from whichever
changed it; the merge is screened on a few valset examples and, if no worse than
both parents there, scored in full.

Budget, as in DSPy: ``auto`` sets ``max_metric_calls`` (program runs on an example)
with DSPy's own formula (``auto_budget``: light/medium/heavy = 6/12/18 candidates,
priced at DSPy's assumed 35-example minibatches, so with the default 3-example
minibatches the same number buys more iterations than the name suggests);
``max_full_evals=k`` means ``k * (len(trainset) + len(valset given))`` runs;
``max_metric_calls`` is taken as is; ``max_iterations`` caps the loop. An iteration
starts only while runs so far are below the limit. ``max_lm_calls``/``max_tokens`` are
enforced at the LM seam and end the search wherever it is.

Resume: the pool (instructions per predictor, parents, per-example valset scores),
the iteration number and the merge bookkeeping are checkpointed after every
iteration, and each LM-dependent step (the traced parent run, the proposal, the
child run; full and subset scores through ``SearchRun``) as it finishes. Every
iteration draws from ``Random(seed, iteration)``, so a restarted compile makes the
same choices and repeats no finished proposal or evaluation. The stopping knobs are
not part of the checkpoint's identity: a run stopped by its budget can be resumed
with a larger one.

Error contract: an example whose program or metric raises scores 0 (its error is
shown to the reflection LM as the step's output); a proposal that fails to parse or
raises is skipped, logged and counted; ``FATAL_ERRORS`` end the compile.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import math
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from typing_extensions import Unpack

from promptless.evaluate.feedback import FeedbackMetric
from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.optimizers.base import FATAL_ERRORS, Metric, Optimizer, check_int, check_trainset
from promptless.optimizers.checkpoint import fingerprint
from promptless.optimizers.pareto import best_by_mean, find_merge, merge_subsample, pareto_members, select_from_front
from promptless.optimizers.plan import Plan, Probe, probe
from promptless.optimizers.search import BASELINE, SearchOptions, SearchRun, search_settings
from promptless.primitives import Example
from promptless.settings import context, current, run_in_context
from promptless.signature import InputField, OutputField, Signature, ensure_signature
from promptless.trace import TraceStep

log = logging.getLogger("promptless.optimizers")

AUTO_CANDIDATES = {"light": 6, "medium": 12, "heavy": 18}  # DSPy's AUTO_RUN_SETTINGS
MERGE_SUBSAMPLE = 5  # valset examples a merge is screened on (GEPA's default)
VALUE_CHARS = 1500  # longest input/output value shown to the reflection LM, so small contexts still fit


class ProposeInstruction(Signature):
    """You improve the instruction of one step of a language-model program.

    You are given the instruction the step follows now, and examples of what the step
    was given, what it answered, and feedback on how the whole program did (failures
    first). Work out what the task is and what the inputs look like, find what went
    wrong and why, and write a new instruction that keeps what works, fixes those
    mistakes, and states any facts or strategies the feedback reveals. The new
    instruction must stand on its own: the step will see it without these examples."""

    current_instruction: str = InputField(desc="the instruction the step follows now")
    examples_with_feedback: str = InputField(desc="inputs, outputs and feedback of recent runs of the step")
    new_instruction: str = OutputField(desc="the improved instruction, complete and self-contained")


# The class keeps its docstring's indentation on Python < 3.13; the prompt gets it dedented.
PROPOSER = ensure_signature(ProposeInstruction, inspect.cleandoc(ProposeInstruction.__doc__ or ""))


class GEPA(Optimizer):
    """Reflective instruction evolution with a per-example Pareto pool (see the module docstring).

    ``metric(gold, pred, trace=None)`` may return a number, a bool, or a score with
    feedback (``promptless.evaluate.feedback.ScoreWithFeedback``, a dict with
    ``score``/``feedback``, or an object with those attributes). A metric that also
    accepts ``(pred_name, pred_trace)`` is asked for feedback on the predictor being
    improved, as in DSPy. ``reflection_lm`` (DSPy's name; ``prompt_model`` is the
    same thing) writes the new instructions; default: the LM in force, else the
    student's own. ``max_iterations`` (not in DSPy) caps the loop, alone or with one of
    ``auto``/``max_full_evals``/``max_metric_calls``. ``max_errors`` applies to valset
    evaluations; a minibatch example that raises just scores 0. Only instructions
    change: the student's demos are kept as they are.
    """

    def __init__(
        self,
        metric: Metric,
        *,
        auto: Literal["light", "medium", "heavy"] | None = None,
        max_full_evals: int | None = None,
        max_metric_calls: int | None = None,
        max_iterations: int | None = None,
        reflection_minibatch_size: int = 3,
        candidate_selection_strategy: Literal["pareto", "current_best"] = "pareto",
        reflection_lm: Any = None,
        skip_perfect_score: bool = True,
        perfect_score: float = 1.0,
        use_merge: bool = True,
        max_merge_invocations: int = 5,
        prompt_model: Any = None,
        **search: Unpack[SearchOptions],
    ) -> None:
        if not callable(metric):
            raise TypeError(f"GEPA(metric=) must be callable, got {metric!r}")
        if auto is not None and auto not in AUTO_CANDIDATES:
            raise ValueError(f"GEPA(auto=) must be one of {sorted(AUTO_CANDIDATES)} or None, got {auto!r}")
        budgets = {"auto": auto, "max_full_evals": max_full_evals, "max_metric_calls": max_metric_calls}
        chosen = {k: v for k, v in budgets.items() if v is not None}
        if len(chosen) > 1:
            raise ValueError(f"GEPA: set at most one of auto, max_full_evals, max_metric_calls; got {chosen}")
        if not chosen and max_iterations is None:
            raise ValueError(
                "GEPA needs a budget: auto='light'|'medium'|'heavy', max_full_evals=, max_metric_calls= "
                "or max_iterations= (all were None)"
            )
        for name, value, minimum in (
            ("max_full_evals", max_full_evals, 1),
            ("max_metric_calls", max_metric_calls, 1),
            ("max_iterations", max_iterations, 1),
        ):
            check_int("GEPA", name, value, minimum, optional=True)
        check_int("GEPA", "reflection_minibatch_size", reflection_minibatch_size, 1)
        check_int("GEPA", "max_merge_invocations", max_merge_invocations, 0)
        if candidate_selection_strategy not in ("pareto", "current_best"):
            raise ValueError(
                f"GEPA(candidate_selection_strategy=) must be 'pareto' or 'current_best', "
                f"got {candidate_selection_strategy!r}"
            )
        if isinstance(perfect_score, bool) or not isinstance(perfect_score, (int, float)):
            raise TypeError(f"GEPA(perfect_score=) must be a number, got {perfect_score!r}")
        if reflection_lm is not None and prompt_model is not None and reflection_lm is not prompt_model:
            raise ValueError("GEPA: reflection_lm and prompt_model name the same LM; pass one of them, not both")
        self.metric = metric
        self.auto, self.max_full_evals, self.max_metric_calls = auto, max_full_evals, max_metric_calls
        self.max_iterations = max_iterations
        self.reflection_minibatch_size = reflection_minibatch_size
        self.candidate_selection_strategy = candidate_selection_strategy
        self.reflection_lm = reflection_lm if reflection_lm is not None else prompt_model
        self.skip_perfect_score = skip_perfect_score
        self.perfect_score = float(perfect_score)
        self.use_merge = use_merge
        self.max_merge_invocations = max_merge_invocations
        self.settings = search_settings("GEPA", search)
        self.scorer = FeedbackMetric(metric)  # every form of result read as a float, or with feedback

    # -- budget ----------------------------------------------------------------------------------
    @staticmethod
    def auto_budget(num_preds: int, num_candidates: int, valset_size: int, minibatch_size: int = 35) -> int:
        """DSPy's ``GEPA.auto_budget``: program runs for ``auto=`` (full evals every 5 trials)."""
        trials = int(max(2 * (num_preds * 2) * math.log2(num_candidates), 1.5 * num_candidates))
        total = valset_size + num_candidates * 5 + trials * minibatch_size
        if trials == 0:
            return total
        return total + ((trials + 1) // 5 + 1 + (1 if trials < 5 else 0)) * valset_size

    def metric_call_limit(self, num_preds: int, train_size: int, val_size: int, val_given: bool) -> int | None:
        """The program-run budget the settings stand for (None: only ``max_iterations`` stops the loop)."""
        if self.auto is not None:
            return self.auto_budget(num_preds, AUTO_CANDIDATES[self.auto], val_size)
        if self.max_full_evals is not None:
            return self.max_full_evals * (train_size + (val_size if val_given else 0))
        return self.max_metric_calls

    # -- forecast --------------------------------------------------------------------------------
    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """Forecast LM calls, probing the student on up to 3 training examples (real calls)."""
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        return self._forecast(student, train, val, valset is not None, probe(student, train, self.scorer))

    def _forecast(
        self, student: Module, train: list[Example], val: list[Example], val_given: bool, measured: Probe
    ) -> Plan:
        v, batch = len(val), min(self.reflection_minibatch_size, len(train))
        limit = self.metric_call_limit(len(student.named_predictors()), len(train), v, val_given)
        screening = max(2 * batch, min(MERGE_SUBSAMPLE, v) if self.use_merge else 0)
        iterations, runs = 0, v
        while (self.max_iterations is None or iterations < self.max_iterations) and (limit is None or runs < limit):
            iterations, runs = iterations + 1, runs + screening + v
        bound = "an upper bound for" if limit is None else "counted for"  # fixed iterations: fewer runs if rejected
        note = (
            f"{bound} {iterations} iterations, as if every proposal were accepted and scored on the full valset "
            f"(a rejected one costs {2 * batch} program runs, not {screening + v})"
        )
        if limit is not None:
            most = max(iterations, -(-(limit - v) // max(1, 2 * batch)))  # every proposal rejected: cheapest
            note += (
                f"; program runs stop at max_metric_calls={limit} (+ at most one iteration), so cheaper rejected "
                f"proposals buy more iterations: up to {most} proposer calls instead of {iterations}"
            )
        phases = {"probe": measured.runs, "baseline": v, "minibatches": iterations * screening}
        return Plan.from_probe(
            "GEPA", {**phases, "full evals": iterations * v}, measured, proposer_calls=iterations, note=note
        )

    # -- compile ---------------------------------------------------------------------------------
    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        if teacher is not None:
            raise ValueError("GEPA does not use a teacher program (it evolves the student's own instructions)")
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        if not student.named_predictors():
            raise ValueError(f"GEPA: the student {type(student).__name__} has no Predict modules to optimize")
        identity = {
            "reflection_minibatch_size": self.reflection_minibatch_size,
            "candidate_selection_strategy": self.candidate_selection_strategy,
            "skip_perfect_score": self.skip_perfect_score,
            "perfect_score": self.perfect_score,
            "use_merge": self.use_merge,
            "max_merge_invocations": self.max_merge_invocations,
            "trainset": fingerprint([example.toDict() for example in train]),
            "reflection_lm": getattr(self.reflection_lm, "model", None),
        }
        run = SearchRun("GEPA", student, self.scorer, val, self.settings, testset=testset, identity=identity)
        search = _Evolution(self, run, student, train)
        with run:
            stored = run.recall("probe")
            measured = Probe(**stored) if stored is not None else probe(student, train, self.scorer)
            if stored is None:
                run.remember("probe", vars(measured))
            run.report.forecast = self._forecast(student, train, val, valset is not None, measured)
            limit = self.metric_call_limit(len(search.names), len(train), len(val), valset is not None)
            search.evolve(limit)
        notes = search.notes()
        if valset is None:
            notes.append("no valset given: the Pareto front and the choice used the trainset (optimistic)")
        return run.finish(notes)


Reflective = GEPA


# -- one compile's search ------------------------------------------------------------------------------
@dataclass
class _Rollout:
    scores: list[float]
    records: list[dict[str, Any]]


class _Evolution:
    """The mutable state of one compile: the pool, the counters, and the steps of each iteration."""

    def __init__(self, optimizer: GEPA, run: SearchRun, student: Module, train: list[Example]) -> None:
        self.opt, self.run, self.student, self.train = optimizer, run, student, train
        self.names = [name for name, _ in student.named_predictors()]
        self.seed = run.settings.seed
        self.reflection = _reflection_settings(optimizer.reflection_lm, student)
        self.state: dict[str, Any] = {}
        self.limit: int | None = None

    # -- the loop ----------------------------------------------------------------------------------
    def evolve(self, limit: int | None) -> None:
        self.limit = limit
        self._restore()
        while not self._done():
            i = self.state["iteration"]
            self._iterate(i, random.Random(f"gepa:{self.seed}:{i}"))
            self.state["iteration"] = i + 1
            self.run.remember("state", copy.deepcopy(self.state))
            log.info("GEPA iteration %d: pool %d, %d program runs", i, len(self.pool), self.state["metric_calls"])

    def _done(self) -> bool:
        if self.opt.max_iterations is not None and self.state["iteration"] >= self.opt.max_iterations:
            return True
        return self.limit is not None and self.state["metric_calls"] >= self.limit

    @property
    def pool(self) -> list[dict[str, Any]]:
        return self.state["pool"]

    def _restore(self) -> None:
        """A fresh pool holding the student, or the checkpointed one with its scores registered again."""
        stored = self.run.recall("state")
        if stored is None:
            baseline = self.run.score_baseline()
            seed = {name: p.signature.instructions for name, p in self.student.named_predictors()}
            self.state = {
                "iteration": 0,
                "metric_calls": len(baseline.scores),
                "pool": [{"name": BASELINE, "instructions": seed, "parents": [], "scores": baseline.scores, "next": 0}],
                "merge": {"due": 0, "fresh": False, "tried": [], "attempts": 0, "accepted": 0},
                "counts": {"accepted": 0, "rejected": 0, "skipped": 0, "failed": 0, "unchanged": 0},
            }
            self.run.remember("state", copy.deepcopy(self.state))
            return
        self.state = copy.deepcopy(stored)
        self.run.score_baseline()
        for candidate in self.pool[1:]:  # checkpointed scores: no LM call, but eligible for finish() again
            self.run.score(candidate["name"], self._build(candidate["instructions"]))

    def _iterate(self, i: int, rng: random.Random) -> None:
        merge = self.state["merge"]
        due = self.opt.use_merge and merge["due"] > 0 and merge["fresh"]
        merge["fresh"] = False
        if due and merge["attempts"] < self.opt.max_merge_invocations and self._merge(i, rng):
            return
        self._reflect(i, rng)

    # -- reflective mutation -----------------------------------------------------------------------
    def _reflect(self, i: int, rng: random.Random) -> None:
        counts, scores = self.state["counts"], [c["scores"] for c in self.pool]
        if self.opt.candidate_selection_strategy == "pareto":
            parent_id = select_from_front(scores, rng)
        else:
            parent_id = best_by_mean(scores)
        parent = self.pool[parent_id]
        name = self.names[parent["next"] % len(self.names)]
        parent["next"] += 1
        batch = self._minibatch(i)
        before = self._memo(f"iter {i} parent", lambda: vars(self._rollout(parent["instructions"], batch, name)))
        self.state["metric_calls"] += len(batch)
        if self.opt.skip_perfect_score and all(s >= self.opt.perfect_score for s in before["scores"]):
            counts["skipped"] += 1
            return
        current_text = parent["instructions"][name]
        proposal = self._memo(f"iter {i} proposal", lambda: self._propose(current_text, before["records"]))
        if proposal["text"] is None:
            counts["failed"] += 1
            return
        if proposal["text"] == current_text:
            counts["unchanged"] += 1
            return
        child = {**parent["instructions"], name: proposal["text"]}
        after = self._memo(f"iter {i} child", lambda: {"scores": self._rollout(child, batch).scores})
        self.state["metric_calls"] += len(batch)
        if sum(after["scores"]) <= sum(before["scores"]):
            counts["rejected"] += 1
            log.info("GEPA iteration %d: proposal for %s not better on the minibatch", i, name)
            return
        counts["accepted"] += 1
        self._add(child, [parent_id], f"parent {parent_id}, mutated {name}")
        merge = self.state["merge"]
        if self.opt.use_merge and merge["attempts"] + merge["due"] < self.opt.max_merge_invocations:
            merge["due"] += 1
        merge["fresh"] = True

    def _minibatch(self, i: int) -> list[int]:
        """Training indices for iteration ``i``: consecutive slices of a fresh shuffle per epoch."""
        n = len(self.train)
        size = min(self.opt.reflection_minibatch_size, n)
        indices = []
        for k in range(i * size, (i + 1) * size):
            epoch, position = divmod(k, n)
            order = list(range(n))
            random.Random(f"gepa:{self.seed}:epoch:{epoch}").shuffle(order)
            indices.append(order[position])
        return indices

    def _rollout(self, instructions: dict[str, str], batch: list[int], target: str | None = None) -> _Rollout:
        """Run a candidate on training examples; with ``target``, also collect that predictor's reflection records."""
        program = self._build(instructions)
        examples = [self.train[j] for j in batch]
        one = functools.partial(self._run_one, program, target)
        threads = max(1, min(len(batch), self.run.settings.num_threads or current().num_threads))
        if threads == 1:  # in order, in this thread: a crash stops at once, with nothing run after it
            results = [one(example) for example in examples]
        else:
            pool = ThreadPoolExecutor(max_workers=threads)
            try:
                results = list(pool.map(run_in_context(one), examples))
            finally:  # on a fatal error or Ctrl-C, examples not started yet are not run
                pool.shutdown(wait=True, cancel_futures=True)
        return _Rollout([score for score, _ in results], [record for _, record in results if record is not None])

    def _run_one(self, program: Module, target: str | None, example: Example) -> tuple[float, dict[str, Any] | None]:
        trace: list[TraceStep] = []
        predictor = dict(program.named_predictors()).get(target) if target is not None else None
        try:
            with context(trace=trace):
                prediction = program(**example.inputs())
        except FATAL_ERRORS:
            raise
        except Exception as error:
            log.debug("GEPA rollout raised %r", error)
            if target is None:
                return 0.0, None
            steps = [s for s in trace if s.predictor is predictor]
            inputs = steps[0].inputs if steps else dict(example.inputs().items())
            outputs = {"error": f"{type(error).__name__}: {error}"}
            feedback = f"The program raised {type(error).__name__} on this example, so it scored 0."
            return 0.0, _record(inputs, outputs, 0.0, feedback)
        steps = [s for s in trace if s.predictor is predictor]
        try:
            score, feedback = self.opt.scorer.judge(example, prediction, trace, target, steps)
        except FATAL_ERRORS:
            raise
        except Exception as error:
            log.debug("GEPA metric raised %r", error)
            score, feedback = 0.0, f"The metric raised {type(error).__name__}: {error}"
        if target is None:
            return score, None
        if steps:
            inputs, outputs = steps[0].inputs, steps[0].outputs.toDict()
        else:
            inputs, outputs = dict(example.inputs().items()), {"note": f"the step {target!r} did not run"}
        return score, _record(inputs, outputs, score, feedback or f"This trajectory got a score of {score:g}.")

    def _propose(self, current_text: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Ask the reflection LM for a new instruction; a failure is recorded, never raised (unless fatal)."""
        failing = [r for r in records if r["score"] < self.opt.perfect_score]
        passing = [r for r in records if r["score"] >= self.opt.perfect_score]
        try:
            with context(trace=None, **self.reflection):
                reply = Predict(PROPOSER)(
                    current_instruction=current_text, examples_with_feedback=_render(failing + passing)
                )
            text = str(reply.new_instruction or "").strip()
            if not text:
                raise ValueError("the reflection LM returned an empty instruction")
            return {"text": text, "error": None}
        except FATAL_ERRORS:
            raise
        except Exception as error:
            log.warning("GEPA: a proposal failed and is skipped: %s: %s", type(error).__name__, error)
            return {"text": None, "error": f"{type(error).__name__}: {error}"[:500]}

    # -- merges ------------------------------------------------------------------------------------
    def _merge(self, i: int, rng: random.Random) -> bool:
        """Try one merge of two front candidates; False when no pair qualifies (the iteration reflects instead)."""
        merge, scores = self.state["merge"], [c["scores"] for c in self.pool]
        instructions = [c["instructions"] for c in self.pool]
        tried = {(a, b, c) for a, b, c in merge["tried"]}
        found = find_merge(pareto_members(scores), [c["parents"] for c in self.pool], instructions, scores, tried, rng)
        if found is None:
            return False
        merge["tried"].append([found.a, found.b, found.ancestor])
        if found.instructions in instructions:  # the same program again: nothing to learn
            return False
        merge["attempts"] += 1
        merge["due"] -= 1
        subset = merge_subsample(scores[found.a], scores[found.b], MERGE_SUBSAMPLE, rng)
        label = f"merge of {found.a} and {found.b}, ancestor {found.ancestor}"
        screened = self.run.score(f"{label} (screening)", self._build(found.instructions), subset=subset)
        self.state["metric_calls"] += len(subset)
        bar = max(sum(scores[found.a][j] for j in subset), sum(scores[found.b][j] for j in subset))
        if sum(screened.scores) < bar:
            log.info("GEPA iteration %d: %s scored below its parents on the screening examples", i, label)
            return True
        merge["accepted"] += 1
        self._add(found.instructions, [found.a, found.b], label)
        return True

    # -- the pool --------------------------------------------------------------------------------
    def _add(self, instructions: dict[str, str], parents: list[int], origin: str) -> None:
        """Score a new candidate on the full valset (eligible to be returned) and put it in the pool."""
        name = f"cand {len(self.pool)} ({origin})"
        scored = self.run.score(name, self._build(instructions))
        self.state["metric_calls"] += len(scored.scores)
        follow_on = max(self.pool[p]["next"] for p in parents)  # round robin goes on down the lineage (GEPA)
        self.pool.append(
            {"name": name, "instructions": instructions, "parents": parents, "scores": scored.scores, "next": follow_on}
        )

    def _build(self, instructions: dict[str, str]) -> Module:
        program = self.student.deepcopy()
        for name, predictor in program.named_predictors():
            if predictor.signature.instructions != instructions[name]:
                predictor.signature = predictor.signature.with_instructions(instructions[name])
        return program

    def _memo(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A step's checkpointed result, or compute and checkpoint it."""
        stored = self.run.recall(key)
        if stored is not None:
            return stored
        value = compute()
        self.run.remember(key, value)
        return value

    def notes(self) -> list[str]:
        if not self.state:
            return []
        counts, merge = self.state["counts"], self.state["merge"]
        front = [self.pool[k]["name"] for k in pareto_members([c["scores"] for c in self.pool])]
        return [
            f"{self.state['iteration']} iterations, {self.state['metric_calls']} program runs"
            + (f" (max_metric_calls={self.limit})" if self.limit is not None else ""),
            f"proposals: {counts['accepted']} accepted, {counts['rejected']} rejected (not better on the minibatch), "
            f"{counts['failed']} failed to parse or raised, {counts['unchanged']} unchanged, "
            f"{counts['skipped']} skipped (minibatch already perfect)",
            f"merges: {merge['attempts']} tried, {merge['accepted']} accepted",
            f"Pareto front: {len(front)} of {len(self.pool)} candidates ({', '.join(front)})",
        ]


# -- helpers ---------------------------------------------------------------------------------------


def _reflection_settings(reflection_lm: Any, student: Module) -> dict[str, Any]:
    """``context()`` overrides for proposals: the reflection LM, else the LM in force, else the student's own."""
    if reflection_lm is not None:
        return {"lm": reflection_lm}
    if current().lm is not None:
        return {}
    own = next((p.lm for p in student.predictors() if p.lm is not None), None)
    return {"lm": own} if own is not None else {}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + " …[cut]"


def _record(inputs: dict[str, Any], outputs: dict[str, Any], score: float, feedback: str) -> dict[str, Any]:
    """One reflection example, as JSON (it is checkpointed)."""
    return {
        "inputs": {k: _short(v) for k, v in inputs.items()},
        "outputs": {k: _short(v) for k, v in outputs.items()},
        "score": score,
        "feedback": feedback,
    }


def _render(records: list[dict[str, Any]]) -> str:
    blocks = []
    for n, record in enumerate(records, 1):
        lines = [f"### Example {n} (score {record['score']:g})", "Inputs:"]
        lines += [f"- {k}: {v}" for k, v in record["inputs"].items()]
        lines.append("Outputs:")
        lines += [f"- {k}: {v}" for k, v in record["outputs"].items()]
        lines.append(f"Feedback: {record['feedback']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)



