"""Opening the order store the configuration (or a URL) names, through the plugin registry.

Kept apart from the contract (:mod:`flowzero.storage`): the registry knows the contract, and this module knows the
registry, so neither imports the other in a circle. Nothing else in flowzero names a backend class.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from flowzero import plugins
from flowzero.config import Config, StorageConfig, mask_url_password
from flowzero.errors import UsageError

if TYPE_CHECKING:
    from flowzero.storage import OrderStore

DEFAULT_BACKEND = "sqlite"  # a built-in plugin (flowzero.plugins.DEFAULT_PLUGINS): always there


def open_store(config: Config) -> OrderStore:
    """The store chosen by ``config.storage.backend`` (the registry's class of that name), ready to use."""
    cls = plugins.get("storage_backends", config.storage.backend or DEFAULT_BACKEND)
    return cls(config)


def open_store_url(target: str, config: Config, must_exist: bool = False) -> OrderStore:
    """The store a URL names: ``postgresql://...`` (whichever backend declares that scheme in
    ``url_schemes``), else ``sqlite:///path`` or a plain path to a SQLite file (created unless ``must_exist``)."""
    scheme = urlsplit(target).scheme.lower() if "://" in target else ""
    if scheme in ("", "sqlite", "file"):  # a file of the default backend
        path = unquote(urlsplit(target).path) if scheme else target
        if not path:
            raise UsageError(f"no database file in '{target}'", hint="give a path, or sqlite:///path/to/file.db")
        if must_exist and not os.path.isfile(os.path.expanduser(path)):
            raise UsageError(f"no database file at {path}", hint="check the path of the store to copy from")
        return plugins.get("storage_backends", DEFAULT_BACKEND)(path)
    for cls in plugins.storage_backends().values():
        if scheme in getattr(cls, "url_schemes", ()):
            chosen = dataclasses.replace(config, storage=StorageConfig(backend=cls.name, url=target))
            return cls(chosen)
    raise UsageError(f"no installed storage backend handles '{scheme}://' URLs ({mask_url_password(target)})",
                     hint="for PostgreSQL: pip install flowzero-postgres (plugins/flowzero-postgres)")
