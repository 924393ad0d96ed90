"""Read AOI files: GeoJSON (any of its shapes) and shapefiles (reprojected to WGS84 from their .prj).

Every failure is an AOIError naming the file, so a bad AOI is one clear line, never a traceback. Files are
checked before they are opened: only regular files of at most :data:`MAX_AOI_FILE_BYTES` are read (a FIFO would
block, /dev/zero never end, a sparse 2 GB file fill the memory), and each part of a shapefile likewise.
"""

from __future__ import annotations

import codecs
import json
import logging
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from flowzero.aoi.geometry import _shape, geodesic_area_sqkm, reproject_to_wgs84, validate_polygonal
from flowzero.aoi.model import AOI
from flowzero.aoi.naming import aoi_name_from_path
from flowzero.errors import AOIError

if TYPE_CHECKING:
    from pyproj import CRS
    from shapely.geometry.base import BaseGeometry

log = logging.getLogger("flowzero.aoi")

GEOJSON_SUFFIXES = (".geojson", ".json")
SHAPEFILE_SUFFIX = ".shp"
_GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                   "GeometryCollection")
_POLYGON_SHAPE_TYPES = (5, 15, 25)  # POLYGON, POLYGONZ, POLYGONM
_WGS84_NAMES = ("urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "CRS84", "OGC:CRS84")
# The largest AOI file, or shapefile part (.shp, .shx, .dbf, .prj, .cpg), that is read: a shapefile of thousands of
# detailed gage polygons is a few MB; more than this is not an AOI (and would be held in memory whole).
MAX_AOI_FILE_BYTES = 64 * 1024 * 1024


def check_aoi_file(path: Path) -> None:
    """Refuse, before opening it, anything but a regular file of at most :data:`MAX_AOI_FILE_BYTES`."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AOIError(f"{path}: file not found") from None
    except OSError as exc:
        raise AOIError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise AOIError(f"{path}: not a regular file", hint="give the path of a .geojson, .json or .shp file")
    if info.st_size > MAX_AOI_FILE_BYTES:
        raise AOIError(f"{path}: {info.st_size / 1e6:,.0f} MB is more than an AOI file may be "
                       f"({MAX_AOI_FILE_BYTES / 1e6:,.0f} MB)", hint="simplify the AOI, or split the shapefile")


def read_aoi_bytes(path: Path) -> bytes:
    """The whole of a checked AOI file (:func:`check_aoi_file`), read with the cap in force."""
    check_aoi_file(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_AOI_FILE_BYTES + 1)
    except OSError as exc:
        raise AOIError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_AOI_FILE_BYTES:  # it grew after the check
        raise AOIError(f"{path}: more than an AOI file may be ({MAX_AOI_FILE_BYTES / 1e6:,.0f} MB)")
    return data


def load_aoi(path: str | Path, name: str | None = None) -> AOI:
    """An AOI from a ``.geojson``/``.json`` or ``.shp`` file; ``name`` overrides the file's name."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in GEOJSON_SUFFIXES:
        return read_geojson(path, name)
    if suffix == SHAPEFILE_SUFFIX:
        return read_shapefile(path, name)
    raise AOIError(f"{path}: unsupported AOI file type '{path.suffix or '(none)'}'",
                   hint="give a .geojson, .json or .shp file")


def _union(geoms: list[BaseGeometry], where: str) -> BaseGeometry:
    if len(geoms) == 1:
        return geoms[0]
    from shapely import unary_union

    return validate_polygonal(unary_union(geoms), where)


def _aoi(path: Path, name: str | None, geometry: BaseGeometry) -> AOI:
    return AOI(name=aoi_name_from_path(path, name), geometry=geometry,
               area_sqkm=geodesic_area_sqkm(geometry), source=path)


# --- GeoJSON ---


def _load_json(path: Path) -> Any:
    try:
        text = read_aoi_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AOIError(f"{path}: not a text file (GeoJSON must be UTF-8)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AOIError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise AOIError(f"{path}: JSON nested too deeply to be GeoJSON") from None


def _geojson_crs(data: dict[str, Any], where: str) -> CRS | None:
    """The legacy ``crs`` member's CRS, or None for WGS84 / absent (RFC 7946 GeoJSON is always WGS84)."""
    crs_member = data.get("crs")
    if not crs_member:
        return None
    properties = crs_member.get("properties") if isinstance(crs_member, dict) else None
    crs_name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(properties, (dict, type(None))) or not isinstance(crs_name, (str, type(None))):
        raise AOIError(f"{where}: malformed 'crs' member (expected {{\"properties\": {{\"name\": \"EPSG:...\"}}}})",
                       hint="save the file as WGS84 (EPSG:4326) GeoJSON, without a crs member")
    if not crs_name or crs_name in _WGS84_NAMES:
        return None
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        crs = CRS.from_user_input(crs_name)
    except CRSError:
        raise AOIError(f"{where}: unknown coordinate reference system '{crs_name}'",
                       hint="save the file as WGS84 (EPSG:4326) GeoJSON") from None
    return None if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True) else crs


def geojson_geometries(data: Any, where: str) -> list[tuple[Any, str]]:
    """The raw geometry dicts of a GeoJSON document with a label for each (file, or file + feature number)."""
    if not isinstance(data, dict):
        raise AOIError(f"{where}: not a GeoJSON object")
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise AOIError(f"{where}: FeatureCollection without a 'features' list")
        if not features:
            raise AOIError(f"{where}: the FeatureCollection has no features")
        found = []
        for number, feature in enumerate(features, start=1):
            label = where if len(features) == 1 else f"{where} (feature {number})"
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise AOIError(f"{label}: not a GeoJSON Feature")
            found.append((feature.get("geometry"), label))
        return found
    if kind == "Feature":
        return [(data.get("geometry"), where)]
    if kind in _GEOMETRY_TYPES:
        return [(data, where)]
    raise AOIError(f"{where}: not GeoJSON (type {kind!r}); expected a FeatureCollection, Feature or geometry")


def read_geojson(path: str | Path, name: str | None = None) -> AOI:
    """An AOI from a GeoJSON FeatureCollection, Feature or bare geometry; several features are unioned."""
    path = Path(path)
    where = str(path)
    data = _load_json(path)
    raw = geojson_geometries(data, where)
    crs = _geojson_crs(data, where)
    geoms = []
    for geometry, label in raw:
        if crs is not None and geometry is not None:
            geometry = reproject_to_wgs84(validate_shape(geometry, label), crs)
        geoms.append(validate_polygonal(geometry, label))
    return _aoi(path, name, _union(geoms, where))


def validate_shape(geometry: Any, where: str) -> BaseGeometry:
    """A geometry dict as shapely, with unreadable input reported as an AOIError (no range checks)."""
    from shapely.errors import ShapelyError

    try:
        return _shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError, ShapelyError) as exc:
        raise AOIError(f"{where}: unreadable geometry ({exc})") from None


