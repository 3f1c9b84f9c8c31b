"""Program artifacts for the CLI: saved with a ``cli`` section saying how to rebuild them, loaded without user code.

``promptless compile`` writes the library's artifact (``Module.save``'s JSON) plus
``"cli": {"program": "cot", "signature": "question -> answer", "lm": ...}``. eval,
run and inspect rebuild the program from that section and load the state into it.
An artifact saved from Python has no such section: if it holds exactly one
predictor, a ``Predict`` is rebuilt from the saved signature; otherwise the error
says to load it in Python with its class. Tools of a ReAct program are never
imported from an artifact: the user names them again with ``--tools``.

Reading is guarded (``promptless.artifact_file``): only a regular file, not too big, not
nested too deeply, of a version this promptless reads. A saved LM is a description: the
commands decide where requests go from the user's options (``common.program_lm``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptless.atomic import write_text_atomic
from promptless.cli.errors import CLIError
from promptless.cli.programs import ProgramKind, build_program
from promptless.redact import redact_url

if TYPE_CHECKING:
    from promptless.module import Module
    from promptless.signature import Signature

ARTIFACT_FORMAT = "promptless.program"  # promptless.module.ARTIFACT_FORMAT, without importing the module
CLI_KEY = "cli"


@dataclass
class ProgramSpec:
    """What the CLI needs to rebuild a program: its kind, the task signature, the LM it was compiled with."""

    program: str
    signature: str
    lm: str | None = None
    api_base: str | None = None
    tools: str | None = None
    metric: str | None = None
    compile: dict[str, Any] = field(default_factory=dict)  # a summary of the compile report
    label_names: dict[str, str] = field(default_factory=dict)  # --label-names: code -> what it means

    def to_dict(self) -> dict[str, Any]:
        """The section as saved: an endpoint's credentials (``user:pw@``, ``?api-key=``) are masked."""
        out = {k: v for k, v in asdict(self).items() if v not in (None, {})}
        if out.get("api_base"):
            out["api_base"] = redact_url(out["api_base"])
        return out

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> ProgramSpec:
        if not isinstance(data, Mapping) or not isinstance(data.get("signature"), str):
            raise CLIError(f"{path}: its '{CLI_KEY}' section has no signature string")
        program = data.get("program")
        if program not in {k.value for k in ProgramKind}:
            raise CLIError(f"{path}: its '{CLI_KEY}' section names an unknown program {program!r}")
        known = {k: data[k] for k in ("lm", "api_base", "tools", "metric") if isinstance(data.get(k), str)}
        summary = data.get("compile") if isinstance(data.get("compile"), Mapping) else {}
        names = data.get("label_names") if isinstance(data.get("label_names"), Mapping) else {}
        label_names = {str(k): str(v) for k, v in names.items()}
        return cls(program, data["signature"], compile=dict(summary), label_names=label_names, **known)


@dataclass
class LoadedProgram:
    """A program rebuilt from an artifact, with what the commands need to know about it."""

    path: Path
    program: Module
    task: Signature  # inputs and outputs the program's data has
    spec: ProgramSpec | None
    state: dict[str, Any]

    @property
    def saved_lm(self) -> tuple[str | None, str | None]:
        """(model, api_base) the artifact describes: the CLI section's, else a predictor's own. Never trusted:
        ``common.program_lm`` runs an embedded model named here, but a remote one only when the user names it."""
        if self.spec is not None and self.spec.lm:
            return self.spec.lm, self.spec.api_base
        for saved in (self.state.get("predictors") or {}).values():
            lm = saved.get("lm") if isinstance(saved, Mapping) else None
            if isinstance(lm, Mapping) and isinstance(lm.get("model"), str):
                base = lm.get("api_base")
                return lm["model"], base if isinstance(base, str) else None
        return None, None


# -- reading ----------------------------------------------------------------------------------------
def read_artifact(path: str | Path) -> dict[str, Any]:
    """The artifact's JSON; a one-line error for a missing file, non-UTF-8 text, or JSON that is not a program.

    Also for what is not a regular file (a FIFO would hang the read), a directory, JSON nested too deeply
    and a ``version`` other than an integer this promptless reads.
    """
    from promptless.artifact_file import check_version, loads_bounded, read_regular_text
    from promptless.cli.data import json_kind
    from promptless.errors import ArtifactError

    path = Path(path)
    try:
        text = read_regular_text(path)
    except ArtifactError as error:
        raise CLIError(str(error)) from None
    if not text.strip():
        raise CLIError(f"{path} is not a promptless program artifact (the file is empty)")
    try:
        state = loads_bounded(text, path)
    except ArtifactError as error:
        raise CLIError(str(error)) from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise CLIError(f"{path} is not a promptless program artifact (it holds JSON lines: a data file?)") from None
        where = f"line {error.lineno}, column {error.colno}"
        raise CLIError(f"{path} is not a promptless program artifact (invalid JSON: {error.msg} at {where})") from None
    if not isinstance(state, dict):
        kind = "list: a data file?" if isinstance(state, list) else json_kind(state)
        raise CLIError(f"{path} is not a promptless program artifact (it holds a JSON {kind})")
    if state.get("format") != ARTIFACT_FORMAT:
        raise CLIError(
            f'{path} is not a promptless program artifact (its "format" is {state.get("format")!r}, '
            f"not {ARTIFACT_FORMAT!r})"
        )
    try:
        check_version(state, path)
    except ArtifactError as error:
        raise CLIError(str(error)) from None
    if not isinstance(state.get("predictors"), dict) or not state["predictors"]:
        raise CLIError(f"{path} is not a usable promptless program artifact (it has no predictors)")
    return state


