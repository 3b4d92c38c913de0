"""The import graph of gdbench, imports inside functions included: no circle, the schema and
the rerun declarations' machinery import nothing of gdbench, and the config layer imports no
engine (so checking a config never loads torch: see also tests/test_torch_line.py)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "gdbench").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the gdbench modules it imports anywhere in its code (a package's imports of
    its own submodules are its face, not a dependency)."""
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module for a in node.names
                ]
            else:
                continue
            for target in targets:
                found = owner(target) if target.startswith("gdbench") else None
                if found and found != name and not found.startswith(name + "."):
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circle() -> None:
    assert cycles(import_graph()) == []


def test_a_circle_is_found() -> None:
    """The check itself: a graph with a circle reports it."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_schema_and_the_reads_import_nothing_of_gdbench() -> None:
    """The schema and its defaults (which every layer reads) and the reads machinery sit below
    every other module."""
    graph = import_graph()
    assert graph["gdbench.schema_defaults"] == set()
    assert graph["gdbench.config.schema"] == {"gdbench.schema_defaults"}
    assert graph["gdbench.reads"] == set()


def test_the_config_layer_imports_no_engine() -> None:
    graph = import_graph()
    config = {m: ts for m, ts in graph.items() if m.startswith("gdbench.config")}
    assert config and not any(
        t.startswith(("gdbench.engines", "gdbench.experiment")) for ts in config.values() for t in ts
    )