# --- Shapefiles ---


@dataclass
class ShapefileContents:
    """A shapefile's column names and its records as (WGS84 geometry or None for a null shape, attributes)."""

    path: Path
    fields: list[str]
    records: list[tuple[Optional[BaseGeometry], dict[str, Any]]] = field(default_factory=list)


def _sibling(path: Path, ext: str) -> Path | None:
    for candidate in (path.with_suffix(ext), path.with_suffix(ext.upper())):
        if candidate.exists():  # a folder or a FIFO of that name is refused by check_aoi_file, not skipped
            return candidate
    return None


def _shapefile_crs(path: Path) -> CRS:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    prj = _sibling(path, ".prj")
    if prj is None:
        log.warning("%s has no .prj file; assuming WGS84 longitude/latitude", path)
        return CRS.from_epsg(4326)
    try:
        return CRS.from_wkt(read_aoi_bytes(prj).decode("utf-8", errors="replace").strip())
    except CRSError as exc:
        raise AOIError(f"{prj}: unreadable projection ({exc})",
                       hint="re-export the shapefile with a valid .prj") from None


def _dbf_encoding(path: Path) -> str:
    cpg = _sibling(path, ".cpg")
    if cpg is None:
        return "utf-8"
    name = read_aoi_bytes(cpg).decode("ascii", errors="replace").strip() or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def _field_name(f: Any) -> str:
    return str(getattr(f, "name", None) or f[0])