def load_program(path: str | Path, tools: Callable[[], list[Any]] | None = None) -> LoadedProgram:
    """Rebuild the program saved at ``path`` (see the module docstring); ``tools()`` gives a ReAct's tools."""
    path = Path(path)
    state = read_artifact(path)
    try:
        if CLI_KEY in state:
            spec = ProgramSpec.from_dict(state[CLI_KEY], path)
            program, task = _from_spec(spec, path, tools)
            program.load_state(state)
        else:
            spec = None
            program, task = _single_predictor(state, path)
    except (TypeError, ValueError) as error:  # promptless.module.ArtifactError is a ValueError
        raise CLIError(f"{path}: {error}") from None
    return LoadedProgram(path, program, task, spec, state)


def _from_spec(spec: ProgramSpec, path: Path, tools: Callable[[], list[Any]] | None) -> tuple[Module, Signature]:
    from promptless.signature import ensure_signature

    try:
        task = ensure_signature(spec.signature)
    except ValueError as error:
        raise CLIError(f"{path}: its signature does not parse ({error})") from None
    tool_list = None
    if spec.program == ProgramKind.react:
        tool_list = tools() if tools is not None else None
        if not tool_list:
            hint = _named(spec)
            raise CLIError(f"{path} is a ReAct program: pass its tools with --tools module:function[,...]{hint}")
    return build_program(spec.program, task, tool_list), task


def _named(spec: ProgramSpec) -> str:
    """What the file says its tools were, quoted as the file's text, never as advice to import it."""
    if not spec.tools:
        return " (tools are never imported from an artifact)"
    text = spec.tools if len(spec.tools) <= 120 else spec.tools[:119] + "…"
    return (
        f"; the file says it was compiled with {text!r}: that text comes from the file, so check that it names "
        "code you trust before you pass it (tools are never imported from an artifact)"
    )


def _single_predictor(state: dict[str, Any], path: Path) -> tuple[Module, Signature]:
    """An artifact saved from Python: a Predict rebuilt from its one predictor's saved signature."""
    from promptless.modules.predict import Predict

    predictors = state["predictors"]
    if len(predictors) != 1:
        raise CLIError(
            f"{path} holds a {state.get('program', 'program')} with {len(predictors)} predictors {sorted(predictors)} "
            f"and no '{CLI_KEY}' section saying how to rebuild it; load it in Python: MyProgram().load(path)"
        )
    ((name, saved),) = predictors.items()
    signature = _saved_signature(saved, name, path)
    predict = Predict(signature).load_predictor_state(saved, name=name)
    return predict, signature


def _saved_signature(saved: Any, name: str, path: Path) -> Signature:
    from promptless.fieldtypes import parse_type
    from promptless.signature import InputField, OutputField, Signature

    fields = saved.get("signature", {}).get("fields") if isinstance(saved, Mapping) else None
    if not isinstance(fields, list) or not all(isinstance(f, Mapping) for f in fields):
        raise CLIError(f"{path}: predictor {name!r} has no list of signature fields")
    spec: dict[str, Any] = {}
    for entry in fields:
        maker = InputField if entry.get("kind") == "input" else OutputField
        try:
            spec[str(entry.get("name"))] = (parse_type(str(entry.get("type") or "str")), maker())
        except ValueError as error:
            raise CLIError(
                f"{path}: predictor {name!r}, field {entry.get('name')!r}: {error}; "
                "load this artifact in Python with its program class"
            ) from None
    try:
        return Signature(spec)
    except ValueError as error:
        raise CLIError(f"{path}: predictor {name!r} has an unusable signature ({error})") from None


# -- writing ----------------------------------------------------------------------------------------
def save_program(program: Module, path: Path, spec: ProgramSpec) -> Path:
    """The library's artifact plus the CLI section, written atomically (a crash never leaves half a file)."""
    state = program.dump_state()
    state[CLI_KEY] = spec.to_dict()
    return write_text_atomic(path, json.dumps(state, indent=2, ensure_ascii=False) + "\n")


def check_writable(path: Path, *, data: Path | None = None, force: bool = False) -> None:
    """Fail before compiling, not after, when the artifact could not be written or would destroy other work.

    ``-o`` may not name the data file, nor overwrite a file that is not a promptless program unless
    ``force``; the directory is tried with a real (removed) temp file, so a read-only disk fails here.
    """
    if path.is_dir():
        raise CLIError(f"-o {path} is a directory; give a file name such as {path / 'program.json'}")
    if data is not None and str(data) != "-" and _same_file(path, data):
        raise CLIError(f"-o {path} is the data file {data}; writing the program there would destroy the data")
    if path.exists() and not force and not _is_artifact(path):
        raise CLIError(
            f"-o {path} exists and is not a promptless program; pass --force to overwrite it, or choose another name"
        )
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise CLIError(f"-o {path}: cannot write into {existing}")
    if existing == parent:
        import tempfile

        try:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".write-test")
        except OSError as error:
            raise CLIError(f"-o {path}: cannot write into {parent} ({error.strerror})") from None
        os.close(fd)
        Path(probe).unlink(missing_ok=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_artifact(path: Path) -> bool:
    """A file promptless wrote (or an empty one): overwriting it loses nothing the user cannot rebuild."""
    try:
        if path.is_file() and path.stat().st_size == 0:
            return True
        read_artifact(path)
    except CLIError:
        return False
    return True
