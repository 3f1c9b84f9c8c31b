"""BootstrapFinetune's settings, its forecast and its per-adapter training record: plain values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptless.errors import PromptlessError
from promptless.finetune.train import TrainSettings
from promptless.optimizers.plan import Plan

# Training throughput measured on the project's shared 2-core machine (bench/finetune.py, SmolLM2-135M, LoRA r=16
# on the top 15 of 30 layers, float32, 1 torch thread): prompt + completion tokens per second, forward + backward.
# plan() scales it by the share of layers trained: a step costs ~ forward (all layers) + 2 x forward (trained ones).
TRAIN_TOKENS_PER_S = 150.0
TRAIN_LAYERS_MEASURED = 0.5


class TooFewTraces(PromptlessError, ValueError):
    """Not enough teacher traces passed the metric to train on."""


@dataclass(frozen=True)
class FinetuneSettings:
    """Everything BootstrapFinetune takes besides the metric; see the class docstring."""

    epochs: int = 2
    lr: float = 1e-3
    lora_rank: int = 16
    lora_alpha: float | None = None  # None: 2 x lora_rank
    lora_layers: int | None = None  # LoRA on the top N decoder layers only (None: all)
    batch_size: int = 8
    max_steps: int | None = None
    max_time_s: float | None = None
    multitask: bool = True
    metric_threshold: float | None = None
    train_on_labels: bool = False
    exclude_demos: bool = False
    min_examples: int = 8
    output_dir: str | os.PathLike[str] | None = None
    checkpoint: str | os.PathLike[str] | None = None
    num_threads: int | None = None  # teacher runs and evaluation
    train_threads: int = 2
    max_errors: int | None = None
    teacher_settings: Mapping[str, Any] | None = None
    seed: int = 0
    display_progress: bool = False
    fallback_to_baseline: bool = True
    max_length: int = 2048

    def train_settings(self) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs,
            lr=self.lr,
            lora_rank=self.lora_rank,
            lora_alpha=float(self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank),
            batch_size=self.batch_size,
            max_steps=self.max_steps,
            max_time_s=self.max_time_s,
            lora_layers=self.lora_layers,
            seed=self.seed,
            num_threads=self.train_threads,
        )


def check_settings(settings: FinetuneSettings) -> FinetuneSettings:
    def positive(name: str, value: Any, optional: bool = False) -> None:
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"BootstrapFinetune({name}=) must be a positive number, got {value!r}")

    for name in ("epochs", "lr", "lora_rank", "batch_size", "train_threads", "min_examples", "max_length"):
        positive(name, getattr(settings, name))
    for name in ("max_steps", "max_time_s", "lora_alpha", "num_threads", "lora_layers"):
        positive(name, getattr(settings, name), optional=True)
    for name in ("epochs", "lora_rank", "batch_size", "min_examples"):
        if not isinstance(getattr(settings, name), int):
            raise ValueError(f"BootstrapFinetune({name}=) must be an int, got {getattr(settings, name)!r}")
    return settings


@dataclass
class TaskTraining:
    """How training one adapter went (one per task: ``"*"`` when multitask, else a predictor name)."""

    task: str
    examples: int
    steps: int
    epochs_done: int
    first_loss: float | None
    last_loss: float | None
    val_loss_before: float | None
    val_loss_after: float | None
    wall_time_s: float
    train_tokens: int
    stopped_by: str | None
    resumed_epochs: int
    weights: str  # the GGUF file
    sha256: str


@dataclass
class FinetunePlan:
    """The forecast of a BootstrapFinetune compile: teacher runs (LM calls) and training steps and time."""

    bootstrap: Plan
    train_examples: int
    train_steps: int
    train_tokens: int
    train_time_s: float
    note: str = ""

    @property
    def lm_calls(self) -> int:
        return self.bootstrap.lm_calls

    @property
    def tokens(self) -> int:
        return self.bootstrap.tokens

    def summary(self) -> str:
        return (
            f"{self.bootstrap.summary()}\n   training: ~{self.train_examples} examples, {self.train_steps} steps, "
            f"~{self.train_tokens} tokens, ~{self.train_time_s:.0f} s" + (f"; {self.note}" if self.note else "")
        )
