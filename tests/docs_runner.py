"""Run the ```python blocks of docs/**/*.md so the documentation cannot rot.

Each page runs in its own subprocess (a fresh interpreter, cwd = a temporary
directory, a timeout), its blocks in order in one shared namespace, like a
notebook. HTML comments steer it:

* ``<!-- docs-test: unit -->`` or ``<!-- docs-test: integration -->`` near the top
  of a page: which test runs it (unit: no LM or only ``ScriptedLM``; integration:
  the embedded models). A unit page that tries to build a real backend fails.
* On the line(s) right above a block: ``<!-- skip: reason -->`` (never run it),
  ``<!-- requires: module, module -->`` (skip it while a module is not importable,
  e.g. a feature still being built), ``<!-- server: reason -->`` (it needs the
  llama.cpp server: it runs only when the test has one and sets
  ``PROMPTLESS_DOCS_API_BASE``).
* After a block (before the next python block): ``<!-- expect: regex -->``, checked
  against what that block printed.

Run as a script (``python tests/docs_runner.py payload.json result.json``) it is
the child that executes one page; imported, it parses pages and drives children.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API_BASE_ENV = "PROMPTLESS_DOCS_API_BASE"
TIERS = ("unit", "integration")

_TIER = re.compile(r"<!--\s*docs-test:\s*([\w-]+)\s*-->")
_MARKER = re.compile(r"^\s*<!--\s*(skip|requires|server|expect)\s*:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")


class DocsFormatError(ValueError):
    """A page's markers are malformed; the message names the page and the line."""


@dataclass
class Block:
    """One ```python block: where it is, its code, and what the markers around it say."""

    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None = None
    server: str | None = None
    requires: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)


@dataclass
class Page:
    path: Path
    tier: str | None
    blocks: list[Block]

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix() if self.path.is_relative_to(ROOT) else str(self.path)


def parse_page(path: Path, text: str | None = None) -> Page:
    """The page's tier and python blocks with their markers; DocsFormatError on a malformed marker."""
    text = path.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    tiers = _TIER.findall(text)
    if len(tiers) > 1:
        raise DocsFormatError(f"{path}: more than one docs-test marker: {tiers}")
    if tiers and tiers[0] not in TIERS:
        raise DocsFormatError(f"{path}: docs-test marker {tiers[0]!r} is not one of {TIERS}")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            marker = _MARKER.match(lines[i])
            if marker and marker.group(1) == "expect":
                if not blocks:
                    raise DocsFormatError(f"{path}:{i + 1}: an expect marker before any python block")
                _check_regex(path, i + 1, marker.group(2))
                blocks[-1].expect.append(marker.group(2))
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise DocsFormatError(f"{path}:{i + 1}: a code fence that is never closed")
        if opening.group(1) == "python":
            blocks.append(_block(path, lines, i, end))
        i = end + 1
    return Page(path, tiers[0] if tiers else None, blocks)


def _block(path: Path, lines: list[str], start: int, end: int) -> Block:
    block = Block(line=start + 1, code="\n".join(lines[start + 1 : end]) + "\n")
    above = start - 1
    while above >= 0 and (marker := _MARKER.match(lines[above])):
        kind, value = marker.groups()
        if kind == "expect":
            break
        if not value:
            raise DocsFormatError(f"{path}:{above + 1}: the {kind} marker needs a reason or a value")
        if kind == "skip":
            block.skip = value
        elif kind == "server":
            block.server = value
        else:
            block.requires.extend(name.strip() for name in value.split(",") if name.strip())
        above -= 1
    return block


