"""A deterministic PlanetScope catalog, generated around whatever area is searched.

For each day, the number of scenes, their times, satellites and footprints are drawn from a seed made of the
AOI's bounding box and the day, so the same search always finds the same scenes and a longer date range finds
the shorter range's scenes too. A scene's properties (cloud cover, quality, assets...) are drawn from its id
alone, so an order can describe an item it never saw in a search.

Most footprints cover the AOI's bounding box entirely (tilted like real PlanetScope frames); about a
quarter cover only 40-90 % of it, so coverage-based selection has something to reject. About half the
scenes are cloud free, some are cloudy, one in eight is of "test" quality and a few lack surface reflectance.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from shapely import affinity
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from flowzero.sandbox.api import rfc3339

ITEM_TYPE = "PSScene"
FIRST_DAY = date(2016, 1, 1)  # no PlanetScope scenes before this in the sandbox
ITEM_ID = re.compile(r"^(\d{8})_(\d{6})(?:_(\d{2}))?_([0-9a-f]{4})$")

_SATELLITES = {
    "PS2": ("0c72", "0e0e", "0f15", "1003", "100c", "1010", "1020", "1025"),
    "PS2.SD": ("1061", "1063", "1067", "1069", "106e", "106f"),
    "PSB.SD": ("2212", "2223", "2227", "2262", "2274", "227b", "2403", "241c", "2424", "2458", "24a3"),
}
_INSTRUMENT_OF = {sat: instrument for instrument, sats in _SATELLITES.items() for sat in sats}

_ASSETS_COMMON = ("basic_analytic_4b", "basic_analytic_4b_rpc", "basic_analytic_4b_xml", "basic_udm2",
                  "ortho_analytic_4b", "ortho_analytic_4b_xml", "ortho_udm2", "ortho_visual")
_ASSETS_8B = ("basic_analytic_8b", "basic_analytic_8b_xml", "ortho_analytic_8b", "ortho_analytic_8b_xml")
_SCENES_PER_DAY = (0, 1, 2, 3)
_SCENES_WEIGHTS = (0.25, 0.35, 0.25, 0.15)  # about 9 a week


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(seed[:16], "big"))


def parse_item_id(item_id: str) -> tuple[datetime, str] | None:
    """(acquired to the second, satellite id) of a PSScene id like ``20220125_075509_67_1061``, else None."""
    match = ITEM_ID.match(item_id)
    if not match:
        return None
    day, hms, centis, sat = match.groups()
    try:
        moment = datetime.strptime(day + hms, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return moment + timedelta(milliseconds=10 * int(centis or 0)), sat


def instrument_of(item_id: str) -> str:
    parsed = parse_item_id(item_id)
    if parsed is None:
        return "PS2"
    moment, sat = parsed
    if sat in _INSTRUMENT_OF:
        return _INSTRUMENT_OF[sat]
    return "PSB.SD" if moment.year >= 2021 else "PS2"


def assets_for(item_id: str) -> list[str]:
    """The item's asset types: 8-band ones for SuperDove (2021 on); a few lack surface reflectance."""
    rng = _rng("assets", item_id)
    eight_band = instrument_of(item_id) == "PSB.SD"
    has_sr = rng.random() >= 0.06
    assets = list(_ASSETS_COMMON)
    if has_sr:
        assets.append("ortho_analytic_4b_sr")
    if eight_band:
        assets.extend(_ASSETS_8B)
        if has_sr:
            assets.append("ortho_analytic_8b_sr")
    return sorted(assets)


def properties_for(item_id: str) -> dict[str, Any]:
    """The item's properties, shaped like the Data API's PSScene properties; a function of the id only."""
    parsed = parse_item_id(item_id)
    if parsed is None:
        raise ValueError(f"not a PSScene item id: {item_id}")
    moment, sat = parsed
    rng = _rng("properties", item_id)
    acquired = moment + timedelta(microseconds=rng.randrange(10000))
    draw = rng.random()
    if draw < 0.55:
        cloud = 0.0
    elif draw < 0.8:
        cloud = round(rng.uniform(0.01, 0.3), 2)
    else:
        cloud = round(rng.uniform(0.3, 1.0), 2)
    cloud_pct = round(cloud * 100)
    light_haze = rng.randint(0, min(8, 100 - cloud_pct))
    shadow = rng.randint(0, min(3, 100 - cloud_pct - light_haze))
    clear = 100 - cloud_pct - light_haze - shadow
    published = acquired + timedelta(hours=rng.randint(6, 96))
    return {
        "acquired": rfc3339(acquired),
        "anomalous_pixels": 0,
        "clear_confidence_percent": max(0, clear - rng.randint(0, 5)),
        "clear_percent": clear,
        "cloud_cover": cloud,
        "cloud_percent": cloud_pct,
        "ground_control": rng.random() > 0.1,
        "gsd": round(rng.uniform(3.6, 4.1), 1),
        "heavy_haze_percent": 0,
        "instrument": instrument_of(item_id),
        "item_type": ITEM_TYPE,
        "light_haze_percent": light_haze,
        "pixel_resolution": 3,
        "provider": "planetscope",
        "published": rfc3339(published)[:19] + "Z",
        "publishing_stage": "finalized",
        "quality_category": "test" if rng.random() < 0.12 else "standard",
        "satellite_azimuth": round(rng.uniform(90, 290), 1),
        "satellite_id": sat,
        "shadow_percent": shadow,
        "snow_ice_percent": 0,
        "strip_id": str(5000000 + rng.randrange(3000000)),
        "sun_azimuth": round(rng.uniform(100, 170), 1),
        "sun_elevation": round(rng.uniform(15, 70), 1),
        "updated": rfc3339(published)[:19] + "Z",
        "view_angle": round(rng.uniform(0, 5), 1),
        "visible_confidence_percent": max(0, clear - rng.randint(0, 20)),
        "visible_percent": 100 - cloud_pct,
    }


