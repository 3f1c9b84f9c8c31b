"""BootstrapFinetune's forecast: teacher runs and LM calls (probed on 3 examples), training examples, steps, time.

Apart from the optimizer so that compiling and forecasting each stay one job;
``BootstrapFinetune.plan`` checks its arguments and calls ``forecast``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from promptless.finetune.base import BaseModel
from promptless.finetune.dataset import by_task, from_labels
from promptless.lm import Request
from promptless.module import Module
from promptless.optimizers.base import check_trainset
from promptless.optimizers.finetune_settings import (
    TRAIN_LAYERS_MEASURED,
    TRAIN_TOKENS_PER_S,
    FinetunePlan,
    FinetuneSettings,
)
from promptless.optimizers.plan import Plan, probe
from promptless.primitives import Example

__all__ = ["forecast", "shared_prompt_share"]


def forecast(
    s: FinetuneSettings,
    student: Module,
    teacher: Module,
    metric: Any,
    examples: list[Example],
    valset: Sequence[Example] | None,
    bases: dict[str, BaseModel],
) -> FinetunePlan:
    """The plan of a compile of ``student`` on ``examples``: the teacher probed, the training priced by tokens."""
    measured = probe(teacher, examples, metric)
    phases = {"probe": measured.runs, "bootstrap": len(examples)}
    if valset is not None:
        phases["baseline"] = phases["finetuned"] = len(check_trainset(valset, "valset"))
    bootstrap = Plan.from_probe("BootstrapFinetune", phases, measured)
    calls_per_run = measured.calls_per_run
    passing = len(examples) * measured.pass_rate
    n_train = round(passing * calls_per_run)
    if s.train_on_labels:  # every failed run teaches each step whose outputs the examples label
        labelled = sum(1 for p in student.predictors() if all(f in examples[0] for f in p.signature.output_fields))
        n_train += round((len(examples) - passing) * labelled)
    tasks = 1 if s.multitask else len(student.predictors())
    ts = s.train_settings()
    per_task = max(1, math.ceil(n_train / tasks))
    steps = tasks * ts.total_steps(per_task)
    prompt, completion = measured.tokens_per_call()
    batch = min(ts.batch_size, per_task)
    shared = prompt * shared_prompt_share(student, examples[:8])  # runs once per batch (finetune.train)
    tokens = round(steps * batch * (prompt + completion + 2))
    processed = steps * (shared + batch * (prompt - shared + completion + 2))
    base = next(iter(bases.values()))
    layers = base.n_layers or 30
    share = 1.0 if ts.lora_layers is None else min(1.0, ts.lora_layers / layers)
    speed = TRAIN_TOKENS_PER_S * (1 + 2 * TRAIN_LAYERS_MEASURED) / (1 + 2 * share)
    seconds = processed / speed
    if s.max_time_s is not None:
        seconds = min(seconds, s.max_time_s * tasks)
    note = (
        f"pass rate {measured.pass_rate:.0%} on {measured.runs} probed examples; time at ~{speed:.0f} training "
        f"tokens/s (measured on 2 shared cores), plus ~{base.load_s:.0f} s to load the model per task; the "
        f"{shared / max(1.0, prompt):.0%} of each prompt all prompts share runs once per batch"
    )
    if n_train < s.min_examples:
        note += f"; fewer than min_examples={s.min_examples} expected: the compile may stop with TooFewTraces"
    return FinetunePlan(bootstrap, n_train, steps, tokens, seconds + base.load_s * tasks, note)


def shared_prompt_share(student: Module, examples: Sequence[Example]) -> float:
    """The share of a training prompt that every prompt of its predictor begins with (instructions, labels, demos).

    Measured on the requests the labelled examples render to (characters of the prompt or of the
    messages' contents), averaged over the predictors they reach; 0 when they reach none.
    """
    shares = []
    for items in by_task(from_labels(student, examples), multitask=False).values():
        texts = [_request_text(item.request) for item in items]
        if len(texts) < 2:
            continue
        differ = (i for i, chars in enumerate(zip(*texts, strict=False)) if len(set(chars)) > 1)
        common = next(differ, min(map(len, texts)))
        shares.append(common / (sum(len(t) for t in texts) / len(texts)))
    return sum(shares) / len(shares) if shares else 0.0


def _request_text(request: Request) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(str(m.get("content", "")) for m in request.messages or ())
