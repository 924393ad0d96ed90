"""The plugin manager: the built-in plugins, the ``flowzero`` entry-point group, and what each registered.

As in llm and datasette, the built-ins (sqlite, threads, fast, psscope, basemap) are plain modules named in
:data:`DEFAULT_PLUGINS` and registered first, so a source checkout has them without pip and the core never imports
a provider, downloader or store by class: it asks the registry. Third-party packages come from the entry-point
group; ``FLOWZERO_LOAD_PLUGINS`` limits those to a comma-separated list of names (empty: none), so tests can run
with an exact set. A plugin that fails to import, implements a hook that does not exist (a misspelling) or breaks
inside a hook is reported in one warning line and the rest works; a name registered twice keeps the first.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import pluggy

from flowzero import __version__, hookspecs
from flowzero.errors import PluginError, UsageError

if TYPE_CHECKING:
    import click

    from flowzero.downloaders.base import Downloader
    from flowzero.ordering.providers import Provider
    from flowzero.storage import OrderStore

ENTRY_POINT_GROUP = "flowzero"
DEFAULT_PLUGINS = ("flowzero.storage.sqlite", "flowzero.downloaders.threads", "flowzero.downloaders.fast",
                   "flowzero.providers.psscope", "flowzero.providers.basemap")
_REGISTRY_HOOKS = ("register_downloaders", "register_providers", "register_storage_backends")
_KIND_LABEL = {"downloaders": "downloader", "providers": "provider", "storage_backends": "storage_backend"}

Registrar = Callable[[type[Any]], None]
T = TypeVar("T")


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
_origins: dict[str, tuple[str, str]] = {}  # plugin name -> (package, version)
_registries: Optional[dict[str, dict[str, type[Any]]]] = None
_registered_by: dict[str, list[str]] = {}  # plugin name -> what its registry hooks registered ("downloader:x")
_commands_by: dict[str, list[str]] = {}  # plugin name -> the commands its register_commands added
_loaded = False


def warn(message: str) -> None:
    """One warning line on stderr; plugin trouble must never stop the CLI."""
    print(f"Warning: {message}", file=sys.stderr)


def _wanted(name: str) -> bool:
    only = os.environ.get("FLOWZERO_LOAD_PLUGINS")
    if only is None:
        return True
    return name in {n.strip() for n in only.split(",") if n.strip()}


def _add(module: Any, name: str, package: str, version: str) -> None:
    """Register one plugin; one that implements an unknown hook (a misspelling) is refused with a warning."""
    pm.register(module, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        warn(f"plugin '{name}' ({package}) was not loaded: {exc}")
        return
    _origins[name] = (package, version)


def load_plugins() -> None:
    """Register the built-ins, then every wanted plugin of the entry-point group, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in DEFAULT_PLUGINS:
        _add(importlib.import_module(module_name), module_name.rsplit(".", 1)[-1], "flowzero", __version__)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.has_plugin(ep.name) or not _wanted(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist else "?"
        version = dist.version if dist else "?"
        try:
            module = ep.load()
        except Exception as exc:  # a third-party import error must not break the CLI
            warn(f"plugin '{ep.name}' ({package}) failed to load: {type(exc).__name__}: {exc}")
            continue
        _add(module, ep.name, package, version)


def register_plugin(module: Any, name: str, package: str = "(in-process)", version: str = "") -> None:
    """Register a plugin object directly (tests, embedding applications)."""
    global _registries
    load_plugins()
    _add(module, name, package, version)
    _registries = None


def unregister_plugin(name: str) -> None:
    """Undo :func:`register_plugin`."""
    global _registries
    pm.unregister(name=name)
    _origins.pop(name, None)
    _registries = None


def add_commands(cli: click.Group) -> None:
    """Let every plugin add its commands to ``cli`` (once, at start-up), noting which plugin added which."""
    load_plugins()
    for impl in pm.hook.register_commands.get_hookimpls():
        before = set(cli.commands)
        try:
            impl.function(cli=cli)
        except Exception as exc:
            warn(f"plugin '{impl.plugin_name}' failed in register_commands: {type(exc).__name__}: {exc}")
        _commands_by[impl.plugin_name] = sorted(set(cli.commands) - before)


def _collect() -> dict[str, dict[str, type[Any]]]:
    global _registries
    if _registries is not None:
        return _registries
    load_plugins()
    registries: dict[str, dict[str, type[Any]]] = {}
    _registered_by.clear()
    for hook_name in _REGISTRY_HOOKS:
        kind = hook_name.removeprefix("register_")
        found: dict[str, type[Any]] = {}
        owners: dict[str, str] = {}
        registries[kind] = found
        for impl in getattr(pm.hook, hook_name).get_hookimpls():  # in registration order: built-ins first
            added: list[type[Any]] = []
            try:
                impl.function(register=added.append)
            except Exception as exc:
                warn(f"plugin '{impl.plugin_name}' failed in {hook_name}: {type(exc).__name__}: {exc}")
                continue
            for cls in added:
                name = str(getattr(cls, "name", "") or "")
                if name in found:
                    warn(f"{_KIND_LABEL[kind]} '{name}' is registered by '{owners[name]}' and by "
                         f"'{impl.plugin_name}'; using the one from '{owners[name]}'")
                    continue
                found[name], owners[name] = cls, impl.plugin_name
                _registered_by.setdefault(impl.plugin_name, []).append(f"{_KIND_LABEL[kind]}:{name}")
    _registries = registries
    return registries


def _registry(kind: str) -> dict[str, type[Any]]:
    return _collect()[kind]


def downloaders() -> dict[str, type[Downloader]]:
    """Downloader classes by name."""
    return _registry("downloaders")


def providers() -> dict[str, type[Provider]]:
    """Provider classes by name."""
    return _registry("providers")


def storage_backends() -> dict[str, type[OrderStore]]:
    """Order-store classes by name."""
    return _registry("storage_backends")


def provider_for(kind: str, name: Optional[str] = None) -> type[Provider]:
    """The provider class of ``kind`` ("scenes", "mosaics"): the one named (``--provider``), else the only one
    installed; several of that kind and no name is a UsageError asking to choose."""
    if name is not None:
        of_kind = sorted(n for n, c in providers().items() if getattr(c, "kind", None) == kind)
        if name not in providers():  # a wrong --provider is bad input (exit 2), listing what would do
            raise UsageError(f"no provider named '{name}' is installed (providers of {kind}: "
                             f"{', '.join(of_kind) or 'none'})", hint="run 'flowzero plugins list' to see them")
        cls = get("providers", name)
        if getattr(cls, "kind", None) != kind:
            raise UsageError(f"provider '{name}' does not provide {kind} (it provides {getattr(cls, 'kind', '?')})",
                             hint="run 'flowzero plugins list' to see the providers")
        return cls
    found = [cls for cls in providers().values() if getattr(cls, "kind", None) == kind]
    if len(found) == 1:
        return found[0]
    names = ", ".join(sorted(cls.name for cls in found)) or "none"
    if found:  # the command needs the user to choose: bad input, like a wrong name
        raise UsageError(f"{len(found)} providers of {kind} are installed ({names})",
                         hint="choose one with --provider NAME")
    raise PluginError(f"no provider of {kind} is installed", hint="reinstall flowzero")


def order_kind(order_type: Optional[str]) -> Optional[str]:
    """The kind of the registered provider whose orders are recorded as ``order_type`` (None: no such provider)."""
    for cls in providers().values():
        if order_type and getattr(cls, "order_type", None) == order_type:
            return getattr(cls, "kind", None)
    return None


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
    """Every loaded plugin with the hooks it implements (as pluggy knows them) and what it registered."""
    _collect()
    infos = []
    for name, (package, version) in sorted(_origins.items()):
        plugin = pm.get_plugin(name)
        if plugin is None:
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        registers = _registered_by.get(name, []) + [f"commands:{c}" for c in _commands_by.get(name, [])]
        infos.append(PluginInfo(name, package, version, hooks, registers))
    return infos
