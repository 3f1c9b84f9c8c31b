"""Which base models can be fine-tuned, and what identifies one.

A base model is trainable when we know how its GGUF tensors map to the Hugging
Face module names that PEFT trains, and back, checked against llama.cpp (its logits
with an exported adapter match PEFT's): the llama architecture (SmolLM2-135M-Instruct)
and gemma3 (Gemma-3-270M). Its identity is the model's name plus the SHA-256 of its
GGUF file, so an adapter trained on one file is never applied to another.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptless.errors import PromptlessError
from promptless.lm.models import model_path

INSTALL_HINT = "pip install 'promptless[finetune]'"


class TrainingUnsupported(PromptlessError, ValueError):
    """The program's LM cannot be fine-tuned here (not an embedded model, or an architecture we cannot export)."""


class FinetuneExtraMissing(PromptlessError, ImportError):
    """torch / transformers / peft / gguf are not installed."""


@dataclass(frozen=True)
class BaseModel:
    """An embedded model we can train LoRA adapters for."""

    name: str  # the registry name, as in LM("local/<name>")
    architecture: str  # general.architecture in the GGUF
    n_head: int
    n_head_kv: int
    path: Path
    n_layers: int = 0
    load_s: float = 20.0  # seconds transformers takes to read and dequantize the GGUF (for plan())

    @property
    def model(self) -> str:
        return f"local/{self.name}"

    def identity(self) -> dict[str, Any]:
        """What an adapter records about the model it was trained on."""
        return {"model": self.model, "architecture": self.architecture, "sha256": file_sha256(self.path)}


@dataclass(frozen=True)
class Trainable:
    """What training needs to know of a model beyond its file: its GGUF metadata and how long it loads."""

    architecture: str  # general.architecture
    n_head: int
    n_head_kv: int
    n_layers: int
    load_s: float  # measured on 2 shared cores; Gemma's 262k-token vocabulary is most of its time


TRAINABLE: dict[str, Trainable] = {
    "gemma-3-270m": Trainable("gemma3", n_head=4, n_head_kv=1, n_layers=18, load_s=40.0),
    "smollm2-135m": Trainable("llama", n_head=9, n_head_kv=3, n_layers=30, load_s=20.0),
}


def resolve_base(lm: Any) -> BaseModel:
    """The trainable base model behind ``lm``, or ``TrainingUnsupported`` saying why not."""
    model = getattr(lm, "model", None)
    base = getattr(lm, "base_model", None) or model  # a fine-tuned LM names the model it was trained from
    if not isinstance(base, str) or not base.startswith("local/"):
        raise TrainingUnsupported(
            f"BootstrapFinetune trains embedded models only (LM('local/...')); the program's LM is {model!r}"
        )
    name = base.removeprefix("local/")
    spec = TRAINABLE.get(name)
    if spec is None:
        of = f" (the base model of {model!r})" if model != base else ""
        raise TrainingUnsupported(
            f"BootstrapFinetune has no training support for {base!r}{of}; trainable base models: "
            + ", ".join(f"local/{n}" for n in sorted(TRAINABLE))
        )
    return BaseModel(
        name, spec.architecture, spec.n_head, spec.n_head_kv, Path(model_path(name)), spec.n_layers, spec.load_s
    )


def require_extra() -> None:
    """One clear line when the training packages are missing."""
    missing = [
        m for m in ("torch", "transformers", "peft", "gguf", "safetensors") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise FinetuneExtraMissing(f"fine-tuning needs {', '.join(missing)}: {INSTALL_HINT}")


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) for the process."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]
