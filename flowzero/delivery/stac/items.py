"""One STAC Item per delivered scene or basemap quad, built with pystac from what the delivery knows. Pure.

What an item says comes from four places: the delivered files (keys, sizes and the manifest's digests, as
``file:size`` and a multihash ``file:checksum``), Planet's item JSON delivered beside the image (acquired time,
footprint, cloud cover, clear and visible percentages), the order as planned and recorded (the clip AOI, the
cadence and the period each scene was chosen for, its coverage) and the order itself (id and name). Hrefs
point at the delivered files only, never at Planet's download links, so no token can reach the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from flowzero.selection import acquired_datetime

if TYPE_CHECKING:
    import pystac

    from flowzero.models import Order, TransferJob

GEOTIFF = "image/tiff; application=geotiff"
BANDS = {  # PlanetScope band order in the analytic images
    4: ("blue", "green", "red", "nir"),
    8: ("coastal", "blue", "green05", "green", "yellow", "red", "rededge", "nir"),
}
COMMON_NAMES = {"green05": "green", "rededge": "rededge", "coastal": "coastal", "yellow": "yellow"}
UDM2_BANDS = ("clear", "snow", "shadow", "light_haze", "heavy_haze", "cloud", "confidence", "udm1")
ROLES = {"image": ["data"], "udm2": ["cloud", "data-mask"], "metadata": ["metadata"]}
TITLES = {"image": "Analytic image (surface reflectance)", "udm2": "Usable data mask (UDM2)",
          "metadata": "Planet's item metadata"}
_SCENE_KEY = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(.+?)(_udm2\.tif|_metadata\.json|\.tiff)$")


@dataclass
class DeliveredFile:
    """One delivered file: its key under the destination, where an item links to it, and what it is."""

    key: str
    href: str
    kind: str  # "image", "udm2", "metadata" (scenes) or "quad"
    size: Optional[int] = None
    sha256: Optional[str] = None
    md5: Optional[str] = None


@dataclass
class Delivered:
    """One scene or quad of an order, with its files; ``planet`` is Planet's item JSON when delivered."""

    id: str
    files: dict[str, DeliveredFile] = field(default_factory=dict)
    planet: dict[str, Any] = field(default_factory=dict)


def multihash(sha256: str | None, md5: str | None) -> str | None:
    """The file extension's ``file:checksum``: a hex multihash, sha2-256 (0x12) else md5 (0xd5)."""
    if sha256:
        return f"1220{sha256}"
    if md5:
        return f"d510{md5}"
    return None


def scene_of_key(key: str) -> tuple[str, str] | None:
    """(Planet item id, asset kind) of a delivered scene file's key, e.g. ``.../2024_01_05_1810_..._udm2.tif``."""
    match = _SCENE_KEY.match(key.rsplit("/", 1)[-1])
    if not match:
        return None
    year, month, day, rest, suffix = match.groups()
    kind = {"_udm2.tif": "udm2", "_metadata.json": "metadata", ".tiff": "image"}[suffix]
    return f"{year}{month}{day}_{rest}", kind


def group_scenes(keys: Sequence[str], jobs: Sequence[TransferJob], href: Callable[[str], str]) -> list[Delivered]:
    """The delivered files of a PlanetScope order, grouped by item (items without an image are left out)."""
    found: dict[str, Delivered] = {}
    for key, job in zip(keys, jobs):
        parsed = scene_of_key(key)
        if parsed is None:
            continue
        item, kind = parsed
        entry = found.setdefault(item, Delivered(item))
        entry.files[kind] = DeliveredFile(key, href(key), kind, job.size, job.sha256, job.md5)
    return [entry for entry in found.values() if "image" in entry.files]


def group_quads(keys: Sequence[str], jobs: Sequence[TransferJob], href: Callable[[str], str],
                mosaic: str) -> list[Delivered]:
    """One entry per delivered basemap quad."""
    found = []
    for key, job in zip(keys, jobs):
        quad = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        found.append(Delivered(f"{mosaic}-{quad}" if mosaic else quad,
                               {"quad": DeliveredFile(key, href(key), "quad", job.size, job.sha256, job.md5)}))
    return found


def _asset(file: DeliveredFile, media_type: str, roles: list[str], title: str) -> pystac.Asset:
    import pystac
    from pystac.extensions.file import FileExtension

    asset = pystac.Asset(file.href, title=title, media_type=media_type, roles=roles)
    extension = FileExtension.ext(asset)
    if file.size is not None:
        extension.size = file.size
    checksum = multihash(file.sha256, file.md5)
    if checksum:
        extension.checksum = checksum
    return asset


def _footprint(planet_geometry: dict[str, Any] | None, clip: dict[str, Any] | None) -> dict[str, Any] | None:
    """What was delivered: Planet's footprint within the clip AOI (the clip alone when the footprint is unknown)."""
    from shapely.geometry import mapping, shape

    if not planet_geometry:
        return clip
    try:  # Planet's JSON is read from the destination: a malformed footprint must not stop the catalog
        footprint = shape(planet_geometry)
        if clip:
            footprint = footprint.intersection(shape(clip))
    except Exception:
        return clip
    if footprint.is_empty or footprint.geom_type not in ("Polygon", "MultiPolygon"):
        return clip
    return mapping(footprint)


