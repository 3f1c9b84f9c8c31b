"""The record a fine-tuned predictor keeps of its weights: a file by relative path, its SHA-256, its base model.

Saved beside the program (``Predict`` state, key ``"weights"``)::

    {"kind": "lora-gguf", "path": "weights/abc123.gguf", "sha256": "...",
     "base": {"model": "local/smollm2-135m", "architecture": "llama", "sha256": "..."},
     "lora_rank": 16, "lora_alpha": 32, "task": "*", "predictors": ["self"]}

``path`` is relative to the saved program's directory. Loading checks the file's
hash and the base model's identity before anything is applied; the file is a GGUF
(tensors only, never pickle), read by llama.cpp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptless.errors import ArtifactError
from promptless.finetune.base import BaseModel, TrainingUnsupported, file_sha256, resolve_base

WEIGHTS_KIND = "lora-gguf"


@dataclass(frozen=True)
class WeightsRecord:
    """A trained adapter: where it is, what it hashes to, and what it was trained on."""

    path: Path  # absolute while in memory; relative to the artifact directory on disk
    sha256: str
    base: dict[str, Any]
    lora_rank: int = 0
    lora_alpha: float = 0.0
    task: str = "*"
    predictors: tuple[str, ...] = ()
    kind: str = WEIGHTS_KIND
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_file(cls, path: str | os.PathLike[str], base: BaseModel, **info: Any) -> WeightsRecord:
        path = Path(path).resolve()
        return cls(path, file_sha256(path), base.identity(), **info)

    def to_state(self, artifact_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """JSON for a saved program; the weights file is named relative to ``artifact_dir``."""
        relative = os.path.relpath(self.path, Path(artifact_dir).resolve())
        return {
            "kind": self.kind,
            "path": Path(relative).as_posix(),
            "sha256": self.sha256,
            "base": dict(self.base),
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            "task": self.task,
            "predictors": list(self.predictors),
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_state(
        cls, state: Any, artifact_dir: str | os.PathLike[str], *, name: str = "self", lm: Any = None
    ) -> WeightsRecord:
        """Read and verify a saved record: the file exists, its hash matches, and so does the base model.

        ``lm``: the LM the program will run on (the user's configured one wins); its base
        model must be the one the adapter was trained on.
        """
        where = f"predictor {name!r}: weights"
        if not isinstance(state, dict) or not isinstance(state.get("path"), str) or "sha256" not in state:
            raise ArtifactError(f"{where}: expected an object with 'path' and 'sha256', got {state!r:.200}")
        if state.get("kind", WEIGHTS_KIND) != WEIGHTS_KIND:
            raise ArtifactError(f"{where}: unknown kind {state.get('kind')!r} (this version reads {WEIGHTS_KIND!r})")
        relative = Path(state["path"])
        if relative.is_absolute() or ".." in relative.parts:
            raise ArtifactError(f"{where}: path {state['path']!r} must stay inside the artifact's directory")
        path = (Path(artifact_dir) / relative).resolve()
        if not path.is_file():
            raise ArtifactError(f"{where}: file {path} is missing (it is saved beside the program; copy it too)")
        digest = file_sha256(path)
        if digest != state["sha256"]:
            expected = str(state["sha256"])[:12]
            raise ArtifactError(f"{where}: {path} has SHA-256 {digest[:12]}…, the program expects {expected}…")
        base = state.get("base")
        if not isinstance(base, dict) or not base.get("model"):
            raise ArtifactError(f"{where}: no base model recorded")
        record = cls(
            path,
            digest,
            dict(base),
            int(state.get("lora_rank", 0)),
            float(state.get("lora_alpha", 0.0)),
            str(state.get("task", "*")),
            tuple(state.get("predictors", ())),
            extra=dict(state.get("extra") or {}),
        )
        if lm is not None:
            record.check_base(lm, name=name)
        return record

    def check_base(self, lm: Any, *, name: str = "self") -> BaseModel:
        """The base model behind ``lm``, if it is the one these weights were trained on; ArtifactError otherwise."""
        try:
            base = resolve_base(lm)
        except TrainingUnsupported as error:
            raise ArtifactError(
                f"predictor {name!r}: weights were trained on {self.base.get('model')}; "
                f"the program's LM cannot run them: {error}"
            ) from None
        if base.model != self.base.get("model"):
            raise ArtifactError(
                f"predictor {name!r}: weights were trained on {self.base.get('model')}, the program runs {base.model}"
            )
        if self.base.get("sha256") and file_sha256(base.path) != self.base["sha256"]:
            raise ArtifactError(
                f"predictor {name!r}: weights were trained on another file of {base.model} "
                f"(SHA-256 {self.base['sha256'][:12]}…, installed {file_sha256(base.path)[:12]}…); retrain"
            )
        return base
