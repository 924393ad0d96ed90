"""The plugin manager: loads the ``flowzero`` entry-point group and answers what is registered.

Built-in plugins (sqlite, threads, fast, psscope, basemap) are listed in flowzero's own pyproject under the same
entry-point group as third-party packages, so the core never imports a provider or a downloader by name.

``FLOWZERO_LOAD_PLUGINS`` limits loading to a comma-separated list of entry-point names (empty: none), so
tests can run with an exact set of plugins.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from flowzero import hookspecs
from flowzero.errors import PluginError

ENTRY_POINT_GROUP = "flowzero"
_REGISTRY_HOOKS = ("register_downloaders", "register_providers", "register_storage_backends")


@dataclass
class PluginInfo:
    """One loaded plugin, as `flowzero plugins list` shows it."""

    name: str
    package: str
    version: str
    hooks: list[str] = field(default_factory=list)
    registers: list[str] = field(default_factory=list)


pm = pluggy.PluginManager("flowzero")
pm.add_hookspecs(hookspecs)
_infos: dict[str, PluginInfo] = {}
_registries: dict[str, dict[str, type[Any]]] | None = None
_loaded = False


def warn(message: str) -> None:
    """One warning line on stderr; plugin trouble must never stop the CLI."""
    print(f"Warning: {message}", file=sys.stderr)


def _wanted(name: str) -> bool:
    only = os.environ.get("FLOWZERO_LOAD_PLUGINS")
    if only is None:
        return True
    return name in {n.strip() for n in only.split(",") if n.strip()}


def load_plugins() -> None:
    """Import every plugin of the entry-point group once; a broken one is skipped with a warning."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if not _wanted(ep.name) or pm.has_plugin(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist else "?"
        version = dist.version if dist else "?"
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a third-party import error must not break the CLI
            warn(f"plugin '{ep.name}' ({package}) failed to load: {type(exc).__name__}: {exc}")
            continue
        hooks = sorted(impl_name for impl_name in dir(module) if impl_name.startswith("register_"))
        _infos[ep.name] = PluginInfo(ep.name, package, version, hooks=hooks)


def register_plugin(module: Any, name: str, package: str = "(in-process)", version: str = "") -> None:
    """Register a plugin object directly (tests, embedding applications)."""
    global _registries
    load_plugins()
    pm.register(module, name=name)
    hooks = sorted(h for h in dir(module) if h.startswith("register_"))
    _infos[name] = PluginInfo(name, package, version, hooks=hooks)
    _registries = None


def unregister_plugin(name: str) -> None:
    """Undo :func:`register_plugin`."""
    global _registries
    pm.unregister(name=name)
    _infos.pop(name, None)
    _registries = None


def call_each(hook_name: str, **kwargs: Any) -> None:
    """Call one hook on every plugin separately, so one failing plugin only costs its own contribution."""
    load_plugins()
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        try:
            impl.function(**kwargs)
        except Exception as exc:
            warn(f"plugin '{impl.plugin_name}' failed in {hook_name}: {type(exc).__name__}: {exc}")


def _collect() -> dict[str, dict[str, type[Any]]]:
    global _registries
    if _registries is not None:
        return _registries
    load_plugins()
    registries: dict[str, dict[str, type[Any]]] = {}
    for hook_name in _REGISTRY_HOOKS:
        kind = hook_name.removeprefix("register_")
        found: dict[str, type[Any]] = {}
        registries[kind] = found
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            added: list[type[Any]] = []
            try:
                impl.function(register=added.append)
            except Exception as exc:
                warn(f"plugin '{impl.plugin_name}' failed in {hook_name}: {type(exc).__name__}: {exc}")
                continue
            for cls in added:
                found.setdefault(cls.name, cls)
                info = _infos.get(impl.plugin_name)
                if info is not None:
                    info.registers.append(f"{kind[:-1] if kind.endswith('s') else kind}:{cls.name}")
    _registries = registries
    return registries


def _registry(kind: str) -> dict[str, type[Any]]:
    return _collect()[kind]


def downloaders() -> dict[str, type[Any]]:
    """Downloader classes by name."""
    return _registry("downloaders")


def providers() -> dict[str, type[Any]]:
    """Provider classes by name."""
    return _registry("providers")


def storage_backends() -> dict[str, type[Any]]:
    """Order-store classes by name."""
    return _registry("storage_backends")


def get(kind: str, name: str) -> type[Any]:
    """The class registered under ``name``, or a clear error listing the available ones."""
    found = _registry(kind)
    if name not in found:
        available = ", ".join(sorted(found)) or "none"
        singular = kind.rstrip("s").replace("_", " ")
        raise PluginError(
            f"no {singular} named '{name}' is installed (available: {available})",
            hint="run 'flowzero plugins list' to see what is installed",
        )
    return found[name]


def plugin_infos() -> list[PluginInfo]:
    """Every loaded plugin with what it registers, for `flowzero plugins list`."""
    _collect()
    commands = _command_owners()
    infos = []
    for name, info in sorted(_infos.items()):
        extra = [f"commands:{c}" for c in commands.get(name, [])]
        infos.append(PluginInfo(info.name, info.package, info.version, info.hooks, info.registers + extra))
    return infos


def _command_owners() -> dict[str, list[str]]:
    import click

    owners: dict[str, list[str]] = {}
    for impl in pm.hook.register_commands.get_hookimpls():
        probe = click.Group("probe")
        try:
            impl.function(cli=probe)
        except Exception:
            continue
        owners[impl.plugin_name] = sorted(probe.commands)
    return owners


Registrar = Callable[[type[Any]], None]
