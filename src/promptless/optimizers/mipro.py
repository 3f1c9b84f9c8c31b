"""MIPROv2: propose instructions and demo sets for every predictor, then search their combinations with TPE.

The steps, with DSPy's semantics:

1. Demo sets: per predictor ``num_candidates`` of them: none (0), labelled examples
   only (1), then BootstrapFewShot runs, the first on the trainset as given, the rest
   on seeded shuffles with a random number of demos (as in random_search.py).
2. Instructions: per predictor the original (0) plus ``num_candidates - 1`` proposals
   from the grounded proposer (proposer.py). A proposal that fails is skipped and
   counted in the report; it never ends the compile.
3. Search: optuna's TPE sampler over one categorical parameter per predictor for the
   instruction and one for the demo set. Each trial scores a seeded minibatch of the
   valset; every ``minibatch_full_eval_steps`` trials (and after the last) the
   configuration with the best mean minibatch score that has no full score yet is
   scored on the whole valset. Only fully scored configurations can be chosen, and
   only if they beat the uncompiled program significantly (see search.py).
   ``minibatch=False``, or a valset no larger than ``minibatch_size``, scores every
   trial on the full valset; a configuration asked for again is then not rescored
   (so there ``plan()`` is an upper bound). The study starts with the uncompiled
   program's score at configuration 0, as in DSPy. The returned program carries
   ``trial_logs`` (params, candidate name, score, full evaluation), as DSPy's does.

``auto`` presets (DSPy's): light, medium, heavy = 6, 12, 18 candidates per predictor
and a valset capped at 100, 300, 1000 examples. The number of trials is DSPy's
``max(2 * v * log2(candidates), 1.5 * candidates)`` with ``v`` the number of search
variables (two per predictor, one when zero-shot): one predictor gets 10, 18 and 27
trials; two predictors get 20, 28 and 33. Explicit ``num_candidates``/``num_trials``
override the preset.

Resume: the probe, every demo set, the dataset summary, every proposal (or its
failure) and the sequence of trials (params and value) are kept in the checkpoint
as they finish; scores are kept by SearchRun. A restarted compile replays the
stored trials into the study with ``add_trial`` and continues. Each ask uses a
sampler seeded by ``seed`` and the trial number, so the replayed study asks what
the uninterrupted one would have asked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from typing_extensions import Unpack

from promptless.adapters.values import to_jsonable
from promptless.errors import cannot_recover
from promptless.module import Module
from promptless.optimizers.base import Metric, Optimizer, check_int, check_trainset, one_line
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.calibration import choosable
from promptless.optimizers.checkpoint import fingerprint
from promptless.optimizers.labeled import LabeledFewShot
from promptless.optimizers.mipro_trials import Progress, Shape, run_trials
from promptless.optimizers.plan import Plan, Probe, bootstrap_runs, probe
from promptless.optimizers.proposer import GroundedProposer, tip_order
from promptless.optimizers.search import SearchOptions, SearchRun, search_settings
from promptless.primitives import Example
from promptless.settings import context, current

log = logging.getLogger("promptless.optimizers")

AUTO_PRESETS: dict[str, tuple[int, int]] = {"light": (6, 100), "medium": (12, 300), "heavy": (18, 1000)}
PROBE_SIZE = 3
OPTUNA_MISSING = "MIPROv2 needs optuna: pip install 'promptless[optim]'"


class MIPROv2(Optimizer):
    """Instructions and demos per predictor, chosen jointly by Bayesian search (see the module docstring).

    ``prompt_model`` writes the proposals (default: the LM in force at ``compile``);
    ``task_model`` runs the program while compiling (default: the LM in force).
    """

    def __init__(
        self,
        metric: Metric,
        *,
        auto: str | None = "light",
        num_candidates: int | None = None,
        num_trials: int | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        minibatch: bool = True,
        minibatch_size: int = 35,
        minibatch_full_eval_steps: int = 5,
        prompt_model: Any = None,
        task_model: Any = None,
        decodings: tuple[str, ...] = ("greedy",),
        **search: Unpack[SearchOptions],
    ) -> None:
        if not callable(metric):
            raise TypeError(f"MIPROv2(metric=) must be callable, got {metric!r}")
        if auto not in (*AUTO_PRESETS, None):
            raise ValueError(f"MIPROv2(auto=) must be 'light', 'medium', 'heavy' or None, got {auto!r}")
        if auto is None and (num_candidates is None or num_trials is None):
            raise ValueError(
                "MIPROv2(auto=None) needs num_candidates= and num_trials= "
                f"(got num_candidates={num_candidates!r}, num_trials={num_trials!r})"
            )
        for name, value, low in (
            ("num_candidates", num_candidates, 1),
            ("num_trials", num_trials, 1),
        ):
            if value is not None:
                check_int("MIPROv2", name, value, low)
        check_int("MIPROv2", "max_bootstrapped_demos", max_bootstrapped_demos, 0)
        check_int("MIPROv2", "max_labeled_demos", max_labeled_demos, 0)
        check_int("MIPROv2", "minibatch_size", minibatch_size, 1)
        check_int("MIPROv2", "minibatch_full_eval_steps", minibatch_full_eval_steps, 1)
        if not isinstance(minibatch, bool):
            raise TypeError(f"MIPROv2(minibatch=) must be True or False, got {minibatch!r}")
        for name, lm in (("prompt_model", prompt_model), ("task_model", task_model)):
            if lm is not None and not callable(lm):
                raise TypeError(f"MIPROv2({name}=) must be an LM or None, got {lm!r}")
        if not decodings or any(d not in ("greedy", "likelihood", "calibrated") for d in decodings):
            raise ValueError(f"MIPROv2(decodings=) are among 'greedy', 'likelihood', 'calibrated', got {decodings!r}")
        self.decodings = tuple(decodings)
        self.metric = metric
        self.auto = auto
        self.num_candidates = num_candidates
        self.num_trials = num_trials
        self.max_bootstrapped_demos = max_bootstrapped_demos
        self.max_labeled_demos = max_labeled_demos
        self.minibatch = minibatch
        self.minibatch_size = minibatch_size
        self.minibatch_full_eval_steps = minibatch_full_eval_steps
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.settings = search_settings("MIPROv2", search)
        self.seed = self.settings.seed

    # -- sizes and forecast -------------------------------------------------------------------------
    def shape(self, num_predictors: int, val_size: int) -> Shape:
        """Candidates, trials and evaluation mode for a program with ``num_predictors`` on ``val_size`` examples."""
        with_demos = self.max_bootstrapped_demos > 0 or self.max_labeled_demos > 0
        preset = AUTO_PRESETS[self.auto][0] if self.auto is not None else None
        candidates = self.num_candidates or preset
        assert candidates is not None  # __init__ makes sure
        trials = self.num_trials or auto_trials(num_predictors, candidates, with_demos)
        use_minibatch = self.minibatch and val_size > self.minibatch_size
        steps = self.minibatch_full_eval_steps
        return Shape(
            num_candidates=candidates,
            num_trials=trials,
            minibatch=use_minibatch,
            minibatch_size=self.minibatch_size if use_minibatch else val_size,
            full_evals=math.ceil(trials / steps) if use_minibatch else 0,
            with_demos=with_demos,
        )

    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """Forecast of a compile: runs the program on a few training examples to measure a run's cost."""
        train = check_trainset(trainset)
        val, _ = self._valset(train, valset)
        return self._forecast(student, train, val, probe(student, train, self.metric, size=PROBE_SIZE))

    def _forecast(self, student: Module, train: list[Example], val: list[Example], measured: Probe) -> Plan:
        predictors = len(student.named_predictors())
        shape = self.shape(predictors, len(val))
        threads = self.settings.num_threads or current().num_threads
        boot = sum(
            bootstrap_runs(len(train), demos, measured.pass_rate, threads)
            for _, _, demos in self._bootstrap_specs(len(train), shape)
        )
        phases = {"probe": measured.runs, "bootstrap": boot, "baseline": len(val)}
        if shape.minibatch:
            phases["minibatch trials"] = shape.num_trials * shape.minibatch_size
            phases["full evaluations"] = shape.full_evals * len(val)
        else:
            phases["trials"] = shape.num_trials * len(val)
        proposals = predictors * (shape.num_candidates - 1)
        summary = 1 if proposals else 0  # the dataset summary, made only when instructions are proposed
        return Plan.from_probe("MIPROv2", phases, measured, proposer_calls=proposals + summary)

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
        optuna = _import_optuna()
        train = check_trainset(trainset)
        val, val_notes = self._valset(train, valset)
        names = [name for name, _ in student.named_predictors()]
        if not names:
            raise ValueError(f"MIPROv2: the program {type(student).__name__} has no predictors to optimize")
        shape = self.shape(len(names), len(val))
        prompt_lm = self.prompt_model or current().lm or self.task_model
        run = SearchRun(
            "MIPROv2",
            student,
            self.metric,
            val,
            self.settings,
            testset=testset,
            identity=self._identity(train, teacher),
        )
        progress = Progress(notes=list(val_notes))
        task = context(lm=self.task_model) if self.task_model is not None else contextlib.nullcontext()
        with task, _quiet(optuna):
            with run:
                run.report.forecast = self._forecast(student, train, val, self._probe(run, student, train))
                run.score_baseline()
                demo_sets = self._demo_sets(run, student, train, teacher, shape)
                proposer = GroundedProposer(student, lm=prompt_lm, seed=self.seed)
                instructions = self._instructions(run, proposer, student, train, demo_sets, shape, progress)
                run_trials(
                    run,
                    optuna,
                    student,
                    instructions,
                    demo_sets,
                    shape,
                    progress,
                    seed=self.seed,
                    full_eval_every=self.minibatch_full_eval_steps,
                    decodings=self._decodings(student),
                    calibration=train,
                )
            program = run.finish(self._notes(shape, names, progress))
        program.trial_logs = progress.trial_logs  # type: ignore[attr-defined]  # as DSPy's MIPROv2 does
        return program

    def _decodings(self, student: Module) -> tuple[str, ...]:
        """The decoding modes the trials choose among: only greedy when no predictor can choose a label."""
        return self.decodings if choosable(student) else ("greedy",)

    # -- steps --------------------------------------------------------------------------------------
    def _probe(self, run: SearchRun, student: Module, train: list[Example]) -> Probe:
        """The forecast's measurements, taken once: a resumed compile reads them from the checkpoint."""
        stored = run.recall("probe")
        if stored is not None:
            return Probe(**stored)
        measured = probe(student, train, self.metric, size=PROBE_SIZE)
        run.remember("probe", asdict(measured))
        return measured

    def _valset(self, train: list[Example], valset: Sequence[Example] | None) -> tuple[list[Example], list[str]]:
        notes = []
        if valset is None:
            val = train
            notes.append("no valset given: candidates were scored on the trainset (optimistic)")
        else:
            val = check_trainset(valset, "valset")
        cap = AUTO_PRESETS[self.auto][1] if self.auto is not None else None
        if cap is not None and len(val) > cap:
            keep = sorted(random.Random(self.seed).sample(range(len(val)), cap))
            val = [val[i] for i in keep]
            notes.append(f"auto={self.auto}: the valset was cut to a seeded sample of {cap} examples")
        return val, notes

    def _identity(self, train: list[Example], teacher: Module | None) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed (SearchRun adds the student, valset and seed)."""
        return {
            "auto": self.auto,
            "num_candidates": self.num_candidates,
            "num_trials": self.num_trials,
            "max_bootstrapped_demos": self.max_bootstrapped_demos,
            "max_labeled_demos": self.max_labeled_demos,
            "minibatch": self.minibatch,
            "minibatch_size": self.minibatch_size,
            "minibatch_full_eval_steps": self.minibatch_full_eval_steps,
            "prompt_model": getattr(self.prompt_model, "model", None),
            "task_model": getattr(self.task_model, "model", None),
            "trainset": fingerprint([dict(ex.items()) for ex in train]),
            "teacher": teacher.dump_state() if teacher is not None else None,
            **({"decodings": list(self.decodings)} if self.decodings != ("greedy",) else {}),
        }

    def _bootstrap_specs(self, train_size: int, shape: Shape) -> list[tuple[int, list[int], int]]:
        """(seed, trainset order, max bootstrapped demos) per bootstrapped demo set, made as in random_search.py."""
        if not shape.with_demos:
            return []
        count = max(0, shape.num_candidates - 1 - (1 if self.max_labeled_demos else 0))
        specs = []
        for i in range(count):
            rng = random.Random(self.seed + i)
            order = list(range(train_size))
            demos = self.max_bootstrapped_demos
            if i > 0:
                rng.shuffle(order)
                if demos > 0:
                    demos = rng.randint(1, demos)
            specs.append((self.seed + i, order, demos))
        return specs

    def _demo_sets(
        self, run: SearchRun, student: Module, train: list[Example], teacher: Module | None, shape: Shape
    ) -> dict[str, list[list[Example]]]:
        """Per predictor name, its candidate demo sets: none, labelled only, then the bootstraps (checkpointed)."""
        sets: dict[str, list[list[Example]]] = {name: [[]] for name, _ in student.named_predictors()}
        if not shape.with_demos:
            return sets
        if self.max_labeled_demos:
            labelled = LabeledFewShot(k=self.max_labeled_demos, seed=self.seed).compile(student, trainset=train)
            for name, predictor in labelled.named_predictors():
                sets[name].append([Example(dict(demo.items())) for demo in predictor.demos])
        for j, (seed, order, demos) in enumerate(self._bootstrap_specs(len(train), shape)):
            stored = run.recall(f"demo_set:{j}")
            if stored is None:
                bootstrap = BootstrapFewShot(
                    self.metric,
                    max_bootstrapped_demos=demos,
                    max_labeled_demos=self.max_labeled_demos,
                    max_errors=self.settings.max_errors,
                    num_threads=self.settings.num_threads,
                    seed=seed,
                    holdout=0,  # a demo set to choose among, not a result: the trials compare it
                )
                program = bootstrap.compile(student, trainset=[train[i] for i in order], teacher=teacher)
                stored = {
                    name: [to_jsonable(dict(demo.items()), field="demo") for demo in predictor.demos]
                    for name, predictor in program.named_predictors()
                }
                run.remember(f"demo_set:{j}", stored)
            for name in sets:  # the JSON form in both runs, so a resumed run sends the same prompts
                sets[name].append([Example(demo) for demo in stored[name]])
        return sets

    def _instructions(
        self,
        run: SearchRun,
        proposer: GroundedProposer,
        student: Module,
        train: list[Example],
        demo_sets: dict[str, list[list[Example]]],
        shape: Shape,
        progress: Progress,
    ) -> dict[str, list[str]]:
        """Per predictor name: the original instruction, then the proposals that came back (checkpointed)."""
        predictors = student.named_predictors()
        out = {name: [predictor.signature.instructions] for name, predictor in predictors}
        if shape.num_candidates <= 1:
            return out
        summary = self._step(run, "summary", lambda: proposer.summarize(train), progress, "dataset summary")
        tips = tip_order(self.seed)
        for p, (name, predictor) in enumerate(predictors):
            grounding = _grounding_order(demo_sets[name])
            for i in range(1, shape.num_candidates):
                demos = grounding[(i - 1) % len(grounding)] if grounding else []
                tip = tips[(i - 1) % len(tips)]
                progress.proposals += 1
                text = self._step(
                    run,
                    f"proposal:{p}:{i}",
                    lambda name=name, predictor=predictor, demos=demos, tip=tip: proposer.propose(
                        name, predictor, summary or "", demos, tip
                    ),
                    progress,
                    f"instruction {i} for {name}",
                )
                if text is None:
                    progress.failed_proposals += 1
                elif text in out[name]:
                    progress.duplicates += 1  # the same program twice would only waste trials
                else:
                    out[name].append(text)
        progress.instructions = out
        return out

    def _step(self, run: SearchRun, key: str, make: Any, progress: Progress, what: str) -> str | None:
        """One proposer call, done once: its text, or None when it failed (logged, counted, never raised)."""
        stored = run.recall(key)
        if stored is None:
            try:
                stored = {"text": make()}
            except Exception as error:  # a proposal that cannot be read is skipped, never the end of a compile
                if cannot_recover(error):
                    raise
                log.warning("MIPROv2: %s failed and is skipped: %s: %s", what, type(error).__name__, error)
                stored = {"failed": f"{type(error).__name__}: {str(error)[:200]}"}
            run.remember(key, stored)
        if "failed" in stored:
            progress.failed.append(f"{what} ({stored['failed']})")
            return None
        return str(stored["text"])

    def _notes(self, shape: Shape, names: list[str], progress: Progress) -> list[str]:
        notes = list(progress.notes)
        preset = f"auto={self.auto}" if self.auto is not None else "auto=None"
        notes.append(f"{preset}: {shape.num_candidates} candidates per predictor, {shape.num_trials} trials planned")
        logs = progress.trial_logs
        full = sum(1 for entry in logs if "full_eval" in entry)
        if shape.minibatch:
            notes.append(
                f"{len(logs)} trials: {len(logs)} minibatch evaluations of {shape.minibatch_size} examples, "
                f"{full} full evaluations of the best configuration so far (every "
                f"{self.minibatch_full_eval_steps} trials)"
            )
        else:
            notes.append(f"{len(logs)} trials, each a full evaluation (minibatch off or the valset is small)")
        if progress.replayed:
            notes.append(f"resumed: {progress.replayed} trials replayed from the checkpoint into the study")
        for name in names:
            texts = progress.instructions.get(name)
            if texts:
                shown = "".join(f"; [{i}] {one_line(text, 60)!r}" for i, text in enumerate(texts[1:], 1))
                notes.append(f"{name}: {len(texts)} instruction candidates: [0] the original{shown}")
        if progress.proposals:
            parsed = progress.proposals - progress.failed_proposals
            dropped = f" ({progress.duplicates} duplicates dropped)" if progress.duplicates else ""
            notes.append(f"{parsed} of {progress.proposals} instruction proposals parsed{dropped}")
            notes.extend(f"proposer call failed and was skipped: {what}" for what in progress.failed)
        return notes


# -- helpers ------------------------------------------------------------------------------------------
def auto_trials(num_predictors: int, num_candidates: int, with_demos: bool) -> int:
    """DSPy's trial count: ``max(2 * v * log2(candidates), 1.5 * candidates)``, ``v`` the search variables."""
    variables = num_predictors * (2 if with_demos else 1)
    return max(1, int(2 * variables * math.log2(num_candidates)), int(1.5 * num_candidates))


def _grounding_order(sets: list[list[Example]]) -> list[list[Example]]:
    """The demo sets a proposal is grounded in, bootstrapped ones (index >= 2) before labelled ones."""
    nonempty = [i for i, demos in enumerate(sets) if demos]
    ordered = [i for i in nonempty if i >= 2] + [i for i in nonempty if i < 2]
    return [sets[i] for i in ordered]


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as error:
        raise ImportError(OPTUNA_MISSING) from error
    return optuna


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna logs every trial at INFO; the report says what matters. Its level is restored after."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
