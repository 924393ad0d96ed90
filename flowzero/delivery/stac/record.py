"""What a delivery calls once an order's files are verified at a destination: write its items, relink.

:func:`record_delivery` is the one entry point the delivery code uses (local, S3 and cloud delivery alike);
:func:`rebuild_catalog` is ``flowzero stac DEST``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from flowzero.delivery.jobs import DeliveryPlan, is_basemap_order
from flowzero.delivery.layout import mosaic_period
from flowzero.delivery.stac.catalog import (
    CATALOG_KEY,
    aoi_key,
    collections_present,
    dump,
    item_document,
    item_key,
    relink_collection,
    relink_root,
)
from flowzero.delivery.stac.files import CatalogFiles
from flowzero.delivery.stac.items import group_quads, group_scenes, quad_item, scene_item

if TYPE_CHECKING:
    from flowzero.delivery.destination import Destination
    from flowzero.delivery.s3requests import S3Requests
    from flowzero.models import Order


@dataclass
class CatalogUpdate:
    """What one update did: where the root is, which items it holds for this order, how many files changed."""

    root: str
    items: list[str] = field(default_factory=list)
    written: int = 0
    collections: list[str] = field(default_factory=list)


def _clip(order_json: dict[str, Any], record: Order | None) -> dict[str, Any] | None:
    """The AOI the order was clipped to: as recorded at planning, else from the order's clip tool or product."""
    recorded = ((record.metadata or {}) if record else {}).get("clip")
    if isinstance(recorded, dict):
        return recorded
    for tool in order_json.get("tools") or []:
        aoi = (tool.get("clip") or {}).get("aoi") if isinstance(tool, dict) else None
        if isinstance(aoi, dict):
            return aoi.get("geometry") if aoi.get("type") == "Feature" else aoi
    for product in order_json.get("products") or []:
        if isinstance(product, dict) and isinstance(product.get("geometry"), dict):
            return product["geometry"]
    return None


def _planet_json(files: CatalogFiles, key: str | None) -> dict[str, Any]:
    data = files.read(key) if key else None
    try:
        value = json.loads(data) if data else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def order_items(plan: DeliveryPlan, order_json: dict[str, Any], record: Order | None,
                files: CatalogFiles) -> list[Any]:
    """The pystac Items of one delivered order (scenes or quads)."""
    clip = _clip(order_json, record)
    if is_basemap_order(order_json, record):
        mosaic = (record.mosaic_name if record else None) or next(
            (str(p.get("mosaic_name")) for p in order_json.get("products") or [] if isinstance(p, dict)), "")
        period = mosaic_period(mosaic).replace("_", "-")
        return [quad_item(q, order_json, record, clip, period)
                for q in group_quads(plan.keys, plan.jobs, files.href, mosaic)]
    bands = 8 if "eight" in plan.folder or "8b" in str((record.product_bundle if record else "") or "") else 4
    scenes = group_scenes(plan.keys, plan.jobs, files.href)
    for scene in scenes:
        metadata = scene.files.get("metadata")
        scene.planet = _planet_json(files, metadata.key if metadata else None)
    return [scene_item(s, order_json, record, clip, bands) for s in scenes]


def record_delivery(destination: Destination, plan: DeliveryPlan, order_json: dict[str, Any],
                    record: Optional[Order], s3: Optional[Callable[[], S3Requests]] = None) -> CatalogUpdate:
    """Add one delivered order's items to the catalog at ``destination`` and relink its collection and root.

    Call it after every file of ``plan`` is verified there. Idempotent (a rerun writes nothing) and safe while
    other runs deliver to the same destination.
    """
    files = CatalogFiles(destination, s3)
    collection_id = (record.aoi_name if record else None) or plan.folder.rsplit("/", 1)[-1] or "UnknownAOI"
    update = CatalogUpdate(destination.target(CATALOG_KEY), collections=[collection_id])
    clip = _clip(order_json, record)
    if clip is not None:
        update.written += files.write(aoi_key(collection_id), dump({"type": "Feature", "geometry": clip,
                                                                    "properties": {"name": collection_id}}))
    for item in order_items(plan, order_json, record, files):
        key = item_key(collection_id, item.id)
        update.written += files.write(key, dump(item_document(item, collection_id)))
        update.items.append(key)
    relink_collection(files, collection_id)
    relink_root(files)
    return update


def rebuild_catalog(destination: Destination, s3: Optional[Callable[[], S3Requests]] = None) -> CatalogUpdate:
    """Relink every collection and the root from the item files present (``flowzero stac DEST``)."""
    files = CatalogFiles(destination, s3)
    update = CatalogUpdate(destination.target(CATALOG_KEY))
    for collection_id in collections_present(files):
        update.items.extend(f"{collection_id}/{n}" for n in range(relink_collection(files, collection_id)))
        update.collections.append(collection_id)
    relink_root(files)
    return update
