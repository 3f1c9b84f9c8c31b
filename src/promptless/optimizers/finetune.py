"""BootstrapFinetune: compile a program into LoRA weights of its embedded model (BetterTogether: better_together.py).

BootstrapFinetune runs a teacher program (default: the student) over the trainset,
keeps the traces whose final answer passes the metric, turns every step of them
into a training example for its predictor (the exact request the predictor's
adapter sends, and the completion it parses back: ``promptless.finetune.dataset``),
fine-tunes a LoRA adapter on CPU (``finetune.train``), writes it as a GGUF adapter
(``finetune.export``) and points the predictors at ``LM(base, lora=file)``.
``multitask=True`` trains one adapter for all predictors, ``False`` one per predictor.

With a ``valset`` the result is scored beside the uncompiled program and kept only
if the paired 95 % interval of the gain lies above zero (``SearchRun``).
The training extra is imported only when a compile starts: without it, the error
says ``pip install 'promptless[finetune]'``.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from promptless.errors import TooManyErrors, cannot_recover
from promptless.finetune.artifact import WeightsRecord
from promptless.finetune.base import BaseModel, require_extra, resolve_base
from promptless.finetune.dataset import (
    ALL,
    TrainingExample,
    by_task,
    from_failed_traces,
    from_labels,
    from_traces,
)
from promptless.finetune.export import write_lora_gguf
from promptless.finetune.runtime import finetuned_lm
from promptless.finetune.tokens import LlamaTokenizer, tokenize
from promptless.finetune.train import load_model, settings_dict, train
from promptless.lm import Request, resolve_lm
from promptless.module import Module
from promptless.optimizers.base import CompileReport, Metric, Optimizer, attach_report, check_trainset, passes
from promptless.optimizers.checkpoint import Checkpoint, fingerprint
from promptless.optimizers.finetune_forecast import forecast
from promptless.optimizers.finetune_progress import TrainingProgress
from promptless.optimizers.finetune_settings import (
    FinetunePlan,
    FinetuneSettings,
    TaskTraining,
    TooFewTraces,
    check_settings,
)
from promptless.optimizers.search import SearchRun, SearchSettings
from promptless.primitives import Example
from promptless.settings import context, current, run_in_context
from promptless.trace import track_usage

log = logging.getLogger("promptless.optimizers")


class BootstrapFinetune(Optimizer):
    """Fine-tune the program's embedded model on its own passing traces (DSPy's BootstrapFinetune).

    ``metric``: a trace passes when it is truthy (or ``>= metric_threshold``).
    ``epochs``, ``lr``, ``lora_rank`` (``lora_alpha``, ``batch_size``): the LoRA run; ``max_steps``
    and ``max_time_s`` stop it cleanly (the adapter trained so far is kept).
    ``multitask``: one adapter for every predictor (True) or one per predictor.
    ``teacher``: the program whose traces are learned (default: the student); ``compile(teacher=)`` wins.
    ``train_on_labels`` (a promptless extension): also learn the trainset's own labels where the
    teacher's trace did not pass: for every predictor whose inputs and outputs an example holds, and
    for a later step whose outputs it holds (a pipeline's last step), with the inputs the earlier
    steps gave in that trace. Intermediate steps still learn only from passing traces.
    ``exclude_demos``: render training prompts (and run the result) without the predictors' demos.
    ``min_examples``: fewer training examples than this is an error naming how many traces passed.
    ``output_dir``: where the GGUF adapters go (default ``~/.cache/promptless/finetune``).
    ``checkpoint``: a directory; the bootstrapped data and each finished epoch are kept there,
    and a rerun with the same data and settings resumes.
    ``train_kwargs``: DSPy's dict of training settings, merged over the keywords.
    """

    def __init__(
        self,
        metric: Metric | None = None,
        *,
        teacher: Module | None = None,
        train_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if metric is not None and not callable(metric):
            raise TypeError(f"BootstrapFinetune(metric=) must be callable or None, got {metric!r}")
        options = {**options, **dict(train_kwargs or {})}
        if "learning_rate" in options:  # DSPy's spelling
            options["lr"] = options.pop("learning_rate")
        if "num_train_epochs" in options:
            options["epochs"] = options.pop("num_train_epochs")
        known = {f.name for f in fields(FinetuneSettings)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"BootstrapFinetune() got unexpected keyword argument(s) {unknown}")
        self.metric = metric
        self.teacher = teacher
        self.settings = check_settings(FinetuneSettings(**options))

    # -- compile ----------------------------------------------------------------------------------
    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        teacher: Module | None = None,
        testset: Sequence[Example] | None = None,
    ) -> Module:
        """Bootstrap, train, export; with a ``valset``, keep the result only if significantly better."""
        require_extra()
        examples = check_trainset(trainset)
        if valset is not None and self.metric is None:
            raise ValueError("BootstrapFinetune(metric=None) cannot score a valset; pass a metric")
        bases = self._bases(student)
        teacher = teacher if teacher is not None else self.teacher if self.teacher is not None else student
        names = [name for name, _ in student.named_predictors()]
        if [name for name, _ in teacher.named_predictors()] != names:
            raise ValueError(
                f"teacher and student differ in structure: {[n for n, _ in teacher.named_predictors()]} vs {names}"
            )
        s = self.settings
        if valset is None:
            started = time.perf_counter()
            report = CompileReport("BootstrapFinetune")
            with track_usage() as usage:
                program = self._finetune(student, teacher, examples, bases, None, report)
            report.notes.append("no valset given: the result was not compared with the uncompiled program")
            report.record_usage(usage, started)
            return attach_report(program, report)
        search = SearchSettings(
            num_threads=s.num_threads,
            max_errors=s.max_errors,
            fallback_to_baseline=s.fallback_to_baseline,
            display_progress=s.display_progress,
            seed=s.seed,
        )
        run = SearchRun("BootstrapFinetune", student, self.metric or always_passes, valset, search, testset=testset)
        with run:
            run.score_baseline()
            program = self._finetune(student, teacher, examples, bases, valset, run.report)
            run.score("finetuned", program)
        return run.finish()

    def _bases(self, student: Module) -> dict[str, BaseModel]:
        bases = {name: resolve_base(resolve_lm(p.lm)) for name, p in student.named_predictors()}
        if not bases:
            raise ValueError("the program has no predictors to fine-tune")
        if self.settings.multitask and len({b.model for b in bases.values()}) > 1:
            raise ValueError(
                "multitask=True trains one adapter for all predictors, but they run different models "
                f"({sorted({b.model for b in bases.values()})}); pass multitask=False"
            )
        return bases

    def _finetune(
        self,
        student: Module,
        teacher: Module,
        examples: list[Example],
        bases: dict[str, BaseModel],
        valset: Sequence[Example] | None,
        report: CompileReport,
    ) -> Module:
        s = self.settings
        program = student.deepcopy()
        if s.exclude_demos:
            for predictor in program.predictors():
                predictor.demos = []
        store = self._checkpoint(student, examples)
        data = self._dataset(program, teacher, examples, store, report)
        tasks = by_task(data, multitask=s.multitask)
        val_tasks = by_task(from_labels(program, list(valset or ())[:64]), multitask=s.multitask)
        trainings = self._train_all(program, tasks, val_tasks, bases, report)
        report.training = trainings  # type: ignore[attr-defined]
        for t in trainings:
            report.notes.append(
                f"trained {t.task}: {t.examples} examples, {t.steps} steps ({t.epochs_done} epochs), "
                f"loss {_f(t.first_loss)} -> {_f(t.last_loss)}, val loss {_f(t.val_loss_before)} -> "
                f"{_f(t.val_loss_after)}, {t.wall_time_s:.0f} s"
                + (f", stopped by {t.stopped_by}" if t.stopped_by else "")
            )
            if t.stopped_by:
                report.stopped_by_budget = f"training {t.task}: {t.stopped_by}"
        return program

    def _checkpoint(self, student: Module, examples: list[Example]) -> Checkpoint:
        s = self.settings
        key = fingerprint(
            "BootstrapFinetune",
            student.dump_state(),
            [ex.toDict() for ex in examples],
            {k: v for k, v in asdict(s).items() if k not in ("checkpoint", "output_dir", "display_progress")},
        )
        path = Path(s.checkpoint) / "bootstrap.json" if s.checkpoint is not None else None
        return Checkpoint(path, optimizer="BootstrapFinetune", key=key)

    # -- bootstrapping ------------------------------------------------------------------------------
    def _dataset(
        self, program: Module, teacher: Module, examples: list[Example], store: Checkpoint, report: CompileReport
    ) -> list[TrainingExample]:
        s = self.settings
        stored = store.get("dataset")
        if stored is not None:
            report.resumed_steps += 1
            data = [_example_from_json(item) for item in stored]
            passed = int(store.get("passed", 0))
        else:
            traces, failed = self._bootstrap(teacher, examples)
            passed = len(traces)
            data = from_traces(program, traces, exclude_demos=False)
            if s.train_on_labels:
                data += from_labels(program, examples, skip={i for i, _, _ in traces})
                data += from_failed_traces(program, failed, examples)
            store.put("dataset", [_example_to_json(item) for item in data])
            store.put("passed", passed)
        labelled = sum(1 for d in data if d.source == "label")
        per_step = {}
        for item in data:
            per_step.setdefault(item.predictor, [0, 0])[item.source == "label"] += 1
        steps = ", ".join(
            f"{name}: {t} + {lab}" if s.train_on_labels else f"{name}: {t}" for name, (t, lab) in per_step.items()
        )
        report.notes.append(
            f"{passed} of {len(examples)} teacher runs passed the metric: {len(data) - labelled} training examples "
            f"from traces" + (f" + {labelled} from labels" if s.train_on_labels else "") + f" (per predictor: {steps})"
        )
        if len(data) < s.min_examples:
            hint = "" if s.train_on_labels else "; train_on_labels=True also learns the trainset's labels"
            raise TooFewTraces(
                f"only {passed} of {len(examples)} teacher runs passed the metric, giving {len(data)} training "
                f"examples; BootstrapFinetune needs at least min_examples={s.min_examples}. Use a stronger teacher "
                f"(e.g. a BootstrapFewShot-compiled program), a larger trainset or a looser metric{hint}"
            )
        return data

    def _bootstrap(
        self, teacher: Module, examples: list[Example]
    ) -> tuple[list[tuple[int, list, dict]], list[tuple[int, list, dict]]]:
        """Run the teacher on every example: the passing traces and the failing ones, each in trainset order."""
        s = self.settings
        threads = max(1, s.num_threads or current().num_threads)
        run = run_in_context(functools.partial(self._attempt, teacher, examples))
        results, failed, errors = [], [], 0
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for index, passed, steps, names, error in pool.map(run, range(len(examples))):
                if error is not None:
                    if cannot_recover(error):
                        raise error
                    errors += 1
                    if s.max_errors is not None and errors > s.max_errors:
                        raise TooManyErrors(
                            f"{errors} examples raised while bootstrapping (max_errors={s.max_errors})"
                        ) from error
                    continue
                (results if passed else failed).append((index, steps, names))
        return results, failed

    def _attempt(self, teacher: Module, examples: list[Example], index: int) -> tuple[int, bool, list, dict, Any]:
        example = examples[index]
        own = teacher.deepcopy()
        for predictor in own.predictors():  # a teacher never sees the example it answers as a demo
            predictor.demos = [d for d in predictor.demos if d != example]
        names = {id(p): name for name, p in own.named_predictors()}
        trace: list = []
        try:
            with context(**{**dict(self.settings.teacher_settings or {}), "trace": trace}):
                prediction = own(**example.inputs())
                metric = self.metric or always_passes
                ok = passes(metric, example, prediction, trace, self.settings.metric_threshold)
        except Exception as error:
            log.debug("bootstrap example %d raised %r", index, error)
            return index, False, [], names, error
        return index, ok, trace, names, None

    # -- training ---------------------------------------------------------------------------------
    def _train_all(
        self,
        program: Module,
        tasks: dict[str, list[TrainingExample]],
        val_tasks: dict[str, list[TrainingExample]],
        bases: dict[str, BaseModel],
        report: CompileReport,
    ) -> list[TaskTraining]:
        s = self.settings
        ts = s.train_settings()
        out_dir = Path(s.output_dir) if s.output_dir is not None else _default_output_dir()
        predictors = dict(program.named_predictors())
        trainings, loaded = [], {}
        for task, items in tasks.items():
            base = bases[next(iter(bases))] if task == ALL else bases[task]
            tokenizer = LlamaTokenizer.for_file(str(base.path))
            tokens = tokenize(items, tokenizer, task=task, max_length=s.max_length)
            val_tokens = tokenize(val_tasks.get(task, []), tokenizer, task=task, max_length=s.max_length)
            key = fingerprint(base.identity(), [[t.prompt, t.completion] for t in tokens], settings_dict(ts))
            checkpoint_dir = Path(s.checkpoint) / f"train-{_safe(task)}" if s.checkpoint is not None else None
            if base.model not in loaded:
                loaded[base.model] = load_model(base, ts.num_threads)
            with TrainingProgress(f"fine-tuning {task}", s.display_progress) as progress:
                result = train(
                    base,
                    tokens,
                    ts,
                    pad_id=tokenizer.eos,
                    val_examples=val_tokens,
                    checkpoint_dir=checkpoint_dir,
                    fingerprint=key,
                    progress=progress,
                    model=loaded[base.model],
                )
            path = write_lora_gguf(result.adapter, base, ts.lora_alpha, out_dir / f"{key}-{_safe(task)}.gguf")
            members = tuple(predictors) if task == ALL else (task,)
            record = WeightsRecord.for_file(
                path, base, lora_rank=ts.lora_rank, lora_alpha=ts.lora_alpha, task=task, predictors=members
            )
            for name in members:
                predictor = predictors[name]
                predictor.lm = finetuned_lm(record, like=resolve_lm(predictor.lm))
                predictor.weights = record
            trainings.append(
                TaskTraining(
                    task,
                    len(items),
                    result.steps,
                    result.epochs_done,
                    result.first_loss,
                    result.last_loss,
                    result.val_loss_before,
                    result.val_loss_after,
                    result.wall_time_s,
                    result.train_tokens,
                    result.stopped_by,
                    result.resumed_epochs,
                    str(path),
                    record.sha256,
                )
            )
        return trainings

    # -- forecast ---------------------------------------------------------------------------------
    def plan(
        self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None = None
    ) -> FinetunePlan:
        """Forecast teacher runs and LM calls (probed on 3 examples), training examples, steps and time."""
        examples = check_trainset(trainset)
        bases = self._bases(student)
        teacher = self.teacher if self.teacher is not None else student
        return forecast(self.settings, student, teacher, self.metric, examples, valset, bases)


def always_passes(example: Any, prediction: Any, trace: Any = None) -> bool:
    return True


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _safe(task: str) -> str:
    return "all" if task == ALL else "".join(c if c.isalnum() or c in "-_." else "_" for c in task)


def _default_output_dir() -> Path:
    root = os.environ.get("PROMPTLESS_FINETUNE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "promptless" / "finetune"


def _example_to_json(example: TrainingExample) -> dict[str, Any]:
    request = {k: v for k, v in vars(example.request).items() if v not in (None, ())}
    return {**asdict(replace(example, request=None)), "request": request}  # type: ignore[arg-type]


def _example_from_json(data: Mapping[str, Any]) -> TrainingExample:
    request = dict(data["request"])
    if "messages" in request:
        request["messages"] = tuple(dict(m) for m in request["messages"])
    if "stop" in request:
        request["stop"] = tuple(request["stop"])
    return TrainingExample(
        str(data["predictor"]), Request(**request), str(data["completion"]), str(data["source"]), int(data["index"])
    )


__all__ = ["BootstrapFinetune", "FinetunePlan", "FinetuneSettings", "TooFewTraces", "always_passes"]