def _acquired(item_id: str, planet: dict[str, Any], recorded: dict[str, Any]) -> datetime:
    text = planet.get("acquired") or recorded.get("acquired")
    if text:
        return acquired_datetime(str(text))
    return datetime.strptime(item_id[:15], "%Y%m%d_%H%M%S").replace(tzinfo=timezone.utc)


def _bbox(geometry: dict[str, Any] | None) -> list[float] | None:
    if not geometry:
        return None
    from shapely.geometry import shape

    return [round(v, 7) for v in shape(geometry).bounds]


def order_properties(order_json: dict[str, Any], record: Order | None) -> dict[str, Any]:
    """What every item of an order says about it: the order's id and name, the cadence it was planned for."""
    meta = (record.metadata or {}) if record else {}
    properties = {"flowzero:order_id": str(order_json.get("id") or (record.order_id if record else "")),
                  "flowzero:order_name": str(order_json.get("name") or (record.order_name if record else ""))}
    if meta.get("cadence"):
        properties["flowzero:cadence"] = meta["cadence"]
    return properties


def scene_item(scene: Delivered, order: dict[str, Any], record: Order | None, clip: dict[str, Any] | None,
               num_bands: int) -> pystac.Item:
    """The STAC Item of one delivered PlanetScope scene."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension

    props = (scene.planet.get("properties") or {}) if isinstance(scene.planet, dict) else {}
    recorded = ((record.metadata or {}).get("scenes") or {}).get(scene.id, {}) if record else {}
    geometry = _footprint(scene.planet.get("geometry") if isinstance(scene.planet, dict) else None, clip)
    properties: dict[str, Any] = {**order_properties(order, record), "constellation": "planetscope",
                                  "pl:item_type": "PSScene"}
    if recorded.get("period"):
        properties["flowzero:period"] = recorded["period"]
    if recorded.get("coverage_pct") is not None:
        properties["flowzero:coverage_pct"] = recorded["coverage_pct"]
    for source, target in (("clear_percent", "pl:clear_percent"), ("visible_percent", "pl:visible_percent"),
                           ("quality_category", "pl:quality_category"), ("satellite_id", "platform"),
                           ("gsd", "gsd")):
        if props.get(source) is not None:
            properties[target] = props[source]
    if props.get("instrument"):
        properties["instruments"] = [str(props["instrument"])]
    item = pystac.Item(scene.id, geometry, _bbox(geometry), _acquired(scene.id, props, recorded), properties)
    cloud = props.get("cloud_cover", recorded.get("cloud_cover"))
    eo = EOExtension.ext(item, add_if_missing=True)
    if cloud is not None:
        eo.cloud_cover = round(float(cloud) * 100, 2)  # Planet gives a fraction, STAC a percentage
    names = BANDS.get(num_bands, BANDS[4])
    for kind, file in scene.files.items():
        media = "application/json" if kind == "metadata" else GEOTIFF
        asset = _asset(file, media, ROLES[kind], TITLES[kind])
        item.add_asset(kind, asset)
        if kind == "image":
            EOExtension.ext(asset).bands = [Band.create(name=n, common_name=COMMON_NAMES.get(n, n)) for n in names]
        elif kind == "udm2":
            EOExtension.ext(asset).bands = [Band.create(name=n) for n in UDM2_BANDS]
    return item


def quad_item(quad: Delivered, order: dict[str, Any], record: Order | None, clip: dict[str, Any] | None,
              period: str) -> pystac.Item:
    """The STAC Item of one delivered basemap quad: the mosaic's acquisition range, no single datetime."""
    import pystac

    start = _day((record.start_date if record else None) or period)
    end = _day((record.end_date if record else None) or period, end=True)
    properties = {**order_properties(order, record), "pl:item_type": "quad", "flowzero:period": period,
                  "start_datetime": _rfc3339(start), "end_datetime": _rfc3339(end)}
    if record and record.mosaic_name:
        properties["pl:mosaic_name"] = record.mosaic_name
    item = pystac.Item(quad.id, clip, _bbox(clip), None, properties)
    item.add_asset("image", _asset(quad.files["quad"], GEOTIFF, ["data"], "Basemap quad"))
    return item


def _day(text: str, end: bool = False) -> datetime:
    """``2024-01-01``, ``2024_01`` or ``2024-01`` as the start (or end) of that day or month, UTC."""
    digits = re.sub(r"[^0-9]", "", text or "")
    if len(digits) >= 8:
        moment = datetime.strptime(digits[:8], "%Y%m%d")
        return moment.replace(hour=23, minute=59, second=59) if end else moment
    moment = datetime.strptime((digits + "01")[:6] or "197001", "%Y%m")
    if end:
        nxt = moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
        return datetime.fromtimestamp(nxt.replace(tzinfo=timezone.utc).timestamp() - 1, timezone.utc).replace(
            tzinfo=None)
    return moment


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
