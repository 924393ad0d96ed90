"""The Basemaps API: global monthly and quarterly mosaics, and their level-15 quads for any bounding box.

Quads follow Planet's grid: 4096-pixel Web-Mercator tiles at zoom 15, 2048 across, named
``L15-{x}E-{y}N`` with ``y`` counted from the south. Mosaics exist from January 2016 to the last complete
month (or quarter).
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlencode

from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from flowzero.sandbox.api import ApiError, bad_request, page_size, parse_time, rfc3339_ms

QUADS_ACROSS = 2048
MAX_LAT = 85.0511287798066
MAX_QUADS_PER_QUERY = 50000
_FIRST_YEAR = 2016


@dataclass(frozen=True)
class Mosaic:
    name: str
    first_acquired: datetime
    last_acquired: datetime
    interval: str

    @property
    def id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flowzero-sandbox/mosaics/{self.name}"))


def _month_start(year: int, month: int) -> datetime:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=timezone.utc)


def all_mosaics(today: date | None = None) -> list[Mosaic]:
    """Monthly and quarterly global mosaics from 2016 until the last complete period, oldest first."""
    today = today or datetime.now(timezone.utc).date()
    this_month = _month_start(today.year, today.month)
    found = []
    year, month = _FIRST_YEAR, 1
    while _month_start(year, month + 1) <= this_month:
        found.append(Mosaic(f"global_monthly_{year}_{month:02d}_mosaic", _month_start(year, month),
                            _month_start(year, month + 1), "1 mon"))
        if month % 3 == 0:
            quarter = month // 3
            found.append(Mosaic(f"global_quarterly_{year}q{quarter}_mosaic", _month_start(year, month - 2),
                                _month_start(year, month + 1), "3 mons"))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    found.sort(key=lambda m: (m.first_acquired, m.interval, m.name))
    return found


def _tile_x(lon: float) -> int:
    return min(QUADS_ACROSS - 1, max(0, math.floor((lon + 180.0) / 360.0 * QUADS_ACROSS)))


def _tile_y_from_top(lat: float) -> int:
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    rad = math.radians(lat)
    value = (1.0 - math.asinh(math.tan(rad)) / math.pi) / 2.0 * QUADS_ACROSS
    return min(QUADS_ACROSS - 1, max(0, math.floor(value)))


def _lat_of_row_top(row_from_top: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row_from_top / QUADS_ACROSS))))


def quad_id(x: int, y_north: int) -> str:
    return f"L15-{x:04d}E-{y_north:04d}N"


def quad_bounds(x: int, y_north: int) -> tuple[float, float, float, float]:
    row = QUADS_ACROSS - 1 - y_north
    west = x / QUADS_ACROSS * 360.0 - 180.0
    east = (x + 1) / QUADS_ACROSS * 360.0 - 180.0
    return (west, _lat_of_row_top(row + 1), east, _lat_of_row_top(row))


Bounds = tuple[float, float, float, float]


def quads_in_bbox(bbox: Bounds) -> list[tuple[str, Bounds]]:
    """(quad id, lon/lat bounds) of every quad touching ``bbox``, west to east, north to south."""
    west, south, east, north = bbox
    x0, x1 = _tile_x(west), _tile_x(east)
    top, bottom = _tile_y_from_top(north), _tile_y_from_top(south)
    count = (x1 - x0 + 1) * (bottom - top + 1)
    if count > MAX_QUADS_PER_QUERY:
        raise bad_request(f"the bbox spans {count} quads; at most {MAX_QUADS_PER_QUERY} per query", "bbox")
    found = []
    for row in range(top, bottom + 1):
        y_north = QUADS_ACROSS - 1 - row
        for x in range(x0, x1 + 1):
            found.append((quad_id(x, y_north), quad_bounds(x, y_north)))
    return found


def quads_for_geometry(geom: BaseGeometry) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The quads that actually intersect ``geom`` (not just its bounding box)."""
    area = prep(geom)
    return [(qid, bounds) for qid, bounds in quads_in_bbox(geom.bounds) if area.intersects(box(*bounds))]


def _percent_covered(mosaic: Mosaic, qid: str) -> int:
    draw = hashlib.sha256(f"{mosaic.name}|{qid}".encode()).digest()[0]
    return 100 if draw < 230 else 60 + draw % 40


def _offset(token: str | None, limit: int) -> int:
    try:
        offset = int(token or "0")
    except ValueError:
        raise bad_request(f"invalid _page token {token!r}", "_page") from None
    if not 0 <= offset <= limit:
        raise bad_request(f"invalid _page token {token!r}", "_page")
    return offset


