"""The package's modules import each other without a cycle.

Every ``.py`` file under ``dlfd/`` is parsed (not imported); its imports of ``dlfd`` modules,
absolute or relative, at the top or inside functions, become edges of a graph that must be
acyclic. Imports under ``if TYPE_CHECKING:`` are skipped: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlfd"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``dlfd/unlearn/base.py`` → ``dlfd.unlearn.base``; ``dlfd/unlearn/__init__.py`` →
    ``dlfd.unlearn``."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(node: ast.AST, here: str, is_package: bool, modules: set[str]) -> set[str]:
    """The ``dlfd`` modules one import statement in module ``here`` loads."""
    if isinstance(node, ast.Import):
        targets = set()
        for alias in node.names:
            name = alias.name
            while name and name not in modules:  # ``import dlfd.x.attr`` → dlfd.x
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
        return targets
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    if origin not in modules:
        return set()
    # ``from dlfd import data`` loads the submodule dlfd.data; ``from .data import X`` loads
    # dlfd.data only
    subs = {f"{origin}.{a.name}" for a in node.names} & modules
    return subs or {origin}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    files = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[name] = set().union(*(_resolve(n, name, is_package, modules)
                                    for n in _imports(tree))) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (depth-first search, sorted for a stable
    message)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_graph_sees_absolute_relative_and_nested_imports():
    graph = import_graph()
    assert {"dlfd.source", "dlfd.sources", "dlfd.checks", "dlfd.fileio"} <= graph["dlfd.data"]
    assert "dlfd.source" in graph["dlfd.sources"]
    assert "dlfd.data" not in graph["dlfd.sources"] and "dlfd.data" not in graph["dlfd.source"]
    # the unlearn package's __init__ imports its submodules with relative imports
    assert any(m.startswith("dlfd.unlearn.") for m in graph["dlfd.unlearn"])
    assert "dlfd.profiles" in graph["dlfd.experiment"]


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": set(), "c": {"c2"}, "c2": {"c"}}, ["c", "c2", "c"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
])
def test_find_cycle_names_the_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


def test_relative_imports_resolve(tmp_path):
    pkg = tmp_path / "dlfd"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from dlfd import a\nimport dlfd.sub.b\n")
    graph = import_graph(pkg)
    assert graph == {"dlfd": set(), "dlfd.a": {"dlfd.sub.b"}, "dlfd.sub": {"dlfd.sub.b"},
                     "dlfd.sub.b": {"dlfd.a"}, "dlfd.c": {"dlfd.sub.b"}}
    assert find_cycle(graph) == ["dlfd.a", "dlfd.sub.b", "dlfd.a"]
