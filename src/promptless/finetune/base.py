"""Which base models can be fine-tuned, and what identifies one.

A base model is trainable when we know how its GGUF tensors map to the Hugging
Face module names that PEFT trains, and back: today the llama architecture
(SmolLM2-135M-Instruct). Its identity is the model's name plus the SHA-256 of its
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

    @property
    def model(self) -> str:
        return f"local/{self.name}"

    def identity(self) -> dict[str, Any]:
        """What an adapter records about the model it was trained on."""
        return {"model": self.model, "architecture": self.architecture, "sha256": file_sha256(self.path)}


# name -> (architecture, attention heads, kv heads, decoder layers), as in the GGUF's metadata.
TRAINABLE: dict[str, tuple[str, int, int, int]] = {"smollm2-135m": ("llama", 9, 3, 30)}


def resolve_base(lm: Any) -> BaseModel:
    """The trainable base model behind ``lm``, or ``TrainingUnsupported`` saying why not."""
    model = getattr(lm, "model", None)
    base = getattr(lm, "base_model", None) or model  # a fine-tuned LM names the model it was trained from
    if not isinstance(base, str) or not base.startswith("local/"):
        raise TrainingUnsupported(
            f"BootstrapFinetune trains embedded models only (LM('local/...')); the program's LM is {model!r}"
        )
    name = base.removeprefix("local/")
    if name not in TRAINABLE:
        raise TrainingUnsupported(
            f"local/{name} has no training support yet; trainable base models: "
            + ", ".join(f"local/{n}" for n in sorted(TRAINABLE))
        )
    architecture, n_head, n_head_kv, n_layers = TRAINABLE[name]
    return BaseModel(name, architecture, n_head, n_head_kv, Path(model_path(name)), n_layers)


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
