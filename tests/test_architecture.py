"""The house rules of docs/architecture.md, checked on the source: imports never go round in a circle, and no core
module imports a built-in plugin (the registry hands them out)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowzero"
BUILT_IN_PLUGINS = ("flowzero.storage.sqlite", "flowzero.downloaders.threads", "flowzero.downloaders.fast",
                    "flowzero.providers")
# Allowed to import a built-in plugin module: the plugins themselves, the public API (ThreadsDownloader, for a
# downloader that hands files over) and the s5cmd-style reuse of the threads engine inside downloaders.
MAY_IMPORT_PLUGINS = ("flowzero.api", "flowzero.providers", "flowzero.downloaders.fast",
                      "flowzero.downloaders.threads", "flowzero.storage.sqlite")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every flowzero module ``path`` imports, wherever the import is (in functions, under TYPE_CHECKING too)."""
    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("flowzero"):
            assert node.module is not None
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found = owner(full if full in modules else node.module)
                if found:
                    targets.add(found)
        elif isinstance(node, ast.Import):
            targets |= {t for a in node.names if a.name.startswith("flowzero") and (t := owner(a.name))}
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_in_a_circle() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_no_core_module_imports_a_built_in_plugin() -> None:
    def within(name: str, places: tuple[str, ...]) -> bool:
        return any(name == place or name.startswith(place + ".") for place in places)

    modules = _modules()
    offenders = []
    for name, path in modules.items():
        if within(name, MAY_IMPORT_PLUGINS):
            continue
        offenders += [f"{name} -> {target}" for target in _imports(path, modules) if within(target, BUILT_IN_PLUGINS)]
    assert offenders == []
