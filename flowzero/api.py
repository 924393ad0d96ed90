"""What a flowzero plugin may use: one module, its ``__all__`` the contract (everything else is private).

A downloader, an imagery provider or a storage backend imports from here only (``from flowzero.api import ...``);
the in-repo plugins do, and a test fails when one reaches past it. The transfer engine (httpx) and the helpers
``flowzero --help`` does not otherwise load (migrations, S3 URLs, stream verification) load on first use, so a
plugin importing this module at start-up keeps ``flowzero --help`` fast.

- Every plugin: :data:`hookimpl`, :data:`Registrar`, :class:`Config`, :func:`warn`, :func:`redact` and
  :func:`add_secret` (secrets never shown), the errors.
- Downloaders: :class:`Downloader`, :class:`DownloadOptions`, :class:`TransferJob`, :class:`TransferResult`,
  :class:`FailureReason`; to reuse flowzero's verified HTTP streaming: :class:`TransferSession`, :func:`run_pool`,
  :class:`StreamHasher`, :func:`s3_copy_verified`, :func:`split_s3_url`, :class:`S3CredentialsError`,
  :class:`ThreadsDownloader` (to hand files over), :func:`process_alive` (to clean after a killed run),
  :func:`resolve_aws` (the credentials, region, endpoint and CA bundle every downloader shares, flowzero.aws).
- Providers: :class:`SceneProvider`, :class:`MosaicProvider`, :data:`SCENES`, :data:`MOSAICS`,
  :class:`SceneSearch`, :class:`PlannedOrder`, :func:`plan_scene_orders`, :func:`plan_basemap_order`,
  :class:`Order`, :class:`Scene`.
- Storage backends: :class:`OrderStore` (``tests/test_storage_contract.py`` is its executable form),
  :class:`SqlOrderStore` and :class:`Session` (the shared SQL), :class:`IntentClaim`, :class:`Migration`,
  :func:`bundled_migrations`, :func:`apply_migrations`, :func:`check_claim_args`, :func:`format_timestamp`,
  :func:`mask_url_password`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowzero.aws import resolve as resolve_aws
from flowzero.config import Config, mask_url_password
from flowzero.downloaders.base import Downloader, DownloadOptions, ProgressCallback
from flowzero.downloaders.threads import ThreadsDownloader
from flowzero.errors import (
    ConfigError,
    FlowzeroError,
    PlanetError,
    PluginError,
    StorageError,
    TransferError,
    UsageError,
)
from flowzero.hookspecs import hookimpl
from flowzero.leases import process_alive
from flowzero.models import FailureReason, Order, Scene, TransferJob, TransferResult
from flowzero.ordering.plan import PlannedOrder, plan_basemap_order, plan_scene_orders
from flowzero.ordering.providers import MOSAICS, SCENES, MosaicProvider, SceneProvider, SceneSearch
from flowzero.plugins import Registrar, warn
from flowzero.redact import add_secret, redact
from flowzero.storage import IntentClaim, OrderStore
from flowzero.storage.records import check_claim_args, format_timestamp
from flowzero.storage.sqlstore import Session, SqlOrderStore

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from flowzero.downloaders.engine import S3CredentialsError, TransferSession, run_pool
    from flowzero.downloaders.verify import StreamHasher, s3_copy_verified
    from flowzero.s3 import split_s3_url
    from flowzero.storage.migrate import Migration, apply_migrations, bundled_migrations

# Loaded on first use (name -> module): the engine imports httpx; the others are modules `flowzero --help` does not
# load (a plugin imports this module at start-up).
_LAZY = {
    "TransferSession": "flowzero.downloaders.engine",
    "run_pool": "flowzero.downloaders.engine",
    "S3CredentialsError": "flowzero.downloaders.engine",
    "StreamHasher": "flowzero.downloaders.verify",
    "s3_copy_verified": "flowzero.downloaders.verify",
    "split_s3_url": "flowzero.s3",
    "Migration": "flowzero.storage.migrate",
    "bundled_migrations": "flowzero.storage.migrate",
    "apply_migrations": "flowzero.storage.migrate",
}

__all__ = [  # what plugins may use; the lazy names are spelled out too, so the list is the whole contract
    "MOSAICS",
    "SCENES",
    "Config",
    "ConfigError",
    "DownloadOptions",
    "Downloader",
    "FailureReason",
    "FlowzeroError",
    "IntentClaim",
    "Migration",
    "MosaicProvider",
    "Order",
    "OrderStore",
    "PlanetError",
    "PlannedOrder",
    "PluginError",
    "ProgressCallback",
    "Registrar",
    "S3CredentialsError",
    "Scene",
    "SceneProvider",
    "SceneSearch",
    "Session",
    "SqlOrderStore",
    "StorageError",
    "StreamHasher",
    "ThreadsDownloader",
    "TransferError",
    "TransferJob",
    "TransferResult",
    "TransferSession",
    "UsageError",
    "add_secret",
    "apply_migrations",
    "bundled_migrations",
    "check_claim_args",
    "format_timestamp",
    "hookimpl",
    "mask_url_password",
    "plan_basemap_order",
    "plan_scene_orders",
    "process_alive",
    "redact",
    "resolve_aws",
    "run_pool",
    "s3_copy_verified",
    "split_s3_url",
    "warn",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
