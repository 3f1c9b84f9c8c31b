"""The optimizers of ``--optimizer``, built with the CLI's settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptless.cli.errors import CLIError

if TYPE_CHECKING:
    from promptless.optimizers.base import Optimizer


class OptimizerKind(StrEnum):
    bootstrap = "bootstrap"
    random_search = "random-search"
    mipro = "mipro"
    finetune = "finetune"


@dataclass(frozen=True)
class OptimizerOptions:
    """The compile command's optimizer settings in one value, so the builder's signature stays short."""

    max_demos: int = 4
    max_labeled: int = 4
    candidates: int = 8
    budget: int | None = None
    threads: int | None = None
    checkpoint: Path | None = None
    seed: int = 0
    progress: bool = True
    keep_compiled: bool = False  # keep the best candidate even without a significant gain


def build_optimizer(kind: str, metric: Callable[..., Any], options: OptimizerOptions) -> Optimizer:
    """BootstrapFewShot, BootstrapFewShotWithRandomSearch or MIPROv2(auto="light") with the CLI's settings.

    Every one takes the checkpoint (a file where each finished step is kept, so a restarted compile
    skips it). BootstrapFewShot takes no budget: the compile command puts a Budget in force around it.
    """
    common = {
        "num_threads": options.threads,
        "seed": options.seed,
        "fallback_to_baseline": not options.keep_compiled,
        "checkpoint": options.checkpoint,
    }
    if kind == OptimizerKind.bootstrap:
        from promptless.optimizers.bootstrap import BootstrapFewShot

        return BootstrapFewShot(
            metric, max_bootstrapped_demos=options.max_demos, max_labeled_demos=options.max_labeled, **common
        )
    search = {
        "max_lm_calls": options.budget,
        "display_progress": options.progress,
        **common,
    }
    if kind == OptimizerKind.random_search:
        from promptless.optimizers.random_search import BootstrapFewShotWithRandomSearch

        return BootstrapFewShotWithRandomSearch(
            metric,
            num_candidate_programs=options.candidates,
            max_bootstrapped_demos=options.max_demos,
            max_labeled_demos=options.max_labeled,
            **search,
        )
    if kind == OptimizerKind.mipro:
        try:
            from promptless.optimizers.mipro import MIPROv2
        except ImportError as error:
            raise CLIError(f"--optimizer mipro cannot be loaded ({error})") from None
        demos = {"max_bootstrapped_demos": options.max_demos, "max_labeled_demos": options.max_labeled}
        return MIPROv2(metric, auto="light", **demos, **search)
    if kind == OptimizerKind.finetune:
        from promptless.finetune.base import FinetuneExtraMissing, require_extra
        from promptless.optimizers.finetune import BootstrapFinetune

        try:
            require_extra()
        except FinetuneExtraMissing as error:
            raise CLIError(str(error)) from None
        return BootstrapFinetune(
            metric,
            num_threads=options.threads,
            seed=options.seed,
            checkpoint=options.checkpoint,
            display_progress=options.progress,
            train_on_labels=True,
            lora_layers=15,
        )
    raise CLIError(f"unknown optimizer {kind!r}; choose one of {[k.value for k in OptimizerKind]}")
