"""Which model a compile's checkpoint belongs to, so a resume on another ``--lm`` is refused, not mixed.

The optimizers' checkpoint key covers the program, the data, the metric and the settings, but
not the LM the CLI puts in force around the compile: a checkpoint made on Gemma would be
resumed silently on SmolLM2, mixing scores of two models in one choice. The CLI keeps the model
(and the endpoint, without credentials) in a small file beside the checkpoint, written before the
compile starts (atomically), and refuses a resume on another model with one line that names both.
It is removed with the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from promptless.atomic import write_text_atomic
from promptless.cli.errors import CLIError
from promptless.redact import redact_url, safe_text


def stamp_path(checkpoint: Path) -> Path:
    """``p.checkpoint.json`` → ``p.checkpoint.lm.json`` (also beside a finetune checkpoint directory)."""
    return checkpoint.with_name(f"{checkpoint.stem}.lm{checkpoint.suffix or '.json'}")


def _stamp(model: str, api_base: str | None) -> dict[str, str | None]:
    return {"lm": model, "api_base": redact_url(api_base) if api_base else None}


def check_same_lm(checkpoint: Path, model: str, api_base: str | None) -> str | None:
    """Raise CLIError when ``checkpoint`` was made on another model or endpoint; a note when that is unknown."""
    try:
        saved = json.loads(stamp_path(checkpoint).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict) or not isinstance(saved.get("lm"), str):
        return f"{checkpoint} does not say which model made it; resuming it on {model}"
    mine = _stamp(model, api_base)
    if saved["lm"] == mine["lm"] and saved.get("api_base") == mine["api_base"]:
        return None

    def described(stamp: dict) -> str:
        where = f" --api-base {stamp['api_base']}" if stamp.get("api_base") else ""
        return safe_text(f"--lm {stamp['lm']}{where}", one_line=True)

    raise CLIError(
        f"{checkpoint} holds the steps of a compile on {described(saved)}, this run is on {described(mine)}: "
        f"resume it with {described(saved)}, or delete {checkpoint} to start afresh on this model"
    )


def write_stamp(checkpoint: Path, model: str, api_base: str | None) -> None:
    """Record the model before the compile's first step is checkpointed."""
    write_text_atomic(stamp_path(checkpoint), json.dumps(_stamp(model, api_base)) + "\n")


def remove_stamp(checkpoint: Path) -> None:
    stamp_path(checkpoint).unlink(missing_ok=True)
