"""The catalog at a destination: one JSON per item, and collections and a root rebuilt from the items present.

Layout (keys under the destination's folder or S3 prefix, beside the imagery)::

    stac/catalog.json                        the root Catalog: one child link per collection
    stac/<aoi>/collection.json               one Collection per AOI or gage
    stac/<aoi>/aoi.geojson                   the AOI the collection's spatial extent comes from
    stac/<aoi>/items/<item id>.json          one Item per delivered scene or quad

Links are relative (a self-contained catalog: copy the folder and it still works). Updates are incremental and
safe when several runs deliver to one destination at once: an item is its own file (written only when its
content changed, atomically), and a collection or the root is rebuilt from the files *present*, then the
listing is read again after writing and the document rebuilt until both agree. Whoever writes last has seen
every item written before its re-check, so no item is ever left unlinked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowzero.selection import acquired_datetime

if TYPE_CHECKING:
    from flowzero.delivery.stac.files import CatalogFiles

STAC_ROOT = "stac"
CATALOG_KEY = f"{STAC_ROOT}/catalog.json"
MAX_REBUILDS = 20
PLANET = {"name": "Planet Labs PBC", "roles": ["producer", "processor", "licensor"], "url": "https://www.planet.com"}
FLOWZERO = {"name": "flowzero", "roles": ["host"],
            "description": "ordered the imagery from Planet once, verified it against Planet's manifest, arranged it"}
LICENSE_URL = "https://www.planet.com/licensing/"


def collection_key(collection_id: str) -> str:
    return f"{STAC_ROOT}/{collection_id}/collection.json"


def aoi_key(collection_id: str) -> str:
    return f"{STAC_ROOT}/{collection_id}/aoi.geojson"


def item_key(collection_id: str, item_id: str) -> str:
    return f"{STAC_ROOT}/{collection_id}/items/{item_id}.json"


def dump(document: dict[str, Any]) -> bytes:
    """Stable JSON: the same document is always the same bytes, so unchanged files are never rewritten."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def item_document(item: Any, collection_id: str) -> dict[str, Any]:
    """A pystac Item as its file holds it: links to its collection and the root, relative."""
    import pystac

    item.collection_id = collection_id
    item.clear_links()
    item.add_link(pystac.Link("root", "../../catalog.json", pystac.MediaType.JSON))
    item.add_link(pystac.Link("parent", "../collection.json", pystac.MediaType.JSON))
    item.add_link(pystac.Link("collection", "../collection.json", pystac.MediaType.JSON))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _item_keys(files: CatalogFiles, collection_id: str) -> list[str]:
    prefix = f"{STAC_ROOT}/{collection_id}/items/"
    return [k for k in files.keys(prefix) if k.endswith(".json") and "/" not in k[len(prefix):]]


def _extent(items: Sequence[dict[str, Any]], aoi: dict[str, Any] | None) -> Any:
    import pystac
    from shapely.geometry import box, shape
    from shapely.ops import unary_union

    shapes = [shape(aoi)] if aoi else [box(*i["bbox"]) for i in items if i.get("bbox")]
    bbox = list(unary_union(shapes).bounds) if shapes else [-180.0, -90.0, 180.0, 90.0]
    moments = []
    for item in items:
        props = item.get("properties") or {}
        for key in ("datetime", "start_datetime", "end_datetime"):
            if props.get(key):
                moments.append(acquired_datetime(props[key]))
    interval: list[Any] = [min(moments), max(moments)] if moments else [None, None]
    return pystac.Extent(pystac.SpatialExtent([[round(v, 7) for v in bbox]]), pystac.TemporalExtent([interval]))


def collection_document(collection_id: str, items: Sequence[tuple[str, dict[str, Any]]],
                        aoi: dict[str, Any] | None) -> dict[str, Any]:
    """The Collection of one AOI from its items (key, document): extents, providers, license, item links."""
    import pystac

    documents = [doc for _, doc in items]
    collection = pystac.Collection(
        collection_id, f"Planet imagery of {collection_id} delivered by flowzero, verified against Planet's manifest.",
        _extent(documents, aoi), title=collection_id, license="proprietary",
        providers=[pystac.Provider.from_dict(PLANET), pystac.Provider.from_dict(FLOWZERO)],
        catalog_type=pystac.CatalogType.SELF_CONTAINED)
    collection.clear_links()
    collection.add_link(pystac.Link("root", "../catalog.json", pystac.MediaType.JSON))
    collection.add_link(pystac.Link("parent", "../catalog.json", pystac.MediaType.JSON))
    collection.add_link(pystac.Link("license", LICENSE_URL, "text/html", title="Planet's license terms"))
    for key, doc in sorted(items, key=lambda pair: pair[0]):
        collection.add_link(pystac.Link("item", f"./items/{key.rsplit('/', 1)[-1]}", pystac.MediaType.GEOJSON,
                                        title=str(doc.get("id"))))
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


def root_document(collection_ids: Sequence[str]) -> dict[str, Any]:
    """The root Catalog: one child per collection present."""
    import pystac

    catalog = pystac.Catalog("flowzero", "Planet imagery delivered by flowzero: one collection per AOI or gage.",
                             title="flowzero deliveries", catalog_type=pystac.CatalogType.SELF_CONTAINED)
    catalog.clear_links()
    catalog.add_link(pystac.Link("root", "./catalog.json", pystac.MediaType.JSON))
    for collection_id in sorted(collection_ids):
        catalog.add_link(pystac.Link("child", f"./{collection_id}/collection.json", pystac.MediaType.JSON,
                                     title=collection_id))
    return catalog.to_dict(include_self_link=False, transform_hrefs=False)


def _load(files: CatalogFiles, key: str) -> dict[str, Any] | None:
    data = files.read(key)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def relink_collection(files: CatalogFiles, collection_id: str) -> int:
    """Rebuild ``collection.json`` from the items present until a re-check finds no other; the item count."""
    aoi = _load(files, aoi_key(collection_id))
    written: list[str] | None = None
    for _ in range(MAX_REBUILDS):
        keys = _item_keys(files, collection_id)
        if keys == written:
            return len(keys)
        items = [(key, doc) for key in keys if (doc := _load(files, key)) is not None]
        files.write(collection_key(collection_id), dump(collection_document(collection_id, items, aoi)))
        written = keys
    return len(written or [])


def collections_present(files: CatalogFiles) -> list[str]:
    prefix = f"{STAC_ROOT}/"
    found = set()
    for key in files.keys(prefix):
        parts = key[len(prefix):].split("/")
        if (len(parts) == 3 and parts[1] == "items") or parts[1:] == ["collection.json"]:
            found.add(parts[0])
    return sorted(found)


def relink_root(files: CatalogFiles) -> list[str]:
    """Rebuild ``catalog.json`` from the collections present, re-checked like a collection's."""
    written: list[str] | None = None
    for _ in range(MAX_REBUILDS):
        present = collections_present(files)
        if present == written:
            break
        files.write(CATALOG_KEY, dump(root_document(present)))
        written = present
    return written or []