def _read_records(path: Path, shx: Path, dbf: Path, contents: ShapefileContents) -> None:
    """The fields and every record of the shapefile into ``contents`` (geometries as read, not reprojected)."""
    import shapefile
    from shapely.geometry import shape

    with path.open("rb") as shp_f, open(shx, "rb") as shx_f, open(dbf, "rb") as dbf_f, shapefile.Reader(
        shp=shp_f, shx=shx_f, dbf=dbf_f, encoding=_dbf_encoding(path), encodingErrors="replace"
    ) as reader:
        if reader.shapeType not in _POLYGON_SHAPE_TYPES:
            kind = getattr(reader, "shapeTypeName", str(reader.shapeType))
            raise AOIError(f"{path}: contains {kind} shapes; an AOI shapefile must contain polygons",
                           hint="export the area as polygons")
        contents.fields = [_field_name(f) for f in reader.fields if _field_name(f) != "DeletionFlag"]
        for item in reader.iterShapeRecords():
            geometry = None
            if item.shape.shapeType in _POLYGON_SHAPE_TYPES and item.shape.points:
                geometry = shape(item.shape.__geo_interface__)
            contents.records.append((geometry, dict(item.record.as_dict())))


def read_shapefile_contents(path: str | Path) -> ShapefileContents:
    """Every record of a polygon shapefile, geometries reprojected to WGS84 but not yet validated."""
    import shapefile
    from shapely.errors import ShapelyError

    path = Path(path)
    if path.suffix.lower() != SHAPEFILE_SUFFIX:
        raise AOIError(f"{path}: not a .shp file")
    check_aoi_file(path)
    for ext in (".shx", ".dbf"):
        if _sibling(path, ext) is None:
            raise AOIError(f"{path}: {path.with_suffix(ext).name} is missing",
                           hint="a shapefile needs its .shp, .shx and .dbf files side by side")
    crs = _shapefile_crs(path)
    shx, dbf = _sibling(path, ".shx"), _sibling(path, ".dbf")
    assert shx is not None and dbf is not None  # checked just above
    check_aoi_file(shx)
    check_aoi_file(dbf)
    contents = ShapefileContents(path=path, fields=[])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyshp's "possibly corrupt header" warnings: the error says it once
            _read_records(path, shx, dbf, contents)
    except AOIError:
        raise
    except (shapefile.ShapefileException, struct.error, ValueError, IndexError, KeyError, TypeError, OSError,
            RecursionError, ShapelyError) as exc:  # what a garbage .shp, .shx or .dbf makes pyshp or shapely raise
        raise AOIError(f"{path}: cannot read the shapefile ({exc})") from None
    if not contents.records:
        raise AOIError(f"{path}: the shapefile contains no shapes")
    contents.records = [(None if g is None else reproject_to_wgs84(g, crs), attrs)
                        for g, attrs in contents.records]
    return contents


def read_shapefile(path: str | Path, name: str | None = None) -> AOI:
    """An AOI from a polygon shapefile (all records unioned), reprojected from its .prj to WGS84."""
    path = Path(path)
    contents = read_shapefile_contents(path)
    many = len(contents.records) > 1
    geoms = []
    for number, (geometry, _attrs) in enumerate(contents.records, start=1):
        label = f"{path} (record {number})" if many else str(path)
        geoms.append(validate_polygonal(geometry, label))
    return _aoi(path, name, _union(geoms, str(path)))
