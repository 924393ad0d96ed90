"""The AOI and Gage dataclasses handed to the rest of flowzero (geometries always in WGS84 lon/lat)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from flowzero.aoi.geometry import to_geojson_dict
from flowzero.aoi.naming import sanitize_name

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry


@dataclass
class AOI:
    """A validated area of interest: a (multi)polygon in WGS84 with its geodesic area in km²."""

    name: str
    geometry: BaseGeometry = field(repr=False)
    area_sqkm: float
    source: Optional[Path] = None

    def geojson(self) -> dict[str, Any]:
        """The geometry as a GeoJSON mapping (what Planet's filters and clip tool take)."""
        return to_geojson_dict(self.geometry)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees, e.g. for basemap quad queries."""
        minx, miny, maxx, maxy = self.geometry.bounds
        return (minx, miny, maxx, maxy)


@dataclass
class Gage:
    """One record of a batch shapefile: a gage's polygon and the date range to order for it."""

    gage_id: str
    geometry: BaseGeometry = field(repr=False)
    area_sqkm: float
    start: date
    end: date
    attributes: dict[str, Any] = field(default_factory=dict, repr=False)
    source: Optional[Path] = None

    def geojson(self) -> dict[str, Any]:
        return to_geojson_dict(self.geometry)

    def as_aoi(self, name: str) -> AOI:
        """This gage's polygon as an :class:`AOI` under ``name`` (sanitised)."""
        return AOI(sanitize_name(name), self.geometry, self.area_sqkm, self.source)
