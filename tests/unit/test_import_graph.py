"""The import graph of each deployable is acyclic, and the layers point one way.

Every ``import`` of a project module counts, at module level or inside a function or an
``if TYPE_CHECKING:`` block: a cycle hidden in a function is still a cycle a reader has to hold
in their head, and the one that bites at start-up when someone moves the import up.

An edge goes to the module an import names (``from pkg import sub`` names ``pkg.sub``), not to
the parent packages Python runs on the way, so a package's ``__init__`` may re-export what its
own modules define.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("synapse_modules", "bridges", "bots", "wangxin_stack", "wangxin_common")
# Who may not import whom: the shared library and the Synapse modules know no deployable above
# them, and a bot is not part of the bridge.
FORBIDDEN = {
    "wangxin_common": ("bridges", "bots", "wangxin_stack", "synapse_modules"),
    "synapse_modules": ("bridges", "bots", "wangxin_stack"),
    "bots": ("bridges", "synapse_modules"),
}


def _modules() -> dict[str, str]:
    """Dotted module name -> file path, for every ``.py`` of the project's packages."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for directory, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES[module].endswith("__init__.py")


def _imported(module: str, tree: ast.AST) -> Iterable[tuple[str, int]]:
    """The project modules that ``module`` imports, with the line of each import."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module if _is_package(module) else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}", node.lineno
                elif base in MODULES:
                    yield base, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        edges: dict[str, int] = {}
        for target, line in _imported(module, tree):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One concrete cycle (a path back to its start) for each strongly connected group (Tarjan),
    followed by the group's other modules, if any, after a ``...``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for group in sorted(groups, key=min):
        path = _path_within(graph, group)
        rest = sorted(group - set(path))
        found.append([*path, "...", *rest] if rest else path)
    return found


def _path_within(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module, staying inside the group."""
    start = min(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [start]
                    while node != start:
                        path.insert(1, node)
                        node = previous[node]
                    return [*path, start]
                if target in group and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # pragma: no cover


def _describe(cycle: list[str]) -> str:
    path, rest = cycle, []
    if "..." in cycle:
        path, rest = cycle[: cycle.index("...")], cycle[cycle.index("...") + 1 :]
    steps = [f"{a} (line {GRAPH[a][b]})" for a, b in zip(path, path[1:], strict=False)]
    text = " -> ".join([*steps, path[-1]])
    return text + (f"  [same knot: {', '.join(rest)}]" if rest else "")


def test_the_graph_is_read_from_the_real_tree() -> None:
    # A sanity check that the parser resolves the project's imports at all.
    assert "bridges.app" in GRAPH and "bridges.config" in GRAPH["bridges.app"]
    assert len(MODULES) > 50


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    inside = {m: {t: n for t, n in edges.items() if t.split(".")[0] == package}
              for m, edges in GRAPH.items() if m.split(".")[0] == package}
    cycles = _cycles(inside)
    assert not cycles, "import cycles:\n" + "\n".join("  " + _describe(c) for c in cycles)


def test_no_import_cycles_across_packages() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join("  " + _describe(c) for c in cycles)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_point_one_way(package: str) -> None:
    wrong = [f"{module} (line {line}) imports {target}"
             for module, edges in sorted(GRAPH.items()) if module.split(".")[0] == package
             for target, line in sorted(edges.items()) if target.split(".")[0] in FORBIDDEN[package]]
    assert not wrong, "\n".join(wrong)


def test_the_cycle_finder_reports_a_path() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    graph = {"a": {"b": 1}, "b": {"a": 2, "c": 3}, "c": {"b": 4}}
    assert _cycles(graph) == [["a", "b", "a", "...", "c"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []
