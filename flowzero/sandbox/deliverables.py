"""What an order request delivers: validation like Planet's, then one planned file per result.

A PSScene order yields, per item, the bundle's image (``<item>_3B_AnalyticMS_SR_clip.tif`` for
analytic_sr_udm2), the udm2 mask, the metadata XML and ``<item>_metadata.json``; ``_clip`` appears only with a
clip tool. Image and mask are GeoTIFFs of the item's area: its footprint within the clip AOI
(:mod:`flowzero.sandbox.imagery`). A basemap order (``source_type: basemaps``) yields
``<mosaic_name>/<quad id>.tif`` for every quad its geometry touches, clipped to it (or one
``<mosaic_name>_merged.tif`` with a merge tool).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Optional

from flowzero.sandbox.api import ApiError, bad_request
from flowzero.sandbox.basemaps import Basemaps, parse_quad_id, quads_for_geometry
from flowzero.sandbox.catalog import ITEM_TYPE, assets_for, parse_item_id, properties_for, scenes_for_day
from flowzero.sandbox.filters import parse_geometry

MAX_ITEMS = 500
MAX_VERTICES = 500
MAX_QUADS = 2000

Footprints = Callable[[str], Optional[dict]]  # an item's footprint GeoJSON, if a search has shown it


@dataclass(frozen=True)
class Bundle:
    image_asset: str
    image_stem: str
    xml_asset: str | None
    xml_stem: str | None
    udm2: bool


BUNDLES = {
    "analytic_sr_udm2": Bundle("ortho_analytic_4b_sr", "AnalyticMS_SR", "ortho_analytic_4b_xml",
                               "AnalyticMS_metadata", True),
    "analytic_8b_sr_udm2": Bundle("ortho_analytic_8b_sr", "AnalyticMS_SR_8b", "ortho_analytic_8b_xml",
                                  "AnalyticMS_8b_metadata", True),
    "analytic_udm2": Bundle("ortho_analytic_4b", "AnalyticMS", "ortho_analytic_4b_xml", "AnalyticMS_metadata",
                            True),
    "analytic_8b_udm2": Bundle("ortho_analytic_8b", "AnalyticMS_8b", "ortho_analytic_8b_xml",
                               "AnalyticMS_8b_metadata", True),
    "visual": Bundle("ortho_visual", "Visual", None, None, False),
}


def vertex_count(geojson: dict[str, Any]) -> int:
    """Positions of every ring, each ring's closing repeat not counted."""
    kind, coords = geojson.get("type"), geojson.get("coordinates") or []
    polygons = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
    return sum(max(len(ring) - 1, 0) for polygon in polygons for ring in polygon)


def _check_area(geojson: Any, where: str) -> None:
    if isinstance(geojson, dict) and geojson.get("type") == "Feature":
        geojson = geojson.get("geometry")
    geom = parse_geometry(geojson, where)
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise bad_request(f"{where}: must be a Polygon or MultiPolygon, not a {geom.geom_type}", where)
    count = vertex_count(geojson)
    if count > MAX_VERTICES:
        raise bad_request(f"{where}: the AOI has {count} vertices; at most {MAX_VERTICES} are allowed "
                          "(simplify it)", where)


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise bad_request("tools must be a list of objects", "tools")
    return tools


def _file(path: str, group: str, payload: dict[str, Any], media_type: str,
          annotations: dict[str, str]) -> dict[str, Any]:
    return {"path": path, "group": group, "payload": payload, "media_type": media_type,
            "annotations": annotations}


