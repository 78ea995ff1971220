"""DESIGN.md section 1: no import circle inside the repository's packages.

The import graph of ``flows``, ``models`` and ``mm_runtime`` is read from the sources
with ``ast`` (no module is imported) and must have no strongly connected component
of more than one module. Every import statement counts, including those inside
functions: an import moved into a function to dodge a circle still ties the two
modules together (what a ``load()`` dispatcher and the loaders that import its helpers
used to do). Imports under ``if TYPE_CHECKING:`` are left out; they never run.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "models", "mm_runtime")


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of PACKAGES under ``root``."""
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _edges(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The modules of ``mods`` that module ``name`` (file ``path``) imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
            continue
        if node.level:
            base = here[: len(here) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        for a in node.names:
            if f"{mod}.{a.name}" in mods:       # from pkg import submodule
                out.add(f"{mod}.{a.name}")
            elif mod in mods:                   # from module import name
                out.add(mod)
    out.discard(name)
    return out


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    mods = _modules(root)
    return {name: _edges(name, path, mods) for name, path in mods.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def test_no_import_cycle_in_the_packages():
    graph = import_graph()
    assert "models.data.loaders" in graph and len(graph) > 20
    cycles = import_cycles(graph)
    detail = [{m: sorted(graph[m] & set(c)) for m in c} for c in cycles]
    assert not cycles, f"import cycles (module -> the cycle members it imports): {detail}"


def test_the_check_finds_a_circle_hidden_in_a_function(tmp_path):
    """A dispatcher importing a loader lazily while the loader imports the dispatcher's
    helpers at the top is a circle; a TYPE_CHECKING-only import is not."""
    d = tmp_path / "models" / "data"
    d.mkdir(parents=True)
    (tmp_path / "models" / "__init__.py").write_text("")
    (d / "__init__.py").write_text("")
    (d / "loaders.py").write_text(
        "def load(p):\n    from models.data.lobster import load_lobster\n    return load_lobster(p)\n"
        "def read_bytes(p):\n    return b''\n")
    (d / "lobster.py").write_text("from models.data.loaders import read_bytes\n")
    (d / "tables.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .lobster import x\n")
    (d / "io.py").write_text("from . import tables\n")
    (d / "binance.py").write_text("from .io import tables\n")
    for pkg in ("flows", "mm_runtime"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["models.data.io"] == {"models.data.tables"}
    assert graph["models.data.binance"] == {"models.data.io"}
    assert graph["models.data.tables"] == set()
    assert import_cycles(graph) == [["models.data.loaders", "models.data.lobster"]]
