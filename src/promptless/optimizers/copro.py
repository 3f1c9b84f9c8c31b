"""COPRO: an LM proposes instructions, each is scored on the valset, and the scored history guides the next proposals.

DSPy's semantics, one predictor at a time (coordinate ascent): for each predictor,
round 1 asks for ``breadth - 1`` new instructions from its current one (sampled
at ``init_temperature``, ``n`` completions in one call) and the current one stays
a candidate; each of the ``depth - 1`` later rounds shows the proposer the best
``breadth`` instructions so far with their scores (best last) and asks for
``breadth`` revisions. Every new candidate is scored on the full valset with the
other predictors at their best; identical proposals are scored once. The best
program goes to ``SearchRun.finish``, which keeps it only if it beats the baseline.

Proposals are instructions only (DSPy also proposes an output-field prefix). A
proposal that fails to parse, or a proposer call that fails, is skipped, logged
and counted in the report; errors that ``promptless.errors.cannot_recover`` end the compile.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from typing_extensions import Unpack

from promptless.errors import cannot_recover
from promptless.lm.base import LM
from promptless.module import Module
from promptless.modules.predict import Predict
from promptless.optimizers.base import Metric, Optimizer, check_int, check_trainset, one_line
from promptless.optimizers.checkpoint import fingerprint
from promptless.optimizers.plan import Plan, Probe, probe
from promptless.optimizers.search import BASELINE, Scored, SearchOptions, SearchRun, SearchSettings, search_settings
from promptless.primitives import Example
from promptless.settings import context
from promptless.signature import InputField, OutputField, Signature

log = logging.getLogger("promptless.optimizers")

# DSPy's Evaluate keywords that change how scoring runs here; the others only change what it prints.
_EVAL_KWARGS = frozenset({"num_threads", "display_progress", "max_errors"})


class BasicGenerateInstruction(Signature):
    """You are an instruction optimizer for large language models. I will give you the current instruction of one \
step of a program. Your task is to propose an instruction that will lead a good language model to perform the task \
well. Don't be afraid to be creative."""

    basic_instruction: str = InputField(desc="The initial instructions before optimization")
    proposed_instruction: str = OutputField(desc="The improved instructions for the language model")


class GenerateInstructionGivenAttempts(Signature):
    """You are an instruction optimizer for large language models. I will give some task instructions I've tried, \
along with their corresponding validation scores. The instructions are arranged in increasing order based on their \
scores, where higher scores indicate better quality.

Your task is to propose a new instruction that will lead a good language model to perform the task even better. \
Don't be afraid to be creative."""

    attempted_instructions: str = InputField(desc="Instructions tried so far with their scores, best last")
    proposed_instruction: str = OutputField(desc="The improved instructions for the language model")


@dataclass
class _Proposals:
    """One proposer call's outcome, as kept in the checkpoint so a resumed compile does not ask again."""

    instructions: list[str] = field(default_factory=list)
    failed: int = 0  # completions that did not parse or were empty


@dataclass
class _Candidate:
    path: str
    round: int
    instruction: str