def plan_order(body: Any, file_size: int, basemaps: Basemaps,
               footprints: Footprints | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(source type, planned files) for an order request, or ApiError(400) where Planet would refuse it."""
    if not isinstance(body, dict):
        raise bad_request("the order request must be a JSON object")
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        raise bad_request("name is required", "name")
    products = body.get("products")
    if not isinstance(products, list) or not products or not all(isinstance(p, dict) for p in products):
        raise bad_request("products must be a non-empty list of objects", "products")
    tools = _tools(body)
    clip_aoi = None
    for tool in tools:
        clip = tool.get("clip")
        if isinstance(clip, dict) and clip.get("aoi") is not None:
            _check_area(clip["aoi"], "tools.clip.aoi")
            clip_aoi = _polygon(clip["aoi"])
    source_type = body.get("source_type", "scenes")
    if source_type == "basemaps":
        return source_type, _plan_basemaps(products, tools, file_size, basemaps)
    if source_type != "scenes":
        raise bad_request(f"source_type must be 'scenes' or 'basemaps', not {source_type!r}", "source_type")
    clipped = any("clip" in tool for tool in tools)
    return source_type, _plan_scenes(products, file_size, clipped, clip_aoi, footprints or (lambda _: None))


def _polygon(geojson: dict[str, Any]) -> dict[str, Any]:
    return geojson.get("geometry") if geojson.get("type") == "Feature" else geojson  # type: ignore[return-value]


def scene_area(item: str, clip: dict[str, Any] | None, known: dict[str, Any] | None) -> dict[str, Any]:
    """What the item's image covers: its footprint (as searched, else as the catalog draws it over the clip AOI)
    within the clip AOI."""
    from shapely.geometry import box, mapping, shape

    clip_shape = shape(clip) if clip else None
    footprint = shape(known) if known else None
    if footprint is None and clip_shape is not None:
        day = parse_item_id(item)[0].date() if parse_item_id(item) else date(2024, 1, 1)  # type: ignore[index]
        found = dict(scenes_for_day(clip_shape, day)).get(item)
        footprint = shape(found) if found else None
    if footprint is None:
        footprint = clip_shape if clip_shape is not None else _somewhere(item)
    area = footprint if clip_shape is None else footprint.intersection(clip_shape)
    if area.is_empty or area.geom_type not in ("Polygon", "MultiPolygon"):
        area = clip_shape if clip_shape is not None else box(*footprint.bounds)
    return mapping(area)


def _somewhere(item: str) -> Any:
    """A small frame for an item ordered unclipped that no search has shown: placed by its id, over land."""
    import hashlib

    from shapely.geometry import box

    draw = hashlib.sha256(item.encode()).digest()
    lon, lat = -122.0 + draw[0] / 64, 36.0 + draw[1] / 64
    return box(lon, lat, lon + 0.08, lat + 0.06)


def _plan_scenes(products: list[dict[str, Any]], file_size: int, clipped: bool, clip: dict[str, Any] | None,
                 footprints: Footprints) -> list[dict[str, Any]]:
    total = sum(len(p.get("item_ids") or []) for p in products)
    if total > MAX_ITEMS:
        raise bad_request(f"an order may have at most {MAX_ITEMS} items; this one has {total}", "products")
    suffix = "_clip" if clipped else ""
    files: list[dict[str, Any]] = []
    refused: list[str] = []
    for product in products:
        item_ids, item_type = product.get("item_ids"), product.get("item_type")
        bundle_name = product.get("product_bundle")
        if not isinstance(item_ids, list) or not item_ids or not all(isinstance(i, str) for i in item_ids):
            raise bad_request("item_ids must be a non-empty list of item ids", "products.item_ids")
        if item_type != ITEM_TYPE:
            raise bad_request(f"item_type {item_type!r} is not available in the sandbox (only {ITEM_TYPE})",
                              "products.item_type")
        bundle = BUNDLES.get(bundle_name) if isinstance(bundle_name, str) else None
        if bundle is None:
            raise bad_request(f"unknown product_bundle {bundle_name!r} (known: {', '.join(sorted(BUNDLES))})",
                              "products.product_bundle")
        for item in dict.fromkeys(item_ids):
            if parse_item_id(item) is None or bundle.image_asset not in assets_for(item):
                refused.append(f"{ITEM_TYPE}/{item}/[{bundle.image_asset}]")
                continue
            files.extend(_item_files(item, str(bundle_name), bundle, suffix, file_size,
                                     {"area": scene_area(item, clip, footprints(item)), "sizing": clip}))
    if refused:
        details = [{"message": f"no access to assets: {entry}"} for entry in refused]
        raise ApiError(400, f"Unable to accept order: no access to assets {', '.join(refused[:5])}"
                            f"{' ...' if len(refused) > 5 else ''}", {"Details": details})
    return files


def _item_files(item: str, bundle_name: str, bundle: Bundle, suffix: str, file_size: int,
                grid: dict[str, Any]) -> list[dict[str, Any]]:
    def notes(asset: str) -> dict[str, str]:
        return {"planet/asset_type": asset, "planet/bundle_type": bundle_name, "planet/item_id": item,
                "planet/item_type": ITEM_TYPE}

    files = [_file(f"{ITEM_TYPE}/{item}_3B_{bundle.image_stem}{suffix}.tif", item,
                   {"kind": "scene", "name": f"{item}_{bundle.image_asset}", "size": file_size, "item": item,
                    "bands": 8 if "8b" in bundle.image_asset else 4, **grid},
                   "image/tiff", notes(bundle.image_asset))]
    if bundle.udm2:
        files.append(_file(f"{ITEM_TYPE}/{item}_3B_udm2{suffix}.tif", item,
                           {"kind": "udm2", "name": f"{item}_ortho_udm2", "item": item, **grid},
                           "image/tiff", notes("ortho_udm2")))
    if bundle.xml_asset and bundle.xml_stem:
        files.append(_file(f"{ITEM_TYPE}/{item}_3B_{bundle.xml_stem}{suffix}.xml", item,
                           {"kind": "xml", "name": f"{item}_{bundle.xml_asset}.xml", "item": item,
                            "asset": bundle.xml_asset},
                           "text/xml", notes(bundle.xml_asset)))
    files.append(_file(f"{ITEM_TYPE}/{item}_metadata.json", item,
                       {"kind": "metadata", "name": f"{item}_metadata.json", "item": item},
                       "application/json", notes("metadata_json")))
    return files


def _plan_basemaps(products: list[dict[str, Any]], tools: list[dict[str, Any]], file_size: int,
                   basemaps: Basemaps) -> list[dict[str, Any]]:
    merged = any("merge" in tool for tool in tools)
    files: list[dict[str, Any]] = []
    for product in products:
        name = product.get("mosaic_name")
        if not isinstance(name, str) or basemaps.by_name(name) is None:
            raise bad_request(f"mosaic {name!r} does not exist or is not available", "products.mosaic_name")
        if product.get("geometry") is not None:
            _check_area(product["geometry"], "products.geometry")
            geojson = product["geometry"]
            if geojson.get("type") == "Feature":
                geojson = geojson.get("geometry")
            quads = [qid for qid, _ in quads_for_geometry(parse_geometry(geojson, "products.geometry"))]
        elif isinstance(product.get("quad_ids"), list) and product["quad_ids"]:
            quads = list(dict.fromkeys(product["quad_ids"]))
            bad = [q for q in quads if not isinstance(q, str) or parse_quad_id(q) is None]
            if bad:
                raise bad_request(f"unknown quad ids: {bad[:5]}", "products.quad_ids")
        else:
            raise bad_request("a basemap product needs a geometry or quad_ids", "products")
        if len(quads) > MAX_QUADS:
            raise bad_request(f"the order covers {len(quads)} quads; at most {MAX_QUADS}",
                              "products.geometry")
        notes = {"planet/asset_type": "quad", "planet/bundle_type": "basemaps", "planet/mosaic_name": name}
        if merged:
            files.append(_file(f"{name}/{name}_merged.tif", name,
                               {"kind": "tiff", "name": f"{name}_merged_{'_'.join(quads)[:80]}",
                                "size": file_size},
                               "image/tiff", {**notes, "planet/item_id": f"{name}_merged"}))
            continue
        clip = _polygon(product["geometry"]) if product.get("geometry") is not None and any(
            "clip" in tool for tool in tools) else None
        for qid in quads:
            files.append(_file(f"{name}/{qid}.tif", f"{name}/{qid}",
                               {"kind": "quad", "name": f"{name}_{qid}", "size": file_size, "quad": qid,
                                "clip": clip},
                               "image/tiff", {**notes, "planet/item_id": qid}))
    return files


def metadata_json(item: str, known: dict[str, Any] | None) -> bytes:
    """``<item>_metadata.json``: the item as the Data API describes it (geometry if a search showed it)."""
    data = {"id": item, "type": "Feature", "geometry": (known or {}).get("geometry"),
            "properties": properties_for(item)}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def metadata_xml(item: str, asset: str) -> bytes:
    """A small metadata XML in the spirit of Planet's ``_metadata_clip.xml``; deterministic per item."""
    props = properties_for(item)
    bands = 8 if "8b" in asset else 4
    band_lines = "\n".join(
        f"        <ps:bandSpecificMetadata><ps:bandNumber>{n}</ps:bandNumber>"
        f"<ps:reflectanceCoefficient>{(n * 7919 % 1000) / 1e6 + 1e-5:.8f}</ps:reflectanceCoefficient>"
        "</ps:bandSpecificMetadata>"
        for n in range(1, bands + 1)
    )
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<ps:EarthObservation xmlns:ps="http://schemas.planet.com/ps/v1/planet_product_metadata_geotiff">
  <ps:identifier>{item}</ps:identifier>
  <ps:acquisitionDateTime>{props["acquired"]}</ps:acquisitionDateTime>
  <ps:platform><ps:serialIdentifier>{props["satellite_id"]}</ps:serialIdentifier></ps:platform>
  <ps:instrument><ps:shortName>{props["instrument"]}</ps:shortName></ps:instrument>
  <ps:cloudCoverPercentage>{props["cloud_percent"]}</ps:cloudCoverPercentage>
  <ps:numBands>{bands}</ps:numBands>
  <ps:productInformation>
{band_lines}
  </ps:productInformation>
</ps:EarthObservation>
"""
    return text.encode()
