"""What the sandbox's images show: small, deterministic rasters on the right grid for each scene and quad.

A scene is drawn on a north-up grid in the UTM zone of its area (the clip AOI within the footprint, as Planet
clips), at most ``MAX_SIDE`` pixels across; outside that area every band is 0 (nodata). Its UDM2 has Planet's 8
bands (clear, snow, shadow, light haze, heavy haze, cloud, confidence, unusable) and marks as cloud, shadow and
haze the share of pixels the item's properties give, so the mask, the image (clouds are bright, shadows dark)
and the metadata agree. A basemap quad is a 4-band (RGB + alpha) byte image on its Web Mercator tile.
Everything is a function of the item (or quad) and its area, so the same order always yields the same bytes.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from flowzero.sandbox.geotiff import Grid

MAX_SIDE = 256  # pixels along the longer side of a scene
QUAD_SIDE = 256  # pixels of a quad (Planet's are 4096)
MIN_RESOLUTION = 3.0  # metres: PlanetScope's pixel
PARCEL = 8  # pixels of one field of the drawn ground
WEB_MERCATOR = 3857
_EARTH_RADIUS = 6378137.0
UDM2_BANDS = ("clear", "snow", "shadow", "light_haze", "heavy_haze", "cloud", "confidence", "udm1")


def _seed(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def utm_epsg(lon: float, lat: float) -> int:
    """The WGS84 UTM zone of a point: 326xx north, 327xx south."""
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def _projected(geometry: Any, epsg: int) -> Any:
    import shapely
    from pyproj import Transformer

    to_crs = Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(to_crs.transform(xy[:, 0], xy[:, 1])))


def scene_grid(area: Any, sizing: Any) -> tuple[Grid, Any]:
    """(grid, area in its CRS) for a scene's lon/lat ``area``; the resolution comes from ``sizing`` (the clip AOI,
    the same for every scene of it, so their pixels line up)."""
    centre = sizing.centroid
    epsg = utm_epsg(centre.x, centre.y)
    minx, miny, maxx, maxy = _projected(sizing, epsg).bounds
    resolution = max(MIN_RESOLUTION, math.ceil(max(maxx - minx, maxy - miny) / MAX_SIDE))
    shape = _projected(area, epsg)
    minx, miny, maxx, maxy = shape.bounds
    x0, y0 = math.floor(minx / resolution) * resolution, math.ceil(maxy / resolution) * resolution
    width = max(1, math.ceil((maxx - x0) / resolution))
    height = max(1, math.ceil((y0 - miny) / resolution))
    return Grid(epsg, x0, y0, float(resolution), width, height), shape


def _inside(grid: Grid, shape: Any) -> np.ndarray:
    import shapely

    xs, ys = grid.pixel_centres()
    return shapely.contains_xy(shape, xs, ys)


def _field(grid: Grid, item: str) -> np.ndarray:
    """A smooth pseudo-random surface (a few waves) in 0..1, the same for the item's image and its mask."""
    rng = _seed("field", item)
    rows, cols = np.mgrid[0:grid.height, 0:grid.width]
    scale = max(grid.width, grid.height)
    total = np.zeros((grid.height, grid.width))
    for _ in range(4):
        fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * math.pi)
        total += np.sin(2 * math.pi * (fx * cols + fy * rows) / scale + phase)
    return (total - total.min()) / max(float(np.ptp(total)), 1e-9)


