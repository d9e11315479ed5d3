"""The house has no import circles: a graph of every import in learnmech_core/ and learnmech_app/, read
from each module's syntax tree (imports inside functions count too), must be acyclic, and two layer
rules hold: figure builders (`learnmech_core.plots`) import nothing from `learnmech_core.phenomena`,
and the run store (`learnmech_core.store`) imports nothing that trains (`learnmech_core.train`).

`from pkg import name` points at the module `pkg.name` when there is one, else at `pkg` itself; a module
does not depend on its parent packages (Python imports them first, but that is not a design choice).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("learnmech_core", "learnmech_app")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _resolve(name: str, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return name
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node.level, mod, is_package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:  # `import a.b.c` of a non-module attribute
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions_and_relative_ones():
    graph = import_graph()
    assert "learnmech_core.config" in graph["learnmech_core.train"]  # a plain relative import
    assert "learnmech_core.phenomena.base" in graph["learnmech_core.phenomena.edge_of_stability"]
    # a lazy import inside a method (figures) is an edge too
    assert "learnmech_core.plots.phenomena_curvature" in graph["learnmech_core.phenomena.edge_of_stability"]


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_plots_import_nothing_from_phenomena():
    graph = import_graph()
    bad = sorted((m, t) for m, ts in graph.items() if m.startswith("learnmech_core.plots")
                 for t in ts if t.startswith("learnmech_core.phenomena"))
    assert not bad, bad


def test_store_imports_nothing_that_trains():
    graph = import_graph()
    seen, todo = set(), ["learnmech_core.store"]
    while todo:  # everything the store pulls in, directly or not
        m = todo.pop()
        for t in graph.get(m, ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    assert "learnmech_core.train" not in seen
