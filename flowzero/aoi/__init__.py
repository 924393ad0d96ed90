"""Areas of interest: read GeoJSON and shapefiles into validated WGS84 polygons with a name and an area.

Heavy libraries (shapely, pyproj, pyshp) are imported inside functions: importing this package is cheap.
"""

from __future__ import annotations

from flowzero.aoi.convert import ConversionResult, convert_shapefile, shapefile_to_geojson
from flowzero.aoi.gages import read_gages
from flowzero.aoi.geometry import (
    PLANET_MAX_VERTICES,
    clip_geometry,
    geodesic_area_sqkm,
    to_geojson_dict,
    validate_polygonal,
    vertex_count,
)
from flowzero.aoi.model import AOI, Gage
from flowzero.aoi.naming import aoi_name_from_path, normalize_name, sanitize_name
from flowzero.aoi.readers import load_aoi, read_geojson, read_shapefile

__all__ = [
    "AOI",
    "PLANET_MAX_VERTICES",
    "ConversionResult",
    "Gage",
    "aoi_name_from_path",
    "clip_geometry",
    "convert_shapefile",
    "geodesic_area_sqkm",
    "load_aoi",
    "normalize_name",
    "read_gages",
    "read_geojson",
    "read_shapefile",
    "sanitize_name",
    "shapefile_to_geojson",
    "to_geojson_dict",
    "validate_polygonal",
    "vertex_count",
]
