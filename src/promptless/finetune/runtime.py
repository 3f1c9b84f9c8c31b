"""A fine-tuned predictor's LM: the base model with the adapter applied by llama.cpp.

``LM("local/<model>", lora=<file>)`` is the seam: the llama.cpp backend loads the
model with ``lora_path=``, and the cache key includes the adapter file's digest, so
no answer of the base model is ever served for the fine-tuned one.
"""

from __future__ import annotations

from promptless.finetune.artifact import WeightsRecord
from promptless.lm import LM


def finetuned_lm(record: WeightsRecord, like: LM | None = None) -> LM:
    """An LM running ``record``'s base model with its adapter; sampling defaults copied from ``like``."""
    defaults = {"temperature": like.temperature, "max_tokens": like.max_tokens} if like is not None else {}
    return LM(str(record.base["model"]), lora=str(record.path), **defaults)
