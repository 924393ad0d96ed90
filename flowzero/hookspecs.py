"""The hooks a flowzero plugin can implement.

Every hook takes a callback so that one plugin can register several things without returning lists
(the style of llm and datasette). A plugin module marks its functions with ``@flowzero.hookimpl``.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("flowzero")
hookimpl = pluggy.HookimplMarker("flowzero")


@hookspec
def register_downloaders(register: Callable[[type[Any]], None]) -> None:
    """Register downloader classes: call ``register(cls)`` for each.

    A downloader class has a ``name`` (what ``--downloader`` selects) and a ``description``, and implements
    :class:`flowzero.downloaders.base.Downloader`. Keep heavy imports inside its methods.
    """


@hookspec
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register imagery provider classes (PSScope, Basemap, ...): call ``register(cls)`` for each."""


@hookspec
def register_storage_backends(register: Callable[[type[Any]], None]) -> None:
    """Register order-store classes: call ``register(cls)``; ``cls.name`` is what ``storage.backend`` selects."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add Click commands or groups to the ``flowzero`` CLI, e.g. ``cli.add_command(my_group)``."""
