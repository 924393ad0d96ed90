"""From a finished order (Planet's JSON + its manifest) to transfer jobs laid out the old tool's way.

Pure: no network, no files. Unsafe result names become failed results here, before anything is written.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from flowzero import plugins
from flowzero.delivery.destination import Destination
from flowzero.delivery.layout import (
    UnsafeNameError,
    basemap_folder,
    basemap_key,
    item_id_from_filename,
    metadata_key,
    psscope_folder,
    psscope_key,
)
from flowzero.delivery.manifest import MANIFEST_NAME, Manifest, order_results
from flowzero.models import Order, TransferJob, TransferResult
from flowzero.redact import redact, redact_url

UNKNOWN_AOI = "UnknownAOI"


@dataclass
class DeliveryPlan:
    """What one order delivers: jobs in result order, refused names, items Planet did not deliver."""

    order_id: str
    folder: str
    jobs: list[TransferJob] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # relative key of each job, same order
    refused: list[TransferResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # results with no digest to check (none in the manifest)

    @property
    def metadata_key(self) -> str:
        return metadata_key(self.folder)


def is_basemap_order(order_json: dict[str, Any], record: Order | None) -> bool:
    """A mosaic order: Planet says ``source_type: basemaps``, or its record's order type is a mosaic provider's."""
    if str(order_json.get("source_type", "")).lower() == "basemaps":
        return True
    return record is not None and plugins.order_kind(record.order_type) == "mosaics"


def _mosaic_name(order_json: dict[str, Any], record: Order | None) -> str:
    if record and record.mosaic_name:
        return record.mosaic_name
    for product in order_json.get("products") or []:
        if isinstance(product, dict) and product.get("mosaic_name"):
            return str(product["mosaic_name"])
    return ""


def requested_items(order_json: dict[str, Any]) -> list[str]:
    """The item ids the order asked for (PSScene products)."""
    items: list[str] = []
    for product in order_json.get("products") or []:
        if isinstance(product, dict):
            items.extend(str(i) for i in product.get("item_ids") or [])
    return items


def plan_delivery(order_json: dict[str, Any], record: Order | None, manifest: Manifest | None,
                  destination: Destination, assets: tuple[str, ...] = ("image",)) -> DeliveryPlan:
    """The transfer jobs of one success/partial order towards ``destination``; of each PlanetScope item, the
    files named in ``assets`` (:data:`flowzero.delivery.layout.ASSETS`)."""
    order_id = str(order_json.get("id") or (record.order_id if record else ""))
    aoi_name = record.aoi_name if record and record.aoi_name else UNKNOWN_AOI
    basemap = is_basemap_order(order_json, record)
    mosaic = _mosaic_name(order_json, record)
    num_bands = record.num_bands if record else None
    try:
        folder = basemap_folder(aoi_name, mosaic) if basemap else psscope_folder(aoi_name, num_bands)
    except UnsafeNameError as exc:
        plan = DeliveryPlan(order_id, "")
        plan.refused.append(_refusal("", "", exc))
        return plan
    plan = DeliveryPlan(order_id, folder)
    manifest = manifest or Manifest()
    seen: dict[str, str] = {}
    delivered_items: set[str] = set()
    for result in order_results(order_json):
        name = str(result.get("name") or "")
        location = str(result.get("location") or "")
        if name.rsplit("/", 1)[-1] == MANIFEST_NAME:
            continue
        if result.get("delivery", "success") != "success":
            plan.missing.append(f"{name.rsplit('/', 1)[-1]} (delivery {result.get('delivery')})")
            continue
        entry = manifest.lookup(name)
        try:
            if basemap:
                key = basemap_key(aoi_name, mosaic, name)
            else:
                key = psscope_key(aoi_name, num_bands, name, entry.item_id if entry else None, assets)
        except UnsafeNameError as exc:
            plan.refused.append(_refusal(name, location, exc))
            continue
        if key is None:
            continue
        if key in seen:
            plan.refused.append(_refusal(name, location, UnsafeNameError(
                f"{redact(name)} and {redact(seen[key])} would both be written to {key}")))
            continue
        seen[key] = name
        if not basemap:
            item = entry.item_id if entry else None
            delivered_items.add(item or item_id_from_filename(key_name(name)) or "")
        if entry is None or not (entry.md5 or entry.sha256):
            plan.unverified.append(name)
        plan.keys.append(key)
        plan.jobs.append(TransferJob(
            url=location, destination=destination.target(key), size=entry.size if entry else None,
            md5=entry.md5 if entry else None, sha256=entry.sha256 if entry else None, name=key_name(key),
        ))
    if not basemap:
        plan.missing.extend(i for i in requested_items(order_json) if i not in delivered_items)
    return plan


def key_name(name: str) -> str:
    """The last component of a key or result name."""
    return name.rsplit("/", 1)[-1]


def _refusal(name: str, location: str, exc: UnsafeNameError) -> TransferResult:
    job = TransferJob(url=location, destination="", name=redact(name))
    return TransferResult(job, ok=False, error=redact(exc.message))


def metadata_document(order_json: dict[str, Any]) -> bytes:
    """The order's JSON as written to ``metadata.json``: download tokens removed."""
    clean = copy.deepcopy(order_json)
    for result in order_results(clean):
        if isinstance(result.get("location"), str):
            result["location"] = redact_url(result["location"])
    return (json.dumps(clean, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