def _check_regex(path: Path, line: int, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as error:
        raise DocsFormatError(f"{path}:{line}: expect marker {pattern!r} is not a valid regex ({error})") from None


def pages(tier: str | None = None) -> list[Page]:
    """Every page under docs/ (sorted), or those of one tier; pages without python blocks count as unit."""
    found = [parse_page(path) for path in sorted(DOCS.rglob("*.md"))]
    if tier is None:
        return found
    return [page for page in found if (page.tier or "unit") == tier]


# -- the parent side ---------------------------------------------------------------------------------
@dataclass
class BlockResult:
    line: int
    status: str  # "ok", "skipped", "failed"
    stdout: str = ""
    reason: str = ""


@dataclass
class PageResult:
    page: Page
    blocks: list[BlockResult]
    returncode: int | None
    stderr: str
    timed_out: bool = False

    @property
    def skipped(self) -> list[BlockResult]:
        return [b for b in self.blocks if b.status == "skipped"]

    def problems(self) -> str:
        """Empty when every block ran (or was skipped as marked); else a report naming page, line and error."""
        out = []
        if self.timed_out:
            last = self.blocks[-1].line if self.blocks else None
            out.append(f"{self.page.name}: timed out (last block that finished: line {last})")
        for result in self.blocks:
            if result.status == "failed":
                code = next(b.code for b in self.page.blocks if b.line == result.line)
                out.append(
                    f"{self.page.name}:{result.line}: the block failed\n--- code ---\n{code}--- error ---\n"
                    f"{result.reason}\n--- printed ---\n{result.stdout[-3000:]}"
                )
        ran = {b.line for b in self.blocks}
        if not self.timed_out and not out and ran != {b.line for b in self.page.blocks}:
            out.append(f"{self.page.name}: the runner stopped early (exit code {self.returncode})")
        if out and self.stderr.strip():
            out.append(f"--- stderr ---\n{self.stderr[-3000:]}")
        return "\n\n".join(out)


def run_page(page: Page, *, timeout: float, cwd: Path, env: dict[str, str] | None = None) -> PageResult:
    """Run the page's blocks in a child interpreter in ``cwd``; kill it (and its children) after ``timeout`` s."""
    tier = page.tier or "unit"
    payload = {"page": str(page.path), "tier": tier, "blocks": [asdict(b) for b in page.blocks]}
    with tempfile.TemporaryDirectory(prefix="docs-runner-") as scratch:
        payload_path, result_path = Path(scratch) / "payload.json", Path(scratch) / "result.json"
        payload_path.write_text(json.dumps(payload), encoding="utf-8")
        child_env = {**os.environ, **(env or {})}
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), child_env.get("PYTHONPATH")]))
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        command = [sys.executable, str(Path(__file__).resolve()), str(payload_path), str(result_path)]
        process = subprocess.Popen(
            command, cwd=cwd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        timed_out = False
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)  # the child's own session: it and whatever it started
            _, stderr = process.communicate()
        results = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else []
    return PageResult(
        page,
        [BlockResult(**r) for r in results],
        process.returncode,
        stderr.decode("utf-8", "replace"),
        timed_out,
    )


# -- the child side ----------------------------------------------------------------------------------
class _Tee:
    """Writes to the captured buffer and to the real stdout (seen when the parent's test fails)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def _forbid_real_backends() -> None:
    """On a unit-tier page, building the embedded or the HTTP backend is an error that says what to do."""
    import promptless.lm.base as base
    import promptless.lm.llama as llama
    import promptless.lm.openai as openai

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "this docs page is marked <!-- docs-test: unit --> but a block asked for a real model; "
            "use promptless.testing.ScriptedLM there, or mark the page <!-- docs-test: integration -->"
        )

    llama.LlamaBackend = base.LlamaBackend = forbidden  # type: ignore[assignment,misc]
    openai.OpenAIBackend = base.OpenAIBackend = forbidden  # type: ignore[assignment,misc]


def _missing(modules: list[str]) -> list[str]:
    import importlib.util

    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _run_child(payload_path: Path, result_path: Path) -> int:
    import contextlib
    import io
    import types

    payload = json.loads(payload_path.read_text(encoding="utf-8"))
    if payload["tier"] == "unit":
        _forbid_real_backends()
    module = types.ModuleType("__docs__")  # a real module, so dataclasses and typing can resolve names
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    results: list[dict[str, Any]] = []

    def save() -> None:  # after every block, so a timeout still shows how far the page got
        result_path.write_text(json.dumps(results), encoding="utf-8")

    status = 0
    for block in payload["blocks"]:
        line = block["line"]
        reason = block["skip"]
        if reason is None and (missing := _missing(block["requires"])):
            reason = f"needs {', '.join(missing)}, which is not importable here (not built yet?)"
        if reason is None and block["server"] and not os.environ.get(API_BASE_ENV):
            reason = f"needs the llama.cpp server ({block['server']}); {API_BASE_ENV} is not set"
        if reason is not None:
            results.append({"line": line, "status": "skipped", "reason": reason})
            save()
            continue
        buffer = io.StringIO()
        code = "\n" * line + block["code"]  # so tracebacks name the page's own line numbers
        try:
            with contextlib.redirect_stdout(_Tee(buffer, sys.__stdout__)):
                exec(compile(code, payload["page"], "exec"), namespace)
        except BaseException:
            results.append({"line": line, "status": "failed", "stdout": buffer.getvalue(), "reason": _trimmed()})
            save()
            status = 1
            break
        printed = buffer.getvalue()
        unmet = [p for p in block["expect"] if not re.search(p, printed, re.MULTILINE)]
        if unmet:
            results.append(
                {"line": line, "status": "failed", "stdout": printed, "reason": f"expected output matching {unmet}"}
            )
            save()
            status = 1
            break
        results.append({"line": line, "status": "ok", "stdout": printed})
        save()
    return status


def _trimmed() -> str:
    """The current exception's traceback without this runner's own frame."""
    import traceback

    kind, error, tb = sys.exc_info()
    return "".join(traceback.format_exception(kind, error, tb.tb_next if tb is not None else None))


if __name__ == "__main__":
    sys.exit(_run_child(Path(sys.argv[1]), Path(sys.argv[2])))
