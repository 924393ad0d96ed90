"""Pure order planning: the request bodies flowzero sends and the names it sends them under, with no I/O.

An order's name is deterministic (AOI, dates, product and a short hash of the exact items and clip
geometry), so a run that was killed after Planet accepted an order but before it was recorded can find that
order again by name instead of placing a second one.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from flowzero.chunking import PLANET_MAX_ITEMS_PER_ORDER, split_items
from flowzero.models import Order
from flowzero.selection import quota_hectares

if TYPE_CHECKING:
    from flowzero.delivery.cloud.block import CloudDelivery

MAX_ITEMS_PER_ORDER = PLANET_MAX_ITEMS_PER_ORDER
PSSCENE = "PSScene"
NAME_PREFIX = "flowzero"


@dataclass
class PlannedOrder:
    """One order to place: its name, its request body and the record to keep once Planet accepts it."""

    name: str
    request: dict[str, Any]
    order: Order  # the record to save, order_id empty until Planet answers
    group: str  # the name shared by every part of a split plan (equal to ``name`` when not split)
    part: int = 1
    parts: int = 1

    @property
    def item_ids(self) -> list[str]:
        return list(self.order.metadata.get("item_ids", []))

    def recorded(self, order_id: str, state: str | None = None) -> Order:
        """The record to save once Planet has given the order an id."""
        return recorded_order(self.intent_details(), order_id, state)

    def intent_details(self) -> dict[str, Any]:
        """What the store keeps with the intent, enough to record the order from Planet's answer alone."""
        return {"group": self.group, "part": self.part, "parts": self.parts,
                "order": dataclasses.asdict(self.order)}


def recorded_order(details: dict[str, Any], order_id: str, state: str | None = None) -> Order:
    """Rebuild the :class:`Order` of an intent's ``details`` with the id (and state) Planet reported."""
    fields = {f.name for f in dataclasses.fields(Order)}
    data = {k: v for k, v in dict(details.get("order") or {}).items() if k in fields}
    data.pop("created_at", None)
    data.pop("updated_at", None)
    data["order_id"] = order_id
    data["status"] = state or "queued"
    data["metadata"] = dict(data.get("metadata") or {})
    return Order(**data)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_") or "aoi"


def content_hash(*parts: Any) -> str:
    """A short, stable digest of JSON-able values (sorted keys, no whitespace)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def order_name(aoi_name: str, start: str, end: str, product: str, digest: str,
               suffix: str | None = None) -> str:
    """``flowzero-{aoi}-{start}-{end}-{product}-{digest}[-{suffix}]``: same inputs, same name."""
    name = f"{NAME_PREFIX}-{_slug(aoi_name)}-{start}-{end}-{_slug(product)}-{digest}"
    return f"{name}-{suffix}" if suffix else name


def psscene_request(name: str, item_ids: Sequence[str], product_bundle: str,
                    clip: dict[str, Any] | None) -> dict[str, Any]:
    """An Orders v2 PSScene request; clipped to ``clip`` when given."""
    request: dict[str, Any] = {
        "name": name,
        "products": [{"item_ids": list(item_ids), "item_type": PSSCENE, "product_bundle": product_bundle}],
    }
    if clip is not None:
        request["tools"] = [{"clip": {"aoi": clip}}]
    return request


def basemap_request(name: str, mosaic_name: str, geometry: dict[str, Any]) -> dict[str, Any]:
    """An Orders v2 basemap request: the mosaic quads over ``geometry``, clipped to it (like the old tool)."""
    return {
        "name": name,
        "source_type": "basemaps",
        "products": [{"mosaic_name": mosaic_name, "geometry": geometry}],
        "tools": [{"clip": {}}],
    }


def plan_scene_orders(
    template: Order,
    item_ids: Sequence[str],
    clip: dict[str, Any] | None,
    *,
    suffix: str | None = None,
    max_items: int = MAX_ITEMS_PER_ORDER,
) -> list[PlannedOrder]:
    """One PSScene order per at most ``max_items`` scenes, named ``<group>`` or ``<group>-partN``.

    ``template`` carries aoi_name, dates, product_bundle, area and counts; each part gets its own item ids,
    scene count and quota.
    """
    if not template.product_bundle or not template.start_date or not template.end_date:
        raise ValueError("a scene order needs product_bundle, start_date and end_date")
    ids = sorted(set(item_ids))  # ids begin with the acquisition time: sorted is chronological and stable
    digest = content_hash(ids, clip)
    group = order_name(template.aoi_name, template.start_date, template.end_date, template.product_bundle,
                       digest, suffix)
    chunks = split_items(ids, max_items)
    planned = []
    for index, chunk in enumerate(chunks, start=1):
        name = group if len(chunks) == 1 else f"{group}-part{index}"
        metadata = {**template.metadata, "item_ids": chunk}
        if isinstance(metadata.get("scenes"), dict):  # per-item details: each part keeps its own
            metadata["scenes"] = {i: metadata["scenes"][i] for i in chunk if i in metadata["scenes"]}
        if len(chunks) > 1:
            metadata["part"] = f"{index}/{len(chunks)}"
        area = template.aoi_area_sqkm
        order = dataclasses.replace(
            template, order_id="", order_name=name, scenes_selected=len(chunk), clipped=clip is not None,
            quota_hectares=None if area is None else quota_hectares(area, len(chunk)), metadata=metadata,
        )
        planned.append(PlannedOrder(name, psscene_request(name, chunk, template.product_bundle, clip), order,
                                    group, index, len(chunks)))
    return planned


def plan_basemap_order(template: Order, geometry: dict[str, Any], *,
                       suffix: str | None = None) -> PlannedOrder:
    """The one basemap order for ``template.mosaic_name`` over ``geometry``."""
    mosaic = template.mosaic_name
    if not mosaic:
        raise ValueError("a basemap order needs a mosaic_name")
    name = order_name(template.aoi_name, template.start_date or "na", template.end_date or "na", mosaic,
                      content_hash(mosaic, geometry), suffix)
    order = dataclasses.replace(template, order_id="", order_name=name, clipped=True)
    return PlannedOrder(name, basemap_request(name, mosaic, geometry), order, name)


def apply_delivery(planned: Sequence[PlannedOrder], delivery: Optional[CloudDelivery]) -> None:
    """Put the cloud delivery block into each request and its redacted record into each order's metadata."""
    if delivery is None:
        return
    for item in planned:
        item.request["delivery"] = copy.deepcopy(delivery.block)
        item.order.metadata["delivery"] = delivery.record()
