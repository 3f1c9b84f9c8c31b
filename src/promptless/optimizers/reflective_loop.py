"""GEPA's search loop: one compile's pool of candidates, reflection on traced minibatches, merges.

``GEPA`` (reflective.py) holds the settings, the budget and the forecast; ``Evolution``
here runs the iterations, checkpointing the pool after each, so a restart resumes it.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptless.errors import cannot_recover
from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.optimizers.pareto import best_by_mean, find_merge, merge_subsample, pareto_members, select_from_front
from promptless.optimizers.search import BASELINE, SearchRun
from promptless.primitives import Example
from promptless.settings import context, current, run_in_context
from promptless.signature import InputField, OutputField, Signature, ensure_signature
from promptless.trace import TraceStep

if TYPE_CHECKING:
    from promptless.optimizers.reflective import GEPA

log = logging.getLogger("promptless.optimizers")

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


# -- one compile's search ------------------------------------------------------------------------------
@dataclass
class _Rollout:
    scores: list[float]
    records: list[dict[str, Any]]


class Evolution:
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
        except Exception as error:
            if cannot_recover(error):
                raise
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
        except Exception as error:
            if cannot_recover(error):
                raise
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
        except Exception as error:
            if cannot_recover(error):
                raise
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