def _pool(day: date, rng: random.Random) -> tuple[str, ...]:
    if day.year >= 2021:
        return _SATELLITES["PSB.SD"]
    if day.year >= 2019:
        return _SATELLITES["PS2.SD"] if rng.random() < 0.5 else _SATELLITES["PS2"]
    return _SATELLITES["PS2"]


def _footprint(bounds: tuple[float, float, float, float], rng: random.Random) -> BaseGeometry:
    """Most frames cover the whole bounding box (tilted); a quarter cover only 40-90 % of it."""
    minx, miny, maxx, maxy = bounds
    width, height = maxx - minx, maxy - miny
    mx = width * rng.uniform(0.05, 0.4) + 0.01
    my = height * rng.uniform(0.05, 0.4) + 0.01
    if rng.random() < 0.75:
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        angle = rng.uniform(-12.0, 12.0)
        upright = affinity.rotate(box(*bounds), -angle, origin=(cx, cy)).bounds
        frame = box(upright[0] - mx, upright[1] - my, upright[2] + mx, upright[3] + my)
        return affinity.rotate(frame, angle, origin=(cx, cy))
    covered = rng.uniform(0.4, 0.9)
    side = rng.choice("EWNS")
    if side == "E":
        return box(minx + (1 - covered) * width, miny - my, maxx + mx, maxy + my)
    if side == "W":
        return box(minx - mx, miny - my, maxx - (1 - covered) * width, maxy + my)
    if side == "N":
        return box(minx - mx, miny + (1 - covered) * height, maxx + mx, maxy + my)
    return box(minx - mx, miny - my, maxx + mx, maxy - (1 - covered) * height)


def _rounded(geom: BaseGeometry) -> dict[str, Any]:
    data = mapping(geom)
    rings = [[[round(x, 7), round(y, 7)] for x, y in ring] for ring in data["coordinates"]]
    return {"type": "Polygon", "coordinates": rings}


def scenes_for_day(aoi: BaseGeometry, day: date) -> list[tuple[str, dict[str, Any]]]:
    """(item id, footprint GeoJSON) of the 0-3 scenes taken over ``aoi``'s bounding box on ``day``."""
    minx, miny, maxx, maxy = aoi.bounds
    if maxx - minx < 0.005:
        minx, maxx = minx - 0.0025, maxx + 0.0025
    if maxy - miny < 0.005:
        miny, maxy = miny - 0.0025, maxy + 0.0025
    bounds = (minx, miny, maxx, maxy)
    # Seeded by the bbox rounded to ~100 m, so the same AOI read from a shapefile or its GeoJSON sees one catalog.
    rng = _rng("day", *(f"{v:.3f}" for v in bounds), day.isoformat())
    count = rng.choices(_SCENES_PER_DAY, _SCENES_WEIGHTS)[0]
    # Sun-synchronous morning pass: about 10:30 local solar time, expressed in UTC, kept within the day.
    local_noonish = (10.5 - ((minx + maxx) / 2) / 15.0) % 24
    scenes = []
    used: set[str] = set()
    for _ in range(count):
        hours = min(max(local_noonish + rng.uniform(-0.75, 0.75), 0.1), 23.8)
        moment = datetime.combine(day, time(), tzinfo=timezone.utc) + timedelta(seconds=int(hours * 3600))
        item_id = f"{moment:%Y%m%d_%H%M%S}_{rng.randrange(100):02d}_{rng.choice(_pool(day, rng))}"
        footprint = _footprint(bounds, rng)
        if item_id not in used:
            used.add(item_id)
            scenes.append((item_id, _rounded(footprint)))
    return scenes


class Catalog:
    """Builds Data API features and remembers the ones it has shown (for item GETs and order metadata)."""

    def __init__(self, api_url: str, remember: int = 50000) -> None:
        self.api_url = api_url
        self._known: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def feature(self, item_id: str, geometry: dict[str, Any]) -> dict[str, Any]:
        assets = assets_for(item_id)
        item_url = f"{self.api_url}/item-types/{ITEM_TYPE}/items/{item_id}"
        return {
            "_links": {"_self": item_url, "assets": f"{item_url}/assets/", "thumbnail": f"{item_url}/thumb"},
            "_permissions": [f"assets.{asset}:download" for asset in assets],
            "assets": assets,
            "geometry": geometry,
            "id": item_id,
            "properties": properties_for(item_id),
            "type": "Feature",
        }

    def features(self, aoi: BaseGeometry, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every generated scene over ``aoi`` acquired in [start, end] (filters are applied by the caller)."""
        today = datetime.now(timezone.utc).date()
        first, last = max(start.date(), FIRST_DAY), min(end.date(), today)
        found = []
        day = first
        while day <= last:
            for item_id, geometry in scenes_for_day(aoi, day):
                feature = self.feature(item_id, geometry)
                acquired = parse_item_id(item_id)[0]  # type: ignore[index]
                if start <= acquired <= end:
                    found.append(feature)
            day += timedelta(days=1)
        return found

    def remember(self, features: list[dict[str, Any]]) -> None:
        with self._lock:
            for feature in features:
                self._known[feature["id"]] = feature
                self._known.move_to_end(feature["id"])
            while len(self._known) > self._remember:
                self._known.popitem(last=False)

    def known(self, item_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._known.get(item_id)
