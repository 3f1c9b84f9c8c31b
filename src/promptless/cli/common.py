"""What several commands share: the LM to run on, and ``--input field=value`` pairs."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptless.cli.errors import RUNTIME, CLIError, usage_errors
from promptless.redact import safe_text

if TYPE_CHECKING:
    from promptless.cli.artifact import LoadedProgram
    from promptless.lm.base import LM
    from promptless.signature import Signature


ALIASES = {  # short names for the embedded models (``promptless models`` lists them)
    "gemma": "local/gemma-3-270m",
    "gemma3": "local/gemma-3-270m",
    "smollm": "local/smollm2-135m",
    "smollm2": "local/smollm2-135m",
}


def resolve_model(name: str) -> str:
    """``--lm`` as the library names it: an alias (``smollm2``) or a bare embedded name gets its ``local/``."""
    if name in ALIASES:
        return ALIASES[name]
    if "/" not in name:
        from promptless.lm.models import MODELS  # lazy: CLI start-up

        if name in MODELS:
            return f"local/{name}"
    return name


def make_lm(model: str, *, api_base: str | None = None) -> LM:
    """The LM a command runs on, from ``--lm`` (and ``--api-base``). Tests monkeypatch this function."""
    from promptless.lm import LM  # lazy: the LM pulls in the library; --help does not need it

    return LM(model, api_base=api_base)


def build_lm(model: str, api_base: str | None = None, *, named_by: str = "--lm") -> LM:
    """The LM named by ``--lm`` (or by ``named_by``: a file), through the ``make_lm`` hook above (tests replace it).

    An unknown provider or local model name fails here, before any data is read or model loaded.
    """
    with usage_errors(named_by):
        lm = make_lm(model, api_base=api_base)
        lm.model_type  # noqa: B018 - resolving it checks the name against the registry / provider list
    return lm


def preflight(lm: LM) -> None:
    """For an embedded model: fail at once, with the install command, if it cannot run (exit code 1)."""
    if not lm.model.startswith("local/"):
        return
    if importlib.util.find_spec("llama_cpp") is None:
        raise CLIError(f"{lm.model} needs llama-cpp-python: pip install 'promptless[local]'", RUNTIME)
    from promptless.lm.models import model_path

    model_path(lm.model.removeprefix("local/"))  # raises ModelNotInstalled naming the package


def program_lm(loaded: LoadedProgram, lm_option: str | None, api_base: str | None, *, calls: bool = True) -> LM:
    """The LM for a saved program. The user's options decide where requests and credentials go, never the file.

    ``--lm`` (with ``--api-base``) runs on that model. Without ``--lm``, the model the artifact
    describes is used if it is embedded (``local/...``: no endpoint, no key); a remote one runs
    only at an ``--api-base`` the user gives: otherwise the command stops and says what the file
    names (the environment's ``OPENAI_API_KEY`` is never sent to a server the file chose). With
    nothing saved, the embedded default. ``calls=False`` (inspect, which calls no LM) only needs
    the model's name to show its prompt: a remote model is then described, not contacted.
    """
    from promptless.redact import redact_url  # lazy: CLI start-up
    from promptless.types import DEFAULT_MODEL

    if lm_option:
        lm = build_lm(resolve_model(lm_option), api_base)
        loaded.program.set_lm(lm)
        return lm
    model, saved_base = loaded.saved_lm
    if not model:
        return build_lm(DEFAULT_MODEL, api_base)
    named_by = f"{loaded.path} names model {safe_text(model, one_line=True)!r}"
    if model.startswith("local/"):
        return build_lm(model, api_base, named_by=named_by)
    if api_base:  # the user named the server: the saved model name is asked for there
        return build_lm(model, api_base, named_by=named_by)
    if not calls:
        return build_lm(model if model.startswith("openai/") else f"openai/{model}", None, named_by=named_by)
    shown = safe_text(redact_url(saved_base), one_line=True) if saved_base else None
    named = f"the endpoint {shown} for model {safe_text(model, one_line=True)!r}" if shown else None
    named = named or f"the remote model {safe_text(model, one_line=True)!r}"
    use = f"pass --api-base {shown} to use that endpoint" if shown else "pass --lm and --api-base to choose a server"
    raise CLIError(
        f"{loaded.path} names {named}; a saved program never chooses where requests and your API key go: "
        f"{use}, or --lm to run on another model"
    )


def parse_inputs(pairs: Sequence[str], signature: Signature) -> dict[str, Any]:
    """``["question=What is 2+2?"]`` → ``{"question": "What is 2+2?"}``; a typed field's value is read as JSON."""
    values: dict[str, Any] = {}
    fields = signature.input_fields
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CLIError(f"--input {pair!r} is not of the form field=value")
        if name not in fields:
            raise CLIError(f"--input {name}: the program has no input {name!r}; its inputs are {list(fields)}")
        values[name] = text if fields[name].annotation is str else _json_or_text(text)
    return values


def require_inputs(values: dict[str, Any], signature: Signature, where: str) -> None:
    from promptless.fieldtypes import is_optional

    fields = signature.input_fields
    missing = [n for n, f in fields.items() if n not in values and not is_optional(f.annotation)]
    if missing:
        raise CLIError(f"{where}: missing input(s) {missing}; the program's inputs are {list(fields)}")


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
