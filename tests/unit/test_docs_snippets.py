"""The documentation cannot rot: docs pages' python blocks run, and the pages keep the docs' rules.

Unit tier: pages marked ``<!-- docs-test: unit -->`` run here (no LM call, or only
``promptless.testing.ScriptedLM``, a scripted stand-in). Pages that run the embedded
models are in tests/integration/test_docs_snippets.py; here their blocks are only
compiled and their ``pl.<name>`` references checked, so a renamed API fails fast.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import promptless
from tests.docs_runner import DOCS, ROOT, DocsFormatError, Page, pages, parse_page, run_page

PAGE_TIMEOUT_S = 240
OWN_PAGES = [page for page in pages() if page.path.name != "benchmarks.md"]  # benchmarks.md has its own owner
UNIT_PAGES = [page for page in pages("unit") if page.blocks]


def page_id(page: Page) -> str:
    return page.name


# -- the pages run ----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", UNIT_PAGES, ids=page_id)
def test_unit_page_runs(page: Page, tmp_path: Path) -> None:
    result = run_page(page, timeout=PAGE_TIMEOUT_S, cwd=tmp_path)
    assert not result.problems(), result.problems()
    if result.skipped and len(result.skipped) == len(page.blocks):
        pytest.skip("; ".join(f"line {b.line}: {b.reason}" for b in result.skipped))


# -- the rules every page keeps ---------------------------------------------------------------------
def test_the_docs_exist_and_every_page_with_code_says_which_tier_runs_it() -> None:
    names = {page.path.relative_to(DOCS).as_posix() for page in pages()}
    for required in ("index.md", "tutorial.md", "migration-from-dspy.md", "design.md", "cli.md", "observability.md"):
        assert required in names, f"docs/{required} is missing"
    assert any(name.startswith("modules/") for name in names) and any(name.startswith("optimizers/") for name in names)
    unmarked = [page.name for page in pages() if page.blocks and page.tier is None]
    assert not unmarked, f"pages with python blocks need <!-- docs-test: unit|integration -->: {unmarked}"
    tutorial = parse_page(DOCS / "tutorial.md")
    assert tutorial.tier == "integration", "the tutorial runs the real embedded model"
    assert "ScriptedLM" not in "".join(block.code for block in tutorial.blocks), "the tutorial uses the real model"


@pytest.mark.parametrize("page", OWN_PAGES, ids=page_id)
def test_page_opens_with_a_sentence_saying_what_it_is_for(page: Page) -> None:
    lines = [line for line in page.path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), f"{page.name} must start with a '# Title' line"
    prose = [line for line in lines[1:] if not line.lstrip().startswith("<!--")]
    first = prose[0]
    assert not first.startswith(("#", "```", "|", "-", "*", ">")), f"{page.name}: first line after the title: {first!r}"
    assert first.endswith("."), f"{page.name}: open with one full sentence saying what the page is for, not {first!r}"


@pytest.mark.parametrize("page", OWN_PAGES, ids=page_id)
def test_scripted_lm_is_never_presented_as_a_model(page: Page) -> None:
    code = "".join(block.code for block in page.blocks)
    if "ScriptedLM" not in code and "DummyLM" not in code:
        return
    prose = page.path.read_text(encoding="utf-8")
    assert re.search(r"stand-in|not a model", prose), (
        f"{page.name} runs ScriptedLM: say in the prose that it is a scripted stand-in for tests, not a model"
    )


def test_relative_links_resolve_inside_the_repository() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for page in pages():
        for target in link.findall(page.path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (page.path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT):
                broken.append(f"{page.name}: {target} points outside the repository")
            elif not resolved.exists():
                broken.append(f"{page.name}: {target} does not exist")
    assert not broken, "\n".join(broken)


# -- API references in every block (integration pages too) ---------------------------------------------
def _aliases(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name for alias in node.names if alias.name == "promptless"}
    return names


def _references(page: Page) -> list[tuple[int, str, str]]:
    """(line, module, name) for every ``pl.<name>`` and ``from promptless... import <name>`` in the page."""
    refs: list[tuple[int, str, str]] = []
    aliases: set[str] = set()
    for block in page.blocks:
        if block.skip or block.requires:
            continue  # not runnable here by design (a key, a server, a feature not built yet)
        tree = ast.parse(block.code, filename=f"{page.name}:{block.line}")
        aliases |= _aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                refs.append((block.line + node.lineno, "promptless", node.attr))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("promptless"):
                refs += [(block.line + node.lineno, node.module or "", alias.name) for alias in node.names]
    return refs


@pytest.mark.parametrize("page", [page for page in pages() if page.blocks], ids=page_id)
def test_every_block_compiles_and_every_promptless_name_it_uses_exists(page: Page) -> None:
    for block in page.blocks:
        compile(block.code, f"{page.name}:{block.line}", "exec")
    missing = []
    for line, module_name, name in _references(page):
        module = promptless if module_name == "promptless" else importlib.import_module(module_name)
        if not hasattr(module, name) and name not in getattr(module, "__all__", ()):
            missing.append(f"{page.name}:{line}: {module_name}.{name}")
    assert not missing, "names the docs use but promptless does not have:\n" + "\n".join(missing)


def test_migration_page_maps_every_dspy_name() -> None:
    text = (DOCS / "migration-from-dspy.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    dspy_names = [
        *("Signature", "InputField", "OutputField", "Example", "Prediction", "Module", "Predict", "ChainOfThought"),
        *("ReAct", "ProgramOfThought", "MultiChainComparison", "BestOfN", "Refine", "Parallel", "Retrieve"),
        *("ColBERTv2", "Evaluate", "BootstrapFewShot", "BootstrapFewShotWithRandomSearch", "LabeledFewShot"),
        *("KNNFewShot", "Ensemble", "COPRO", "MIPROv2", "GEPA", "SIMBA", "LM", "configure", "context"),
        *("inspect_history", "streamify", "asyncify", "acall", "DummyLM"),
    ]
    absent = [name for name in dspy_names if not re.search(rf"`[\w.]*\b{name}`", table)]
    assert not absent, f"the migration table does not mention {absent}"
    for name in re.findall(r"\| `pl\.(\w+)", table):
        assert hasattr(promptless, name), f"the migration table maps to pl.{name}, which does not exist"


# -- the runner itself ----------------------------------------------------------------------------------
def write_page(tmp_path: Path, text: str) -> Page:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return parse_page(path)


def test_markers_attach_to_the_block_they_precede_or_follow(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        "# T\n<!-- docs-test: integration -->\nText.\n\n"
        "```python\nx = 1\n```\n<!-- expect: ^1$ -->\n\n"
        "<!-- requires: promptless.cli, typer -->\n<!-- server: a llama.cpp server -->\n```python\ny = 2\n```\n\n"
        "```bash\nnot python\n```\n\n<!-- skip: needs an OpenAI key -->\n```python\nz = 3\n```\n"
        "```text\noutput\n```\n<!-- expect: out -->\n",
    )
    assert page.tier == "integration"
    first, second, third = page.blocks
    assert (first.line, first.code, first.expect, first.skip) == (5, "x = 1\n", ["^1$"], None)
    assert second.requires == ["promptless.cli", "typer"] and second.server == "a llama.cpp server"
    assert third.skip == "needs an OpenAI key" and third.expect == ["out"] and len(page.blocks) == 3


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("```python\nx = 1\n", "never closed"),
        ("<!-- skip: -->\n```python\nx = 1\n```\n", "needs a reason"),
        ("<!-- expect: x -->\n```python\nx = 1\n```\n", "before any python block"),
        ("```python\nx = 1\n```\n<!-- expect: ( -->\n", "not a valid regex"),
        ("<!-- docs-test: sometimes -->\n", "not one of"),
    ],
)
def test_malformed_markers_are_errors_naming_the_line(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(DocsFormatError, match=problem):
        write_page(tmp_path, text)


def test_blocks_share_a_namespace_run_in_the_given_directory_and_fail_with_the_page_line(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        "# T\n\n```python\nimport os\nhere = os.getcwd()\nprint('cwd', here)\n```\n<!-- expect: ^cwd -->\n\n"
        "<!-- skip: shows an OpenAI call -->\n```python\nraise SystemExit('never run')\n```\n\n"
        "<!-- requires: a_module_that_is_not_there -->\n```python\nraise SystemExit('never run')\n```\n\n"
        "```python\nprint(here)\nassert here == 'elsewhere', 'ran in the wrong directory'\n```\n"
        "```python\nprint('not reached')\n```\n",
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_page(page, timeout=60, cwd=workdir)
    statuses = [(b.line, b.status) for b in result.blocks]
    assert statuses == [(3, "ok"), (11, "skipped"), (16, "skipped"), (20, "failed")]
    assert result.blocks[0].stdout == f"cwd {workdir}\n"
    assert "shows an OpenAI call" in result.blocks[1].reason
    assert "a_module_that_is_not_there" in result.blocks[2].reason
    failure = result.problems()
    assert f"{page.name}:20: the block failed" in failure and "line 22" in failure and "wrong directory" in failure


def test_unmet_expectations_fail_and_a_hung_page_is_killed(tmp_path: Path) -> None:
    page = write_page(tmp_path, "# T\n\n```python\nprint('hello')\n```\n<!-- expect: ^goodbye$ -->\n")
    result = run_page(page, timeout=60, cwd=tmp_path)
    assert "expected output matching ['^goodbye$']" in result.problems()
    hung_text = "# T\n\n```python\nprint('started')\n```\n\n```python\nimport time\ntime.sleep(60)\n```\n"
    hung = write_page(tmp_path, hung_text)
    result = run_page(hung, timeout=3, cwd=tmp_path)
    assert result.timed_out and "timed out (last block that finished: line 3)" in result.problems()


def test_a_unit_page_cannot_reach_a_real_model(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        "# T\n<!-- docs-test: unit -->\n\n```python\nimport promptless as pl\n"
        "pl.Predict('question -> answer')(question='hi')\n```\n",
    )
    result = run_page(page, timeout=60, cwd=tmp_path)
    assert "marked <!-- docs-test: unit --> but a block asked for a real model" in result.problems()


def test_server_blocks_run_only_when_a_server_is_given(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        "# T\n\n<!-- server: the llama.cpp server -->\n```python\nimport os\n"
        "print(os.environ['PROMPTLESS_DOCS_API_BASE'])\n```\n",
    )
    skipped = run_page(page, timeout=60, cwd=tmp_path, env={"PROMPTLESS_DOCS_API_BASE": ""})
    assert skipped.blocks[0].status == "skipped" and "llama.cpp server" in skipped.blocks[0].reason
    ran = run_page(page, timeout=60, cwd=tmp_path, env={"PROMPTLESS_DOCS_API_BASE": "http://127.0.0.1:1/v1"})
    assert ran.blocks[0].stdout == "http://127.0.0.1:1/v1\n"


def test_docs_pages_parse() -> None:
    try:
        found = pages()
    except DocsFormatError as error:  # pragma: no cover - the message is the point
        pytest.fail(str(error))
    assert found and all(page.path.is_relative_to(DOCS) for page in found)
