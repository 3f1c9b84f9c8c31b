"""The floor plan (docs/design.md, "Where things live"): each floor imports only from floors below it or its own.

Every import of a promptless module is collected with ``ast``, at any depth, except
those under ``if TYPE_CHECKING:`` (annotations, not arrows). The rules:
- no import points to a higher floor, and the import graph has no cycle;
- adapters/ and lm/ are siblings: neither imports the other;
- the side wings retrieve/ and sandbox/ import only floors 1-2 (besides themselves);
- a function-local import of a promptless module exists only in the faces (cli/, the lazy
  names of ``__init__``), where it keeps start-up fast; elsewhere a deferred import is for a
  heavy third-party package only, marked ``# lazy: <reason>``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(os.environ.get("PROMPTLESS_LAYER_SRC", Path(__file__).resolve().parents[2] / "src"))
PACKAGE = SRC / "promptless"

# Most specific prefix wins. A new module must be placed here.
FLOORS: dict[str, int] = {
    "promptless.types": 1,
    "promptless.errors": 1,
    "promptless.fieldtypes": 1,
    "promptless.atomic": 1,
    "promptless.artifact_file": 1,
    "promptless.redact": 1,
    "promptless._version": 1,
    "promptless.signature": 2,
    "promptless.primitives": 2,
    "promptless.budget": 2,
    "promptless.settings": 2,
    "promptless.executor": 2,
    "promptless.dspy_format": 2,
    "promptless.callbacks": 3,
    "promptless.trace": 3,
    "promptless.cost": 3,
    "promptless.adapters": 4,
    "promptless.lm": 4,
    "promptless.testing": 4,
    "promptless.module": 5,
    "promptless.distributed": 5,  # the executors by name (threads, Ray): Module.batch and Evaluate pick one
    "promptless.modules": 5,
    "promptless.tool": 5,
    "promptless.retrieve": 5,
    "promptless.sandbox": 5,
    "promptless.streaming": 6,
    "promptless.inspection": 6,
    "promptless.telemetry": 6,
    "promptless.evaluate": 6,
    "promptless.finetune": 6,
    "promptless.finetune.base": 5,  # the weights record and its LM: what Predict saves and loads
    "promptless.finetune.artifact": 5,
    "promptless.finetune.runtime": 5,
    "promptless.optimizers": 7,
    "promptless.cli": 8,
    "promptless.teleprompt": 8,  # DSPy's import paths: faces re-exporting the real modules
    "promptless.predict": 8,
    "promptless.signatures": 8,
    "promptless.utils": 8,
    "promptless.__main__": 8,
    "promptless": 8,  # the package's __init__: lazy public names
}
SIDE_WINGS = ("promptless.retrieve", "promptless.sandbox")
SIBLINGS = (("promptless.adapters", "promptless.lm"), ("promptless.lm", "promptless.adapters"))
FACES = ("promptless.cli", "promptless")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor_of(name: str) -> int:
    best = max((prefix for prefix in FLOORS if name == prefix or name.startswith(prefix + ".")), key=len, default=None)
    if best is None:
        raise KeyError(name)
    return FLOORS[best]


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def _targets(source: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The promptless modules an import statement loads (a package's submodule when named in a from-import)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    found = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("promptless") and name != source:
            found.append(name)
    return found


def collect() -> list[tuple[str, str, bool, int]]:
    """(importer, imported, at module level, line) for every promptless-to-promptless import."""
    edges = []
    for source, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        top = {id(node) for node in tree.body}
        for statement in tree.body:  # an `if`/`try` at module level still runs at import
            if isinstance(statement, (ast.If, ast.Try)) and id(statement) not in skipped:
                top.update(id(inner) for inner in ast.walk(statement))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
                edges.extend((source, target, id(node) in top, node.lineno) for target in _targets(source, path, node))
    return edges


EDGES = collect()


def test_every_module_has_a_floor():
    unplaced = [name for name in MODULES if not any(within(name, prefix) for prefix in FLOORS)]
    assert not unplaced, f"place these modules in FLOORS: {unplaced}"


def test_no_import_goes_up_a_floor():
    upward = [
        f"{source} (floor {floor_of(source)}) imports {target} (floor {floor_of(target)}) at line {line}"
        for source, target, _, line in EDGES
        if floor_of(target) > floor_of(source)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_siblings_and_side_wings_keep_apart():
    crossing = [
        f"{source} imports {target}"
        for source, target, _, _ in EDGES
        for a, b in SIBLINGS
        if within(source, a) and within(target, b)
    ]
    crossing += [
        f"{source} (a side wing) imports {target}"
        for source, target, _, _ in EDGES
        for wing in SIDE_WINGS
        if within(source, wing) and not within(target, wing) and floor_of(target) > 2
    ]
    assert not crossing, "\n".join(crossing)


def test_deferred_imports_of_the_package_only_in_the_faces():
    deferred = [
        f"{source}:{line} imports {target} inside a function"
        for source, target, top, line in EDGES
        if not top and not any(source == face or within(source, "promptless.cli") for face in FACES)
    ]
    assert not deferred, "\n".join(deferred)


def test_the_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in EDGES:
        graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return {name for name in out.stdout.split() if name.startswith("promptless")}


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import promptless.primitives", ("promptless.lm", "promptless.callbacks", "promptless.adapters")),
        ("import promptless.modules.best_of_n", ("promptless.optimizers", "promptless.evaluate")),
        ("import promptless.adapters", ("promptless.lm", "promptless.module")),
    ],
)
def test_a_low_module_loads_nothing_above_it(statement, forbidden):
    loaded = _loaded_after(statement)
    leaked = sorted(name for name in loaded if any(within(name, prefix) for prefix in forbidden))
    assert not leaked, f"{statement} loaded {leaked}"