class Basemaps:
    """Answers the mosaic and quad endpoints under ``mosaics_url`` (``.../basemaps/v1/mosaics``)."""

    def __init__(self, mosaics_url: str) -> None:
        self.url = mosaics_url
        self._mosaics = all_mosaics()
        self._by_id = {m.id: m for m in self._mosaics}
        self._by_name = {m.name: m for m in self._mosaics}

    def by_name(self, name: str) -> Mosaic | None:
        return self._by_name.get(name)

    def mosaic(self, mosaic_id: str) -> Mosaic:
        found = self._by_id.get(mosaic_id)
        if found is None:
            raise ApiError(404, f"Mosaic Not Found: {mosaic_id}")
        return found

    def describe(self, mosaic: Mosaic) -> dict[str, Any]:
        link = f"{self.url}/{mosaic.id}"
        tiles = f"{self.url.rsplit('/mosaics', 1)[0]}/planet-tiles"
        return {
            "_links": {
                "_self": link,
                "quads": f"{link}/quads?bbox={{lx}},{{ly}},{{ux}},{{uy}}",
                "tiles": f"{tiles}/{mosaic.name}/gmap/{{z}}/{{x}}/{{y}}.png",
            },
            "bbox": [-180.0, -MAX_LAT, 180.0, MAX_LAT],
            "coordinate_system": "EPSG:3857",
            "datatype": "byte",
            "first_acquired": rfc3339_ms(mosaic.first_acquired),
            "grid": {"quad_size": 4096, "resolution": 4.777314267823516},
            "id": mosaic.id,
            "interval": mosaic.interval,
            "item_types": ["PSScene"],
            "last_acquired": rfc3339_ms(mosaic.last_acquired),
            "level": 15,
            "name": mosaic.name,
            "product_type": "timelapse",
            "quad_download": True,
        }

    def list(self, params: dict[str, str]) -> dict[str, Any]:
        """``name__contains``, ``name__is``, ``acquired__gt`` / ``acquired__lt`` (overlap), ``_page_size``."""
        found = self._mosaics
        if params.get("name__is"):
            found = [m for m in found if m.name == params["name__is"]]
        if params.get("name__contains"):
            found = [m for m in found if params["name__contains"] in m.name]
        if params.get("acquired__gt"):
            after = parse_time(params["acquired__gt"], "acquired__gt")
            found = [m for m in found if m.last_acquired > after]
        if params.get("acquired__lt"):
            before = parse_time(params["acquired__lt"], "acquired__lt")
            found = [m for m in found if m.first_acquired < before]
        size = page_size(params.get("_page_size"), 50)
        offset = _offset(params.get("_page"), len(found))
        query = urlencode(sorted((k, v) for k, v in params.items() if k not in ("_page", "_page_size")))
        base = f"{self.url}?{query}&" if query else f"{self.url}?"
        links = {"_self": f"{base}_page={offset}&_page_size={size}"}
        if offset + size < len(found):
            links["_next"] = f"{base}_page={offset + size}&_page_size={size}"
        return {"_links": links, "mosaics": [self.describe(m) for m in found[offset:offset + size]]}

    def quad(self, mosaic: Mosaic, qid: str, bounds: tuple[float, float, float, float]) -> dict[str, Any]:
        link = f"{self.url}/{mosaic.id}/quads/{qid}"
        return {
            "_links": {"_self": link, "download": f"{link}/full", "items": f"{link}/items",
                       "thumbnail": f"{link}/thumb"},
            "bbox": [round(v, 9) for v in bounds],
            "id": qid,
            "percent_covered": _percent_covered(mosaic, qid),
        }

    def quads(self, mosaic_id: str, params: dict[str, str]) -> dict[str, Any]:
        mosaic = self.mosaic(mosaic_id)
        bbox = parse_bbox(params.get("bbox"))
        found = quads_in_bbox(bbox)
        size = page_size(params.get("_page_size"), 50)
        offset = _offset(params.get("_page"), len(found))
        base = f"{self.url}/{mosaic.id}/quads?bbox={','.join(repr(v) for v in bbox)}"
        links = {"_self": f"{base}&_page={offset}&_page_size={size}"}
        if offset + size < len(found):
            links["_next"] = f"{base}&_page={offset + size}&_page_size={size}"
        return {"_links": links, "items": [self.quad(mosaic, q, b) for q, b in found[offset:offset + size]]}

    def quad_by_id(self, mosaic_id: str, qid: str) -> tuple[Mosaic, dict[str, Any]]:
        mosaic = self.mosaic(mosaic_id)
        parsed = parse_quad_id(qid)
        if parsed is None:
            raise ApiError(404, f"Quad Not Found: {qid}")
        return mosaic, self.quad(mosaic, qid, quad_bounds(*parsed))


def parse_quad_id(qid: str) -> tuple[int, int] | None:
    parts = qid.split("-")
    if len(parts) != 3 or parts[0] != "L15" or not parts[1].endswith("E") or not parts[2].endswith("N"):
        return None
    try:
        x, y = int(parts[1][:-1]), int(parts[2][:-1])
    except ValueError:
        return None
    if not (0 <= x < QUADS_ACROSS and 0 <= y < QUADS_ACROSS):
        return None
    return x, y


def parse_bbox(value: str | None) -> tuple[float, float, float, float]:
    if not value:
        raise bad_request("bbox is required: lx,ly,ux,uy in degrees", "bbox")
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise bad_request(f"bbox must be four numbers lx,ly,ux,uy, got {value!r}", "bbox") from None
    if len(parts) != 4:
        raise bad_request(f"bbox must be four numbers lx,ly,ux,uy, got {value!r}", "bbox")
    lx, ly, ux, uy = parts
    if not (-180 <= lx <= ux <= 180 and -90 <= ly <= uy <= 90):
        raise bad_request(f"bbox {value!r} is not lx <= ux within [-180, 180] and ly <= uy within [-90, 90]",
                          "bbox")
    return lx, ly, ux, uy