class COPRO(Optimizer):
    """Instruction search by an LM proposer, one predictor after another (see the module docstring).

    ``breadth``: proposals per round (> 1: the first round asks for ``breadth - 1``
    and keeps the current instruction). ``depth``: rounds per predictor.
    ``init_temperature``: sampling temperature of the proposer. ``track_stats``:
    per-round max/average/min/std of the scores, in the report notes and as
    ``results_latest``/``results_best`` on the returned program (as in DSPy).
    ``prompt_model``: the LM that proposes; default: the LM in force.
    """

    def __init__(
        self,
        metric: Metric,
        *,
        breadth: int = 10,
        depth: int = 3,
        init_temperature: float = 1.4,
        track_stats: bool = True,
        prompt_model: LM | None = None,
        **search: Unpack[SearchOptions],
    ) -> None:
        if not callable(metric):
            raise TypeError(f"COPRO(metric=) must be callable, got {metric!r}")
        why = "DSPy's COPRO requires breadth > 1: the first round asks for breadth - 1"
        check_int("COPRO", "breadth", breadth, 2, why=why)
        check_int("COPRO", "depth", depth, 1)
        if isinstance(init_temperature, bool) or not isinstance(init_temperature, (int, float)) or init_temperature < 0:
            raise ValueError(f"COPRO(init_temperature=) must be a number >= 0, got {init_temperature!r}")
        if not isinstance(track_stats, bool):
            raise TypeError(f"COPRO(track_stats=) must be True or False, got {track_stats!r}")
        if prompt_model is not None and not isinstance(prompt_model, LM):
            raise TypeError(f"COPRO(prompt_model=) must be an LM or None, got {prompt_model!r}")
        self.settings = search_settings("COPRO", search)
        self.metric = metric
        self.breadth = breadth
        self.depth = depth
        self.init_temperature = float(init_temperature)
        self.track_stats = track_stats
        self.prompt_model = prompt_model
        self.seed = self.settings.seed

    # -- forecast ----------------------------------------------------------------------------------
    @property
    def evaluations_per_predictor(self) -> int:
        """Candidates scored per predictor if no proposal repeats: the current instruction is already scored."""
        return (self.breadth - 1) + (self.depth - 1) * self.breadth

    def plan(self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None) -> Plan:
        """Forecast: a probe, the baseline, and per predictor ``depth`` proposer calls and its candidates' scoring."""
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        return self._plan(student, val, probe(student, train, self.metric))

    def _plan(self, student: Module, val: list[Example], measured: Probe) -> Plan:
        phases = {"probe": measured.runs, BASELINE: len(val)}
        paths = [path for path, _ in student.named_predictors()]
        for path in paths:
            phases[path] = self.evaluations_per_predictor * len(val)
        return Plan.from_probe("COPRO", phases, measured, proposer_calls=self.depth * len(paths))

    # -- compile -----------------------------------------------------------------------------------
    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
        eval_kwargs: Mapping[str, Any] | None = None,
    ) -> Module:
        """A new program with the best instructions found; ``teacher`` is accepted for the common contract, unused.

        ``eval_kwargs`` (DSPy's name): ``num_threads``, ``display_progress`` and
        ``max_errors`` override this optimizer's; other keys are ignored.
        """
        train = check_trainset(trainset)
        val = check_trainset(valset, "valset") if valset is not None else train
        if not student.named_predictors():
            raise ValueError(f"COPRO: the student {type(student).__name__} has no predictors to optimize")
        notes: list[str] = []
        if valset is None:
            notes.append("no valset given: candidates were scored on the trainset (optimistic)")
        if teacher is not None:
            notes.append("COPRO does not use a teacher; the one given was ignored")
        settings = self._settings_with(eval_kwargs, notes)
        base = student.deepcopy()  # the baseline SearchRun may return: never the caller's object
        identity = {
            "breadth": self.breadth,
            "depth": self.depth,
            "init_temperature": self.init_temperature,
            "prompt_model": self.prompt_model.settings() if self.prompt_model is not None else None,
        }
        run = SearchRun("COPRO", base, self.metric, val, settings, testset=testset, identity=identity)
        search = _Search(self, run, base, notes)
        with run:
            stored = run.recall("probe")
            if stored is not None:
                measured = Probe(**stored)
            else:
                measured = probe(base, train, self.metric)
                run.remember("probe", asdict(measured))
            run.report.forecast = self._plan(base, val, measured)
            search.execute()
        program = run.finish(search.final_notes())
        search.annotate(program)
        return program

    def _settings_with(self, eval_kwargs: Mapping[str, Any] | None, notes: list[str]) -> SearchSettings:
        if not eval_kwargs:
            return self.settings
        if not isinstance(eval_kwargs, Mapping):
            raise TypeError(f"COPRO.compile(eval_kwargs=) must be a dict, got {eval_kwargs!r}")
        for name, minimum in (("num_threads", 1), ("max_errors", 0)):
            if eval_kwargs.get(name) is not None:
                check_int("COPRO", name, eval_kwargs[name], minimum)
        ignored = sorted(set(eval_kwargs) - _EVAL_KWARGS)
        if ignored:
            notes.append(f"eval_kwargs {ignored} ignored (only {sorted(_EVAL_KWARGS)} change scoring)")
        return replace(self.settings, **{k: v for k, v in eval_kwargs.items() if k in _EVAL_KWARGS})


