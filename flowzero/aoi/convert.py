"""`convert-shp`: a shapefile as WGS84 GeoJSON, one Feature per record with its attributes."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flowzero.aoi.geometry import geodesic_area_sqkm, to_geojson_dict, validate_polygonal
from flowzero.aoi.naming import aoi_name_from_path
from flowzero.aoi.readers import read_shapefile_contents


@dataclass
class ConversionResult:
    """What one conversion wrote."""

    source: Path
    output: Path
    aoi_name: str
    features: int
    area_sqkm: float


def _json_value(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def shapefile_to_geojson(shp_path: str | Path) -> dict[str, Any]:
    """A FeatureCollection in WGS84 (RFC 7946, no ``crs`` member) with every record's validated polygon."""
    path = Path(shp_path)
    contents = read_shapefile_contents(path)
    many = len(contents.records) > 1
    features = []
    for number, (geometry, attrs) in enumerate(contents.records, start=1):
        geom = validate_polygonal(geometry, f"{path} (record {number})" if many else str(path))
        features.append({"type": "Feature", "properties": {k: _json_value(v) for k, v in attrs.items()},
                         "geometry": to_geojson_dict(geom)})
    return {"type": "FeatureCollection", "name": path.stem, "features": features}


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert_shapefile(shp_path: str | Path, output_dir: str | Path) -> ConversionResult:
    """Write ``<output_dir>/<shapefile stem>.geojson`` (replacing an older one) and say what was written."""
    from shapely.geometry import shape
    from shapely.ops import unary_union

    path = Path(shp_path)
    collection = shapefile_to_geojson(path)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{path.stem}.geojson"
    _write_atomically(output, json.dumps(collection, indent=1) + "\n")
    union = unary_union([shape(f["geometry"]) for f in collection["features"]])
    return ConversionResult(source=path, output=output, aoi_name=aoi_name_from_path(path),
                            features=len(collection["features"]), area_sqkm=geodesic_area_sqkm(union))
