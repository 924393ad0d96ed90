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


def _imports(path: Path, modules: dict[str, Path], runtime_only: bool = False) -> set[str]:
    """Every flowzero module ``path`` imports, wherever the import is (in functions, under TYPE_CHECKING too;
    ``runtime_only`` leaves out the type-only ones under ``if TYPE_CHECKING:``, which describe and do not load)."""
    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    tree = ast.parse(path.read_text(encoding="utf-8"))
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                node.body = [ast.Pass()]
    targets: set[str] = set()
    for node in ast.walk(tree):
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


# The layers of docs/architecture.md, top first; a module may import its own layer and the ones below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("flowzero.cli", "flowzero.demo", "flowzero.api", "flowzero.__main__"),
    ("flowzero.providers", "flowzero.storage.sqlite", "flowzero.downloaders.threads", "flowzero.downloaders.fast"),
    ("flowzero.ordering", "flowzero.delivery", "flowzero.coverage", "flowzero.webaoi"),
    ("flowzero.planet", "flowzero.downloaders", "flowzero.storage", "flowzero.aoi", "flowzero.selection",
     "flowzero.chunking"),
    ("flowzero.sandbox",),
    ("flowzero.config", "flowzero.pacing", "flowzero.plugins", "flowzero.leases", "flowzero.hookspecs",
     "flowzero.models", "flowzero.errors", "flowzero.redact", "flowzero.localserver", "flowzero.aws", "flowzero.s3",
     "flowzero.transient", "flowzero.data", "flowzero"),
)


def _layer(name: str) -> int:
    """The layer of a module: the most specific place that names it (``flowzero.downloaders.fast`` before
    ``flowzero.downloaders``)."""
    best, depth = len(LAYERS), -1
    for number, places in enumerate(LAYERS):
        for place in places:
            if (name == place or name.startswith(place + ".")) and place.count(".") > depth:
                best, depth = number, place.count(".")
    return best


def test_every_module_has_a_layer() -> None:
    assert [name for name in _modules() if _layer(name) == len(LAYERS)] == []


def test_imports_point_down_the_layers() -> None:
    modules = _modules()
    upward = [f"{name} -> {target}" for name, path in modules.items()
              for target in _imports(path, modules, runtime_only=True) if _layer(target) < _layer(name)]
    assert upward == []