class _Search:
    """One compile's state: the best program so far, each predictor's scored history, the notes."""

    def __init__(self, optimizer: COPRO, run: SearchRun, base: Module, notes: list[str]) -> None:
        self.opt = optimizer
        self.run = run
        self.best = base
        self.best_scored: Scored | None = None
        self.paths = [path for path, _ in base.named_predictors()]
        self.seen: dict[str, Scored] = {}  # content fingerprint -> scores: nothing is scored twice
        self.candidates: dict[str, _Candidate] = {}  # candidate name -> what it is
        self.notes = notes
        self.failed = 0
        self.duplicates = 0
        self.results_latest: dict[str, dict[str, list[float]]] = {}
        self.results_best: dict[str, dict[str, list[float]]] = {}

    def execute(self) -> None:
        self.best_scored = self.run.score_baseline()
        self.seen[self._content(self.best)] = self.best_scored
        for index, path in enumerate(self.paths):
            self._optimize(index, path)

    # -- one predictor -------------------------------------------------------------------------------
    def _optimize(self, index: int, path: str) -> None:
        """``depth`` rounds of proposals for one predictor, the others fixed at their best."""
        assert self.best_scored is not None
        current_instruction = self._predictor(self.best, path).signature.instructions
        history: dict[str, float] = {current_instruction: self.best_scored.mean}
        for round_index in range(self.opt.depth):
            proposals = self._proposals(index, path, round_index, current_instruction, history)
            latest: list[float] = []
            new = duplicates = 0
            for instruction in proposals.instructions:
                scored = None if instruction in history else self._score(path, round_index, instruction)
                if scored is None:
                    duplicates += 1
                    continue
                history[instruction] = scored.mean
                latest.append(scored.mean)
                new += 1
            self.failed += proposals.failed
            self.duplicates += duplicates
            self._round_notes(path, round_index, proposals, new, duplicates, latest, history)

    def _proposals(
        self, index: int, path: str, round_index: int, current_instruction: str, history: dict[str, float]
    ) -> _Proposals:
        """The round's proposals, from the checkpoint if a previous compile got that far."""
        key = f"proposals:{path}:{round_index}"
        stored = self.run.recall(key)
        if stored is not None:
            return _Proposals(list(stored["instructions"]), int(stored["failed"]))
        if round_index == 0:
            signature: type[Signature] = BasicGenerateInstruction
            inputs = {"basic_instruction": current_instruction}
            n = self.opt.breadth - 1
        else:
            signature = GenerateInstructionGivenAttempts
            inputs = {"attempted_instructions": _attempts(history, self.opt.breadth)}
            n = self.opt.breadth
        step = index * self.opt.depth + round_index
        proposals = self._ask(signature, inputs, n, step, f"{path} round {round_index + 1}")
        self.run.remember(key, asdict(proposals))
        return proposals

    def _ask(self, signature: type[Signature], inputs: dict[str, str], n: int, step: int, where: str) -> _Proposals:
        """One proposer call for ``n`` completions; what does not parse is counted, never raised."""
        opt = self.opt
        proposer = Predict(signature, n=n, temperature=opt.init_temperature, seed=opt.seed + step, rollout_id=step)
        lm_context = context(lm=opt.prompt_model) if opt.prompt_model is not None else contextlib.nullcontext()
        try:
            with lm_context:
                prediction = proposer(**inputs)
        except Exception as error:  # a ParseError of every completion, or a bad reply: this round proposes nothing
            if cannot_recover(error):
                raise
            log.warning("COPRO %s: the proposer call failed (%s); skipping its %d proposals", where, error, n)
            return _Proposals([], n)
        texts = [_clean(text) for text in prediction.completions.proposed_instruction]
        unique = list(dict.fromkeys(text for text in texts if text))
        failed = (n - len(texts)) + sum(1 for text in texts if not text)
        if failed:
            log.warning("COPRO %s: %d of %d proposals did not parse or were empty; skipped", where, failed, n)
        return _Proposals(unique, failed)

    def _score(self, path: str, round_index: int, instruction: str) -> Scored | None:
        """Score the best program with ``path``'s instruction replaced (None: that program was scored already)."""
        assert self.best_scored is not None
        program = self.best.deepcopy()
        predictor = self._predictor(program, path)
        predictor.signature = predictor.signature.with_instructions(instruction)
        content = self._content(program)
        if content in self.seen:
            return None
        name = f"{path}: {one_line(instruction, 60)} [{content}]"
        self.candidates[name] = _Candidate(path, round_index, instruction)
        scored = self.run.score(name, program)
        self.seen[content] = scored
        if scored.mean > self.best_scored.mean:
            self.best, self.best_scored = program, scored
        return scored

    # -- bookkeeping -------------------------------------------------------------------------------
    def _predictor(self, program: Module, path: str) -> Predict:
        return dict(program.named_predictors())[path]

    def _content(self, program: Module) -> str:
        return fingerprint([p.signature.instructions for _, p in program.named_predictors()])[:8]

    def _round_notes(
        self,
        path: str,
        round_index: int,
        proposals: _Proposals,
        new: int,
        duplicates: int,
        latest: list[float],
        history: dict[str, float],
    ) -> None:
        best_instruction, best_score = max(history.items(), key=lambda item: item[1])
        note = (
            f"{path} round {round_index + 1}/{self.opt.depth}: {len(proposals.instructions)} distinct proposals, "
            f"{new} scored, {duplicates} already seen, {proposals.failed} unparsable; "
            f"best {100 * best_score:.1f}%: {one_line(best_instruction, 80)!r}"
        )
        if self.opt.track_stats and latest:
            top = sorted(history.values(), reverse=True)[: self.opt.breadth]
            _add_stats(self.results_latest.setdefault(path, _empty_stats()), round_index, latest)
            _add_stats(self.results_best.setdefault(path, _empty_stats()), round_index, top)
            note += (
                f" (this round: max {100 * max(latest):.1f}, mean {100 * statistics.fmean(latest):.1f}, "
                f"min {100 * min(latest):.1f}, std {100 * statistics.pstdev(latest):.1f})"
            )
        self.notes.append(note)

    def final_notes(self) -> list[str]:
        """The round notes, plus what was skipped over the whole compile."""
        notes = list(self.notes)
        if self.failed:
            notes.append(f"{self.failed} proposals did not parse or were empty and were skipped")
        if self.duplicates:
            notes.append(f"{self.duplicates} proposals repeated an instruction already scored and were not rescored")
        return notes

    def annotate(self, program: Module) -> None:
        """Round numbers on the report's candidates; DSPy's per-round statistics on the program."""
        for candidate in program.compile_report.candidates:  # type: ignore[attr-defined]
            known = self.candidates.get(candidate.name)
            if known is not None:
                candidate.notes = f"round {known.round + 1}"
        if self.opt.track_stats:
            program.results_latest = self.results_latest  # type: ignore[attr-defined]
            program.results_best = self.results_best  # type: ignore[attr-defined]


def _attempts(history: dict[str, float], breadth: int) -> str:
    """The best ``breadth`` instructions with their scores (percent), worst first so the best is read last."""
    ranked = sorted(history.items(), key=lambda item: item[1], reverse=True)[:breadth]
    lines = []
    for number, (instruction, score) in enumerate(reversed(ranked), start=1):
        lines.append(f"Instruction #{number}: {instruction}")
        lines.append(f"Resulting Score #{number}: {100 * score:.1f}")
    return "\n".join(lines)


def _clean(text: Any) -> str:
    return str(text or "").strip().strip('"').strip()


def _empty_stats() -> dict[str, list[float]]:
    return {"depth": [], "max": [], "average": [], "min": [], "std": []}


def _add_stats(stats: dict[str, list[float]], round_index: int, scores: list[float]) -> None:
    stats["depth"].append(round_index)
    stats["max"].append(max(scores))
    stats["average"].append(statistics.fmean(scores))
    stats["min"].append(min(scores))
    stats["std"].append(statistics.pstdev(scores))


__all__ = ["COPRO", "BasicGenerateInstruction", "GenerateInstructionGivenAttempts"]
