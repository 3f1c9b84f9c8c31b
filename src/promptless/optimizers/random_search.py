"""BootstrapFewShotWithRandomSearch: several demo sets, each scored on the valset, the best kept.

By default (``search_space="joint"``, a promptless departure) the candidates are points of
the joint space of promptless.optimizers.joint_search: number of demos, demo set and
decoding mode (greedy or calibrated label choice), scored on a minibatch of the valset,
the best few in full, then their majority vote. On the embedded models this space found
gains DSPy's could not (docs/benchmarks.md, "Prompt compilation for small models"), for
fewer LM calls per candidate. ``search_space="dspy"`` gives DSPy's candidates: zero-shot,
labelled demos only, one unshuffled bootstrap, then bootstraps of shuffled trainsets with
a random number of demos, each scored on the whole valset. Every fully scored candidate's
score, with its CI and its paired gain over the uncompiled baseline, goes into the report;
the zero-shot candidate is the baseline itself unless the student came with demos.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from promptless.module import Module
from promptless.optimizers import joint_search
from promptless.optimizers.base import Metric, Optimizer, check_trainset, split_holdout
from promptless.optimizers.bootstrap import BootstrapFewShot
from promptless.optimizers.calibration import scored_decodings
from promptless.optimizers.labeled import LabeledFewShot
from promptless.optimizers.plan import Plan, bootstrap_runs, probe
from promptless.optimizers.search import SearchRun, SearchSettings
from promptless.primitives import Example
from promptless.settings import current


class BootstrapFewShotWithRandomSearch(Optimizer):
    """``num_candidate_programs`` candidates against the baseline: points of the joint space, or DSPy's bootstraps.

    Every other keyword argument is a BootstrapFewShot setting, used for each bootstrap (in
    the joint space: for the one teacher pass that builds the demo pool; a candidate never
    has more than ``max_bootstrapped_demos + max_labeled_demos`` demos). A scored label choice
    is searched only for label sets of at most ``max_scored_labels`` values (None: any size).
    The search settings (budget, checkpoint, ``fallback_to_baseline``) are those of
    ``SearchSettings``: the best candidate is returned only if it beats the uncompiled
    program significantly on the valset.
    """

    def __init__(
        self,
        metric: Metric,
        *,
        num_candidate_programs: int = 16,
        seed: int = 0,
        max_lm_calls: int | None = None,
        max_tokens: int | None = None,
        checkpoint: str | Path | None = None,
        fallback_to_baseline: bool = True,
        display_progress: bool = False,
        search_space: str = "joint",
        demo_counts: tuple[int, ...] = joint_search.DEMO_COUNTS,
        decodings: tuple[str, ...] = joint_search.DECODINGS,
        minibatch_size: int = 24,
        finalists: int = 3,
        ensemble: bool = True,
        calibration_size: int = 16,
        max_scored_labels: int | None = 20,
        holdout: float = 0.3,
        **bootstrap: Any,
    ) -> None:
        if not isinstance(num_candidate_programs, int) or num_candidate_programs < 0:
            raise ValueError(f"num_candidate_programs must be an int >= 0, got {num_candidate_programs!r}")
        if search_space not in ("dspy", "joint"):
            raise ValueError(f"search_space is 'dspy' or 'joint', got {search_space!r}")
        bad = [k for k in demo_counts if not isinstance(k, int) or k < 0]
        if not demo_counts or bad:
            raise ValueError(f"demo_counts must be whole numbers >= 0, got {demo_counts!r}")
        unknown = [d for d in decodings if d not in ("greedy", "likelihood", "calibrated")]
        if not decodings or unknown:
            raise ValueError(f"decodings are among 'greedy', 'likelihood', 'calibrated', got {decodings!r}")
        for name, value, low in (("minibatch_size", minibatch_size, 0), ("finalists", finalists, 1),
                                 ("calibration_size", calibration_size, 1)):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
        if max_scored_labels is not None and (
            not isinstance(max_scored_labels, int) or isinstance(max_scored_labels, bool) or max_scored_labels < 2
        ):
            raise ValueError(f"max_scored_labels must be a whole number >= 2 or None, got {max_scored_labels!r}")
        split_holdout([], holdout, seed, "BootstrapFewShotWithRandomSearch")
        self.max_scored_labels = max_scored_labels
        self.search_space, self.demo_counts, self.decodings = search_space, tuple(demo_counts), tuple(decodings)
        self.minibatch_size, self.finalists, self.ensemble = minibatch_size, finalists, ensemble
        self.calibration_size, self.holdout = calibration_size, holdout
        self.metric = metric
        self.num_candidate_programs = num_candidate_programs
        self.seed = seed
        bootstrap.setdefault("holdout", 0)  # candidates are compared on the search's own valset
        self.bootstrap = BootstrapFewShot(metric, seed=seed, **bootstrap)  # the template every candidate varies
        self.settings = SearchSettings(
            num_threads=self.bootstrap.num_threads,
            max_errors=self.bootstrap.max_errors,
            max_lm_calls=max_lm_calls,
            max_tokens=max_tokens,
            checkpoint=checkpoint,
            fallback_to_baseline=fallback_to_baseline,
            display_progress=display_progress,
            seed=seed,
        )

    def _bootstraps(self) -> list[tuple[str, BootstrapFewShot, bool]]:
        """(name, bootstrap settings, shuffle?) per candidate, in a fixed order for a given seed."""
        template = self.bootstrap
        out = []
        for i in range(self.num_candidate_programs):
            bootstrap = copy.copy(template)
            bootstrap.seed = self.seed + i
            if i == 0:
                out.append(("bootstrap", bootstrap, False))
                continue
            bootstrap.max_bootstrapped_demos = random.Random(self.seed + i).randint(
                1, max(1, template.max_bootstrapped_demos)
            )
            out.append(
                (f"bootstrap shuffled seed={bootstrap.seed} demos={bootstrap.max_bootstrapped_demos}", bootstrap, True)
            )
        return out

    def candidates(
        self, student: Module, trainset: list[Example], teacher: Module | None
    ) -> Iterator[tuple[str, Module]]:
        """The candidate programs, built one at a time (a budget can stop between them)."""
        if any(p.demos for p in student.predictors()):
            yield "zero-shot", student.reset_copy()  # differs from the baseline only when the student has demos
        template = self.bootstrap
        if template.max_labeled_demos:
            labeled = LabeledFewShot(k=template.max_labeled_demos, seed=self.seed)
            yield f"labelled k={template.max_labeled_demos}", labeled.compile(student, trainset=trainset)
        for name, bootstrap, shuffle in self._bootstraps():
            shuffled = list(trainset)
            if shuffle:
                random.Random(bootstrap.seed).shuffle(shuffled)
            yield name, bootstrap.compile(student, trainset=shuffled, teacher=teacher)

    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """Forecast: a probe, the baseline and each candidate on the valset, and each bootstrap's teacher runs."""
        train, val, _ = self._splits(trainset, valset)
        if self.search_space == "joint":
            return self._plan_joint(student, train, val)
        measured = probe(student, train, self.metric)
        threads = max(1, self.bootstrap.num_threads or current().num_threads)
        phases = {"probe": measured.runs, "baseline": len(val)}
        evaluations = int(any(p.demos for p in student.predictors())) + int(bool(self.bootstrap.max_labeled_demos))
        teacher_runs = 0
        for _, bootstrap, _ in self._bootstraps():
            evaluations += 1
            teacher_runs += bootstrap_runs(
                len(train), bootstrap.max_bootstrapped_demos, measured.pass_rate, threads, bootstrap.max_rounds
            )
        phases["bootstrap"] = teacher_runs
        phases["candidates"] = evaluations * len(val)
        return Plan.from_probe("BootstrapFewShotWithRandomSearch", phases, measured)

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        train, val, notes = self._splits(trainset, valset)
        identity = {"candidates": self.num_candidate_programs, "bootstrap": vars(self.bootstrap),
                    "space": [self.search_space, self.demo_counts, self.decodings, self.minibatch_size,
                              self.finalists, self.ensemble, self.calibration_size,
                              self.max_scored_labels]}  # fmt: skip
        run = SearchRun(
            "BootstrapFewShotWithRandomSearch",
            student,
            self.metric,
            val,
            self.settings,
            testset=testset,
            identity=identity,
        )
        with run:
            run.report.forecast = self.plan(student, train, val)
            run.score_baseline()
            if self.search_space == "joint":
                notes += self._search_joint(run, student, train, teacher)
            else:
                for name, candidate in self.candidates(student, train, teacher):
                    run.score(name, candidate)
        program = run.finish(notes)
        program.compile_report.notes.extend(joint_search.decoding_notes(program))
        return program

    def _splits(
        self, trainset: Sequence[Example], valset: Sequence[Example] | None
    ) -> tuple[list[Example], list[Example], list[str]]:
        """(train, val, notes): without a valset, part of the trainset is held out (or, if too few, reused)."""
        train = check_trainset(trainset)
        if valset is not None:
            return train, check_trainset(valset, "valset"), []
        kept, held, note = split_holdout(train, self.holdout, self.seed, "BootstrapFewShotWithRandomSearch")
        if held is None:
            return train, train, [note.replace("was not compared", "was compared only on the trainset (optimistic)")]
        return kept, held, [note]

    # -- the joint space ---------------------------------------------------------------------------
    def _demo_counts(self) -> tuple[int, ...]:
        """The demo counts the joint space samples: those within the bootstrap's demo ceiling."""
        ceiling = self.bootstrap.max_bootstrapped_demos + self.bootstrap.max_labeled_demos
        return tuple(k for k in self.demo_counts if k <= ceiling) or (0,)

    def _points(self, student: Module) -> list[joint_search.Point]:
        """The sampled candidates; a program without a label to choose (or with too many) is searched greedily."""
        decodings, _ = scored_decodings(student, self.decodings, self.max_scored_labels)
        rng = random.Random(self.seed)
        return joint_search.sample_points(rng, self.num_candidate_programs, self._demo_counts(), decodings)

    def _search_joint(self, run: SearchRun, student: Module, train: list[Example], teacher: Module | None) -> list[str]:
        """Pool, minibatch round, finalists on the full valset, their majority vote; returns report notes."""
        pool_builder = copy.copy(self.bootstrap)
        pool_builder.max_bootstrapped_demos = max(self._demo_counts())
        stored = run.recall("pool")
        if stored is None:
            prepared = pool_builder._prepare_teacher(teacher if teacher is not None else student, train)
            passed = pool_builder._bootstrap(prepared, train)
            pools = joint_search.demo_pools(student, passed, train)
            run.remember("pool", {name: [dict(d.items()) for d in demos] for name, demos in pools.items()})
        else:
            pools = {name: [Example(d) for d in demos] for name, demos in stored.items()}
        threads = self.settings.num_threads
        points = self._points(student)
        subset = joint_search.minibatch_indices(len(run.valset), self.minibatch_size, self.seed)
        scored: list[tuple[float, joint_search.Point, Module]] = []
        for point in points:
            program = joint_search.build(
                student, point, pools, train, calibration_size=self.calibration_size, num_threads=threads
            )
            result = run.score(point.name, program, subset=subset)
            scored.append((result.mean, point, program))
        scored.sort(key=lambda item: -item[0])  # stable: ties keep the sampled order
        finalists = scored[: self.finalists]
        if subset is not None:  # else the minibatch was the whole valset: every candidate is already scored in full
            for _, point, program in finalists:
                run.score(point.name, program)
        if self.ensemble and len(finalists) >= 2:
            run.score(f"majority of {len(finalists)} finalists", joint_search.ensemble_of([p for _, _, p in finalists]))
        size = len(subset) if subset is not None else len(run.valset)
        notes = [f"joint search: {len(points)} candidates on {size} valset examples, {len(finalists)} finalists"
                 " in full"]  # fmt: skip
        _, left_out = scored_decodings(student, self.decodings, self.max_scored_labels)
        return notes + ([left_out] if left_out else [])

    def _plan_joint(self, student: Module, train: list[Example], val: list[Example]) -> Plan:
        measured = probe(student, train, self.metric)
        points = self._points(student)
        minibatch = joint_search.minibatch_indices(len(val), self.minibatch_size, self.seed)
        size = len(minibatch) if minibatch is not None else len(val)
        calibrated = sum(1 for p in points if p.decoding == "calibrated")
        finalists = min(self.finalists, len(points))
        phases = {
            "probe": measured.runs,
            "baseline": len(val),
            "bootstrap": len(train),  # at most: the teacher runs until the pool is complete
            "calibration": calibrated * min(self.calibration_size, len(train)),
            "minibatch": len(points) * size,
            "finalists": finalists * len(val) if minibatch is not None else 0,
            "ensemble": finalists * len(val) if self.ensemble and finalists >= 2 else 0,
        }
        note = "bootstrap is an upper bound; the ensemble reruns the finalists (answered from the cache when it is on)"
        return Plan.from_probe("BootstrapFewShotWithRandomSearch", phases, measured, note=note)
