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
raises is skipped, logged and counted; errors that ``promptless.errors.cannot_recover`` end the compile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

from typing_extensions import Unpack

from promptless.evaluate.feedback import FeedbackMetric
from promptless.module import Module
from promptless.optimizers.base import Metric, Optimizer, check_int, check_trainset
from promptless.optimizers.checkpoint import fingerprint
from promptless.optimizers.plan import Plan, Probe, probe
from promptless.optimizers.reflective_loop import MERGE_SUBSAMPLE, Evolution
from promptless.optimizers.search import SearchOptions, SearchRun, search_settings
from promptless.primitives import Example

log = logging.getLogger("promptless.optimizers")

AUTO_CANDIDATES = {"light": 6, "medium": 12, "heavy": 18}  # DSPy's AUTO_RUN_SETTINGS


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
        search = Evolution(self, run, student, train)
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