def _parcels(grid: Grid) -> np.ndarray:
    """The ground: fields of 8x8 pixels at 12 levels, fixed to the grid's place, so every scene of an AOI shows
    the same fields (and the images stay small: flat areas deflate well)."""
    rng = _seed("ground", grid.epsg, grid.x0 // 1000, grid.y0 // 1000)
    coarse = rng.integers(0, 12, size=(grid.height // PARCEL + 1, grid.width // PARCEL + 1))
    return np.repeat(np.repeat(coarse, PARCEL, 0), PARCEL, 1)[:grid.height, :grid.width]


def _classes(field: np.ndarray, inside: np.ndarray, properties: dict[str, Any]) -> np.ndarray:
    """0 outside, then per pixel 1 clear, 3 shadow, 4 light haze, 6 cloud (UDM2 band numbers), the cloudiest
    part of the field being cloud, in the shares the item's properties give."""
    classes = np.zeros(field.shape, dtype=np.uint8)
    values = field[inside]
    order = np.argsort(-values, kind="stable")
    labels = np.ones(values.size, dtype=np.uint8)
    shares = ((6, "cloud_percent"), (4, "light_haze_percent"), (3, "shadow_percent"))
    start = 0
    for band, key in shares:
        count = round(values.size * float(properties.get(key) or 0) / 100)
        labels[order[start:start + count]] = band
        start += count
    classes[inside] = labels
    return classes


def scene_rasters(item: str, area: Any, sizing: Any, bands: int,
                  properties: dict[str, Any]) -> tuple[Grid, np.ndarray, np.ndarray]:
    """(grid, image uint16 (bands, h, w), udm2 uint8 (8, h, w)) of one clipped scene."""
    grid, shape = scene_grid(area, sizing)
    inside = _inside(grid, shape)
    field = _field(grid, item)
    classes = _classes(field, inside, properties)
    ground = _parcels(grid)
    offset = int(_seed("image", item).integers(0, 150))
    image = np.zeros((bands, grid.height, grid.width), dtype=np.uint16)
    for band in range(bands):
        surface = 400 + 180 * band + offset + 60 * ground
        surface = np.where(classes == 6, 6000 + 100 * band, surface)
        surface = np.where(classes == 3, surface // 3, surface)
        surface = np.where(classes == 4, surface + 1200, surface)
        image[band] = np.where(inside, surface, 0).astype(np.uint16)
    udm2 = np.zeros((len(UDM2_BANDS), grid.height, grid.width), dtype=np.uint8)
    for index, band in ((0, 1), (2, 3), (3, 4), (5, 6)):
        udm2[index] = classes == band
    udm2[6] = np.where(inside, 90, 0)
    udm2[7] = np.where(inside, 0, 1)  # blackfill outside the delivered area
    return grid, image, udm2


def quad_grid(bounds: tuple[float, float, float, float]) -> Grid:
    """The Web Mercator grid of a quad with lon/lat ``bounds``."""
    west, _, east, north = bounds

    def x(lon: float) -> float:
        return math.radians(lon) * _EARTH_RADIUS

    def y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * _EARTH_RADIUS

    resolution = (x(east) - x(west)) / QUAD_SIDE
    return Grid(WEB_MERCATOR, x(west), y(north), resolution, QUAD_SIDE, QUAD_SIDE)


def quad_raster(quad: str, bounds: tuple[float, float, float, float], clip: Any | None) -> tuple[Grid, np.ndarray]:
    """(grid, RGBA uint8 (4, 256, 256)) of a basemap quad, transparent outside ``clip`` (lon/lat) if given."""
    grid = quad_grid(bounds)
    inside = np.ones((grid.height, grid.width), dtype=bool) if clip is None else _inside(
        grid, _projected(clip, WEB_MERCATOR))
    field = _field(grid, quad)
    image = np.zeros((4, grid.height, grid.width), dtype=np.uint8)
    for band, base in enumerate((70, 90, 60)):
        image[band] = np.where(inside, base + np.round(120 * field), 0).astype(np.uint8)
    image[3] = np.where(inside, 255, 0)
    return grid, image


def raster_key(payload: dict[str, Any]) -> str:
    """What a raster payload is drawn from besides its name: its area and grid sizing, as stable text."""
    import json

    return json.dumps({k: payload.get(k) for k in ("area", "sizing", "clip", "bands")}, sort_keys=True)


def render(payload: dict[str, Any]) -> tuple[np.ndarray, Grid, int | None]:
    """(bands, grid, nodata) of a ``scene``, ``udm2`` or ``quad`` payload planned by the sandbox's orders."""
    from shapely.geometry import shape

    from flowzero.sandbox.basemaps import parse_quad_id, quad_bounds
    from flowzero.sandbox.catalog import properties_for

    if payload["kind"] == "quad":
        clip = shape(payload["clip"]) if payload.get("clip") else None
        grid, image = quad_raster(payload["quad"], quad_bounds(*parse_quad_id(payload["quad"])), clip)  # type: ignore[misc]
        return image, grid, None
    area = shape(payload["area"])
    sizing = shape(payload["sizing"]) if payload.get("sizing") else area
    item = payload["item"]
    grid, image, udm2 = scene_rasters(item, area, sizing, int(payload.get("bands") or 4), properties_for(item))
    return (udm2, grid, None) if payload["kind"] == "udm2" else (image, grid, 0)
