"""AOI reading, validation, area, naming, clip simplification, gage records and `convert-shp`.

The real AOIs in tests/data/aoi carry their own ground truth: the DBF ``Area_km2`` (``Area_sqkm`` for the gage
file) written by the GIS that drew them. Areas are read from the DBF here, independently of flowzero's code.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import shapefile
from click.testing import CliRunner
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape

from flowzero.aoi import (
    AOI,
    aoi_name_from_path,
    clip_geometry,
    geodesic_area_sqkm,
    load_aoi,
    normalize_name,
    read_gages,
    read_geojson,
    read_shapefile,
    sanitize_name,
    vertex_count,
)
from flowzero.errors import AOIError, UsageError

DATA = Path(__file__).parent / "data" / "aoi"
GAGE_STEM = "Virtual_gage_DrySpy_20241030_Cosumnes_Badger"
REAL_AOIS = {
    "Salinas/DrySpy_AOI_SalinasRiver": "SalinasRiver",
    "SantaClara/DrySpy_AOI_SantaClaraRiver_central": "SantaClaraRiver",
    "Scott/DrySpy_AOI_ScottRiver": "ScottRiver",
    f"{GAGE_STEM}/{GAGE_STEM}": GAGE_STEM,
}
TOLERANCE = 1e-4  # 0.01 %
WGS84_PRJ = (DATA / GAGE_STEM / f"{GAGE_STEM}.prj").read_text()
TEALE_PRJ = (DATA / "Salinas" / "DrySpy_AOI_SalinasRiver.prj").read_text()


def _shp(key: str) -> Path:
    return DATA / f"{key}.shp"


def _geojson(key: str) -> Path:
    return DATA / "geojson" / f"{Path(key).name}.geojson"


def _dbf_area(shp: Path) -> float:
    """The ground-truth area the GIS stored in the shapefile's DBF."""
    with shapefile.Reader(str(shp)) as reader:
        record = reader.record(0).as_dict()
    return float(record.get("Area_km2") or record["Area_sqkm"])


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def _square(x: float, y: float, size: float = 0.01) -> list[list[float]]:
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def _write_shapefile(base: Path, shape_type: int, shapes: list[Any], fields: list[tuple[str, str, int, int]],
                     records: list[list[Any]], prj: str | None = WGS84_PRJ) -> Path:
    """A small shapefile written with pyshp (+ .prj unless ``prj`` is None)."""
    with shapefile.Writer(str(base), shapeType=shape_type) as writer:
        for name, kind, size, decimal in fields:
            writer.field(name, kind, size, decimal)
        for geom, record in zip(shapes, records):
            if shape_type == shapefile.POLYGON:
                writer.poly(geom)
            elif shape_type == shapefile.POINT:
                writer.point(*geom)
            elif shape_type == shapefile.POLYLINE:
                writer.line(geom)
            writer.record(*record)
    if prj is not None:
        base.with_suffix(".prj").write_text(prj)
    return base.with_suffix(".shp")


ALL_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def _copy_shapefile(key: str, dest: Path, exts: tuple[str, ...] = ALL_PARTS) -> Path:
    src = _shp(key)
    for ext in exts:
        shutil.copy(src.with_suffix(ext), dest / src.with_suffix(ext).name)
    return dest / src.name


# --- real AOIs: area against the DBF ground truth ---


@pytest.mark.parametrize("key", sorted(REAL_AOIS))
def test_real_shapefile_area_matches_dbf(key: str) -> None:
    aoi = load_aoi(_shp(key))
    truth = _dbf_area(_shp(key))
    assert _rel(aoi.area_sqkm, truth) < TOLERANCE, (aoi.area_sqkm, truth)


@pytest.mark.parametrize("key", sorted(REAL_AOIS))
def test_real_geojson_area_matches_dbf(key: str) -> None:
    aoi = load_aoi(_geojson(key))
    truth = _dbf_area(_shp(key))
    assert _rel(aoi.area_sqkm, truth) < TOLERANCE, (aoi.area_sqkm, truth)


@pytest.mark.parametrize("key", sorted(REAL_AOIS))
def test_shapefile_is_reprojected_onto_its_geojson_conversion(key: str) -> None:
    from_shp = load_aoi(_shp(key)).geometry
    from_json = load_aoi(_geojson(key)).geometry
    # within ~0.5 m: the GeoJSON conversion applied a NAD83 -> WGS84 datum shift of a few decimetres
    assert from_shp.hausdorff_distance(from_json) < 5e-6
    lon, lat = from_shp.centroid.coords[0]
    assert -125 < lon < -114 and 32 < lat < 42  # California


@pytest.mark.parametrize(("key", "name"), sorted(REAL_AOIS.items()))
def test_real_aoi_names_and_fields(key: str, name: str) -> None:
    for path in (_shp(key), _geojson(key)):
        aoi = load_aoi(path)
        assert aoi.name == name
        assert aoi.source == path
        assert aoi.geometry.geom_type == "Polygon"
        assert aoi.geometry.is_valid
        assert aoi.geojson()["type"] == "Polygon"
        assert shape(aoi.geojson()).equals(aoi.geometry)


def test_geojson_mapping_survives_a_json_round_trip() -> None:
    aoi = load_aoi(_geojson("Scott/DrySpy_AOI_ScottRiver"))
    assert json.loads(json.dumps(aoi.geojson())) == aoi.geojson()
    west, south, east, north = aoi.bbox
    assert west < east and south < north


# --- geodesic area ---


def test_one_degree_cell_at_the_equator() -> None:
    # 1 deg x 1 deg at the equator on WGS84 is 12 308.8 km² (111.32 km x 110.57 km)
    assert geodesic_area_sqkm(box(0, 0, 1, 1)) == pytest.approx(12308.8, rel=1e-4)


def test_area_ignores_ring_orientation_and_subtracts_holes() -> None:
    outer = [(-120.0, 36.0), (-119.9, 36.0), (-119.9, 36.1), (-120.0, 36.1), (-120.0, 36.0)]
    hole = [(-119.97, 36.03), (-119.93, 36.03), (-119.93, 36.07), (-119.97, 36.07), (-119.97, 36.03)]
    geod = Geod(ellps="WGS84")
    outer_area = abs(geod.polygon_area_perimeter(*zip(*outer))[0]) / 1e6
    hole_area = abs(geod.polygon_area_perimeter(*zip(*hole))[0]) / 1e6
    ccw = Polygon(outer, [hole])
    cw_same_winding = Polygon(outer[::-1], [hole[::-1]])
    for poly in (ccw, cw_same_winding):
        assert geodesic_area_sqkm(poly) == pytest.approx(outer_area - hole_area, rel=1e-12)
    # parts of a MultiPolygon add up whatever their winding
    multi = MultiPolygon([Polygon(outer), Polygon([(x + 1, y) for x, y in outer[::-1]])])
    assert geodesic_area_sqkm(multi) == pytest.approx(2 * outer_area, rel=1e-6)


def test_area_of_a_geojson_dict() -> None:
    assert geodesic_area_sqkm(mapping(box(0, 0, 1, 1))) == geodesic_area_sqkm(box(0, 0, 1, 1))


# --- naming ---


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("DrySpy_AOI_SalinasRiver", "SalinasRiver"),
        ("DrySpy_AOI_SantaClaraRiver_central", "SantaClaraRiver"),
        ("AOI_Eel_north", "Eel"),
        ("DrySpy_Navarro_south", "Navarro"),
        ("AOI_Mad_East", "Mad"),
        ("Russian_west", "Russian"),
        ("SantaYnez", "SantaYnez"),
        ("River_centralia", "River_centralia"),  # only a whole trailing direction word goes
        ("North_Fork", "North_Fork"),  # only a trailing one
        ("Klamath_north_south", "Klamath_north"),  # one suffix, like the old tool
        (GAGE_STEM, GAGE_STEM),
        ("AOI_", "AOI_"),  # nothing left: keep the stem
    ],
)
def test_normalize_name(stem: str, expected: str) -> None:
    assert normalize_name(stem) == expected


def test_explicit_name_overrides_the_file_name() -> None:
    aoi = load_aoi(_shp("Salinas/DrySpy_AOI_SalinasRiver"), name="Salinas-upper")
    assert aoi.name == "Salinas-upper"
    assert aoi_name_from_path("x/DrySpy_AOI_Foo_central.geojson", "  ") == "Foo"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("SalinasRiver", "SalinasRiver"), ("Salinas River", "Salinas_River"), (" Eel  (2024) ", "Eel_2024"),
     ("río-Sur.v2", "r_o-Sur.v2"), ("a:b*c?", "a_b_c")],
)
def test_sanitize_name(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


@pytest.mark.parametrize("raw", ["../etc", "a/b", "a\\b", "..", "", "   ", "___", "x" * 121, "tab\there"])
def test_sanitize_name_refuses_paths_and_nonsense(raw: str) -> None:
    with pytest.raises(AOIError):
        sanitize_name(raw)


def test_path_tricks_in_an_explicit_name_are_refused() -> None:
    with pytest.raises(AOIError, match=r"must not contain"):
        load_aoi(_geojson("Scott/DrySpy_AOI_ScottRiver"), name="../../outside")


# --- GeoJSON variants ---


def test_bare_polygon_feature_and_collection_give_the_same_aoi(tmp_path: Path) -> None:
    polygon = {"type": "Polygon", "coordinates": [_square(-120.0, 36.0)]}
    feature = {"type": "Feature", "properties": {"a": 1}, "geometry": polygon}
    collection = {"type": "FeatureCollection", "features": [feature]}
    areas = []
    for stem, doc in (("bare", polygon), ("feature", feature), ("collection", collection)):
        aoi = read_geojson(_write_json(tmp_path / f"AOI_{stem}.geojson", doc))
        assert aoi.name == stem
        assert aoi.geometry.equals(shape(polygon))
        areas.append(aoi.area_sqkm)
    assert areas[0] == areas[1] == areas[2]
    assert areas[0] == pytest.approx(geodesic_area_sqkm(shape(polygon)))


def test_multi_feature_files_are_unioned(tmp_path: Path) -> None:
    a, b = _square(-120.0, 36.0), _square(-119.5, 36.0)
    overlapping = _square(-119.995, 36.0)
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        for ring in (a, b, overlapping)]}
    aoi = read_geojson(_write_json(tmp_path / "several.json", doc))
    assert aoi.geometry.geom_type == "MultiPolygon"
    single = geodesic_area_sqkm(Polygon(a))
    # a and the overlapping square share 0.005 of 0.01 degrees: union is 1.5 + 1 squares
    assert aoi.area_sqkm == pytest.approx(2.5 * single, rel=1e-3)
    assert aoi.area_sqkm < 3 * single


def test_multipolygon_and_geometry_collection(tmp_path: Path) -> None:
    multi = {"type": "MultiPolygon", "coordinates": [[_square(-120.0, 36.0)], [_square(-119.0, 36.0)]]}
    collection = {"type": "GeometryCollection", "geometries": [
        {"type": "Polygon", "coordinates": [_square(-120.0, 36.0)]},
        {"type": "Polygon", "coordinates": [_square(-119.0, 36.0)]}]}
    m = read_geojson(_write_json(tmp_path / "m.geojson", multi))
    c = read_geojson(_write_json(tmp_path / "c.geojson", collection))
    assert m.geometry.geom_type == c.geometry.geom_type == "MultiPolygon"
    assert m.area_sqkm == pytest.approx(c.area_sqkm)


def test_legacy_crs_member_is_reprojected(tmp_path: Path) -> None:
    """A GDAL-style GeoJSON in California Albers (EPSG:3310) is read in WGS84 with the right area."""
    src = _shp("Salinas/DrySpy_AOI_SalinasRiver")
    with shapefile.Reader(str(src)) as reader:
        native = reader.shape(0).__geo_interface__
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3310"}}
    doc = {"type": "FeatureCollection", "crs": crs,
           "features": [{"type": "Feature", "properties": {}, "geometry": native}]}
    aoi = read_geojson(_write_json(tmp_path / "albers.geojson", doc))
    assert _rel(aoi.area_sqkm, _dbf_area(src)) < TOLERANCE
    assert aoi.geometry.hausdorff_distance(load_aoi(src).geometry) < 1e-6


def test_crs84_crs_member_is_accepted(tmp_path: Path) -> None:
    doc = json.loads(_geojson("Scott/DrySpy_AOI_ScottRiver").read_text())
    assert doc["crs"]["properties"]["name"] == "urn:ogc:def:crs:OGC:1.3:CRS84"
    doc["crs"]["properties"]["name"] = "EPSG:4326"
    aoi = read_geojson(_write_json(tmp_path / "scott.geojson", doc))
    assert _rel(aoi.area_sqkm, _dbf_area(_shp("Scott/DrySpy_AOI_ScottRiver"))) < TOLERANCE


# --- invalid GeoJSON: one clear AOIError naming the file ---

BOWTIE = [[-120.0, 36.0], [-119.9, 36.1], [-119.9, 36.0], [-120.0, 36.1], [-120.0, 36.0]]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Polygon", "coordinates": [BOWTIE]}, "Self-intersection"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        ({"type": "Point", "coordinates": [-120.0, 36.0]}, "Point geometry is not an area"),
        ({"type": "LineString", "coordinates": [[-120.0, 36.0], [-119.0, 36.0]]}, "LineString"),
        ({"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": [_square(0, 0)]},
                                                      {"type": "Point", "coordinates": [0, 0]}]}, "Point"),
        ({"type": "Polygon", "coordinates": [_square(-120.0, 95.0)]}, "out of range"),
        ({"type": "Polygon", "coordinates": [_square(200.0, 36.0)]}, "out of range"),
        ({"type": "Polygon", "coordinates": [[[-80450.0, -259966.0], [-61754.0, -259966.0],
                                              [-61754.0, -226363.0], [-80450.0, -259966.0]]]},
         "out of range"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}, "invalid polygon (Too few points"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [2, 0], [0, 0]]]}, "invalid polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "unreadable geometry"),
        ({"type": "Polygon", "coordinates": "nope"}, "unreadable geometry"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        ({"type": "FeatureCollection"}, "features"),
        ({"type": "Feature", "properties": {}, "geometry": None}, "no geometry"),
        ({"type": "FeatureCollection", "features": [{"type": "Polygon"}]}, "not a GeoJSON Feature"),
        ({"type": "Topology", "objects": {}}, "not GeoJSON"),
        ([1, 2, 3], "not a GeoJSON object"),
    ],
)
def test_invalid_geojson_is_one_aoi_error_naming_the_file(tmp_path: Path, doc: Any, message: str) -> None:
    path = _write_json(tmp_path / "bad_aoi.geojson", doc)
    with pytest.raises(AOIError) as info:
        load_aoi(path)
    assert message.lower() in info.value.message.lower()
    assert "bad_aoi.geojson" in info.value.message
    assert "\n" not in info.value.message
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_nan_coordinates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.geojson"
    path.write_text('{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, NaN], [0, 0]]]}')
    with pytest.raises(AOIError, match="non-finite"):
        load_aoi(path)


def test_self_intersection_in_one_of_several_features_names_the_feature(tmp_path: Path) -> None:
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        for ring in (_square(-120, 36), BOWTIE)]}
    with pytest.raises(AOIError, match=r"two\.geojson \(feature 2\): invalid polygon \(Self-intersection"):
        load_aoi(_write_json(tmp_path / "two.geojson", doc))


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON (line 1"), ("", "not valid JSON"),
     (b"\xff\xfe\x00garbage", "not a text file")],
)
def test_unparseable_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "broken.geojson"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(AOIError, match=r"broken\.geojson") as info:
        load_aoi(path)
    assert message in info.value.message


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(AOIError, match=r"nowhere\.geojson: file not found"):
        load_aoi(tmp_path / "nowhere.geojson")
    with pytest.raises(AOIError, match=r"nowhere\.shp: file not found"):
        load_aoi(tmp_path / "nowhere.shp")
    (tmp_path / "area.kml").write_text("<kml/>")
    with pytest.raises(AOIError, match=r"unsupported AOI file type '\.kml'"):
        load_aoi(tmp_path / "area.kml")


def test_unknown_crs_member(tmp_path: Path) -> None:
    doc = {"type": "Polygon", "crs": {"type": "name", "properties": {"name": "EPSG:999999"}},
           "coordinates": [_square(0, 0)]}
    with pytest.raises(AOIError, match="unknown coordinate reference system 'EPSG:999999'"):
        load_aoi(_write_json(tmp_path / "crs.geojson", doc))


# --- shapefiles ---


@pytest.mark.parametrize("missing", [".dbf", ".shx"])
def test_shapefile_missing_a_part(tmp_path: Path, missing: str) -> None:
    exts = tuple(e for e in (".shp", ".shx", ".dbf", ".prj") if e != missing)
    path = _copy_shapefile("Scott/DrySpy_AOI_ScottRiver", tmp_path, exts)
    with pytest.raises(AOIError) as info:
        load_aoi(path)
    assert f"DrySpy_AOI_ScottRiver{missing} is missing" in info.value.message
    assert str(path) in info.value.message


def test_shapefile_without_prj_is_wgs84_with_one_warning(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    path = _copy_shapefile(f"{GAGE_STEM}/{GAGE_STEM}", tmp_path, (".shp", ".shx", ".dbf"))
    with caplog.at_level(logging.WARNING, logger="flowzero.aoi"):
        aoi = load_aoi(path)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no .prj" in warnings[0].getMessage() and str(path) in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert _rel(aoi.area_sqkm, _dbf_area(path)) < TOLERANCE


def test_projected_shapefile_without_prj_is_out_of_range(tmp_path: Path) -> None:
    path = _copy_shapefile("Salinas/DrySpy_AOI_SalinasRiver", tmp_path, (".shp", ".shx", ".dbf"))
    with pytest.raises(AOIError, match="out of range") as info:
        load_aoi(path)
    assert ".prj" in (info.value.hint or "")


def test_shapefile_with_prj_is_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flowzero.aoi"):
        load_aoi(_shp("Scott/DrySpy_AOI_ScottRiver"))
    assert not caplog.records


def test_shapefile_with_unreadable_prj(tmp_path: Path) -> None:
    path = _copy_shapefile("Scott/DrySpy_AOI_ScottRiver", tmp_path)
    path.with_suffix(".prj").write_text("PROJCS[nonsense")
    with pytest.raises(AOIError, match=r"DrySpy_AOI_ScottRiver\.prj: unreadable projection"):
        load_aoi(path)


def test_multi_record_shapefile_is_unioned(tmp_path: Path) -> None:
    path = _write_shapefile(tmp_path / "AOI_Two_north", shapefile.POLYGON,
                            [[_square(-120.0, 36.0)], [_square(-119.0, 36.0)]],
                            [("Id", "N", 6, 0)], [[1], [2]])
    aoi = read_shapefile(path)
    assert aoi.name == "Two"
    assert aoi.geometry.geom_type == "MultiPolygon"
    assert aoi.area_sqkm == pytest.approx(geodesic_area_sqkm(Polygon(_square(-120.0, 36.0)))
                                          + geodesic_area_sqkm(Polygon(_square(-119.0, 36.0))))


def test_shapefile_polygon_with_hole(tmp_path: Path) -> None:
    outer = [[-120.0, 36.0], [-120.0, 36.1], [-119.9, 36.1], [-119.9, 36.0], [-120.0, 36.0]]  # clockwise
    hole = [[-119.97, 36.03], [-119.93, 36.03], [-119.93, 36.07], [-119.97, 36.07], [-119.97, 36.03]]
    path = _write_shapefile(tmp_path / "holey", shapefile.POLYGON, [[outer, hole]],
                            [("Id", "N", 6, 0)], [[1]])
    aoi = read_shapefile(path)
    assert len(aoi.geometry.interiors) == 1
    assert aoi.area_sqkm == pytest.approx(geodesic_area_sqkm(Polygon(outer, [hole])))
    assert aoi.area_sqkm < geodesic_area_sqkm(Polygon(outer))


def test_self_intersecting_shapefile_record_is_named(tmp_path: Path) -> None:
    path = _write_shapefile(tmp_path / "bow", shapefile.POLYGON, [[_square(-120.0, 36.0)], [BOWTIE]],
                            [("Id", "N", 6, 0)], [[1], [2]])
    with pytest.raises(AOIError, match=r"bow\.shp \(record 2\): invalid polygon \(Self-intersection"):
        load_aoi(path)


@pytest.mark.parametrize(
    ("shape_type", "geom", "name"),
    [(shapefile.POINT, (-120.0, 36.0), "POINT"),
     (shapefile.POLYLINE, [[[-120.0, 36.0], [-119.0, 36.5]]], "POLYLINE")],
)
def test_non_polygon_shapefiles_are_refused(tmp_path: Path, shape_type: int, geom: Any, name: str) -> None:
    path = _write_shapefile(tmp_path / "notarea", shape_type, [geom], [("Id", "N", 6, 0)], [[1]])
    with pytest.raises(AOIError, match=rf"notarea\.shp: contains {name} shapes"):
        load_aoi(path)


def test_corrupt_and_empty_shapefiles(tmp_path: Path) -> None:
    path = _copy_shapefile("Scott/DrySpy_AOI_ScottRiver", tmp_path)
    path.write_bytes(b"garbage" * 5)
    with pytest.raises(AOIError, match=r"DrySpy_AOI_ScottRiver\.shp: cannot read the shapefile"):
        load_aoi(path)
    empty = _write_shapefile(tmp_path / "empty", shapefile.POLYGON, [], [("Id", "N", 6, 0)], [])
    with pytest.raises(AOIError, match=r"empty\.shp: the shapefile contains no shapes"):
        load_aoi(empty)


def test_null_shape_record_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "nulls"
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON) as writer:
        writer.field("Id", "N", 6, 0)
        writer.poly([_square(-120.0, 36.0)])
        writer.record(1)
        writer.null()
        writer.record(2)
    base.with_suffix(".prj").write_text(WGS84_PRJ)
    with pytest.raises(AOIError, match=r"nulls\.shp \(record 2\): has no geometry"):
        load_aoi(base.with_suffix(".shp"))


# --- clip geometry: at most 500 vertices, still covering the AOI ---


def _wiggly(n: int = 2000) -> Polygon:
    """A star-shaped (hence simple) polygon of ``n`` vertices around a point in California."""
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        r = 0.05 * (1 + 0.1 * math.sin(25 * t) + 0.03 * math.sin(97 * t) + 0.01 * math.sin(431 * t))
        pts.append((-120.0 + r * math.cos(t), 36.0 + r * math.sin(t)))
    return Polygon(pts)


def test_clip_of_a_2000_vertex_polygon_fits_planet_and_covers_it() -> None:
    original = _wiggly()
    assert original.is_valid and vertex_count(original) == 2001
    clip = clip_geometry(original)
    simplified = shape(clip)
    assert 400 < vertex_count(clip) <= 500  # simplified no more than needed
    assert simplified.is_valid
    assert simplified.covers(original)
    grown = geodesic_area_sqkm(simplified) / geodesic_area_sqkm(original) - 1
    assert 0 <= grown < 0.05  # a slightly larger outline, not a bounding box
    assert simplified.area < original.envelope.area
    json.dumps(clip)


def test_clip_honours_a_lower_limit_on_a_real_aoi() -> None:
    aoi = load_aoi(_shp("Salinas/DrySpy_AOI_SalinasRiver"))
    assert vertex_count(aoi) > 100
    clip = clip_geometry(aoi, max_vertices=40)
    assert vertex_count(clip) <= 40
    assert shape(clip).covers(aoi.geometry)


def test_small_aoi_clip_is_unchanged() -> None:
    aoi = load_aoi(_geojson("Scott/DrySpy_AOI_ScottRiver"))
    assert clip_geometry(aoi) == aoi.geojson()


def test_collinear_points_are_removed_without_growing_the_area() -> None:
    edge = [(-120.0 + i * 0.0001, 36.0) for i in range(1000)]
    square = Polygon([*edge, (-119.9, 36.0), (-119.9, 36.1), (-120.0, 36.1)])
    assert vertex_count(square) > 1000
    clip = shape(clip_geometry(square))
    assert vertex_count(clip) == 5
    assert clip.equals(box(-120.0, 36.0, -119.9, 36.1))


def test_multipolygon_clip_covers_every_part() -> None:
    parts = MultiPolygon([_wiggly(800), Polygon([(x + 0.3, y) for x, y in _wiggly(800).exterior.coords])])
    clip = shape(clip_geometry(parts))
    assert vertex_count(clip) <= 500 and clip.covers(parts)


def test_clip_limit_must_allow_a_polygon() -> None:
    with pytest.raises(AOIError):
        clip_geometry(_wiggly(), max_vertices=3)


# --- gages (batch mode) ---

GAGE_FIELDS = [("GageID", "N", 5, 0), ("GageName", "C", 50, 0), ("StartDate", "D", 8, 0),
               ("EndDate", "C", 10, 0)]


def _gage_file(tmp_path: Path, records: list[list[Any]]) -> Path:
    shapes = [[_square(-121.4 + i * 0.02, 38.3)] for i in range(len(records))]
    return _write_shapefile(tmp_path / "gages", shapefile.POLYGON, shapes, GAGE_FIELDS, records)


def test_read_gages_with_dbf_dates_and_text_dates(tmp_path: Path) -> None:
    path = _gage_file(tmp_path, [[5, "Cosumnes - Badger", date(2024, 1, 1), "2024-06-30"],
                                 [17, "Cosumnes - Twin", date(2023, 2, 28), "2024-02-29"]])
    gages = read_gages(path, "GageID", "StartDate", "EndDate")
    assert [g.gage_id for g in gages] == ["5", "17"]
    assert (gages[0].start, gages[0].end) == (date(2024, 1, 1), date(2024, 6, 30))
    assert (gages[1].start, gages[1].end) == (date(2023, 2, 28), date(2024, 2, 29))
    assert gages[0].attributes["GageName"] == "Cosumnes - Badger"
    assert gages[0].area_sqkm == pytest.approx(geodesic_area_sqkm(Polygon(_square(-121.4, 38.3))))
    assert gages[1].geometry.bounds[0] == pytest.approx(-121.38)
    aoi = gages[0].as_aoi("Cosumnes Badger")
    assert isinstance(aoi, AOI) and aoi.name == "Cosumnes_Badger" and aoi.area_sqkm == gages[0].area_sqkm


def test_read_gages_column_names_are_case_insensitive(tmp_path: Path) -> None:
    path = _gage_file(tmp_path, [[5, "x", date(2024, 1, 1), "2024-06-30"]])
    assert read_gages(path, "gageid", "startdate", "ENDDATE")[0].gage_id == "5"


def test_read_gages_missing_column_lists_what_exists(tmp_path: Path) -> None:
    path = _gage_file(tmp_path, [[5, "x", date(2024, 1, 1), "2024-06-30"]])
    with pytest.raises(UsageError) as info:
        read_gages(path, "GageID", "Start", "EndDate")
    assert "no column 'Start'" in info.value.message
    assert "GageID, GageName, StartDate, EndDate" in info.value.message


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2024, 1, 1), "2024/06/30", "gage 5: invalid date in column 'EndDate' '2024/06/30'"),
        (date(2024, 1, 1), "2023-02-29", "gage 5: invalid date in column 'EndDate' '2023-02-29'"),
        (date(2024, 1, 1), "", "gage 5: column 'EndDate' is empty"),
        (None, "2024-06-30", "gage 5: column 'StartDate' is empty"),
        (date(2024, 7, 1), "2024-06-30", "gage 5: 'EndDate' 2024-06-30 is before 'StartDate' 2024-07-01"),
    ],
)
def test_read_gages_bad_dates_name_gage_and_column(tmp_path: Path, start: Any, end: str,
                                                   message: str) -> None:
    path = _gage_file(tmp_path, [[3, "ok", date(2024, 1, 1), "2024-02-01"], [5, "bad", start, end]])
    with pytest.raises(UsageError) as info:
        read_gages(path, "GageID", "StartDate", "EndDate")
    assert message in info.value.message


def test_read_gages_missing_id(tmp_path: Path) -> None:
    path = _gage_file(tmp_path, [[None, "x", date(2024, 1, 1), "2024-06-30"]])
    with pytest.raises(UsageError, match="record 1 has no value in column 'GageID'"):
        read_gages(path, "GageID", "StartDate", "EndDate")


def test_real_gage_shapefile_has_ids_but_no_date_columns() -> None:
    path = _shp(f"{GAGE_STEM}/{GAGE_STEM}")
    with pytest.raises(UsageError, match=r"no column 'start_date' \(columns: Id, SiteName, GageName, GageID, "
                                         r"Area_sqkm\)"):
        read_gages(path, "GageID", "start_date", "end_date")


# --- convert-shp ---


def _invoke(*args: str) -> Any:
    from flowzero.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("key", sorted(REAL_AOIS))
def test_convert_shp_writes_wgs84_geojson_that_round_trips(tmp_path: Path, key: str) -> None:
    out = tmp_path / "geojsons"
    result = _invoke("convert-shp", "--shp", str(_shp(key)), "--output", str(out))
    assert result.exit_code == 0, result.output
    written = out / f"{Path(key).name}.geojson"
    doc = json.loads(written.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert len(doc["features"]) == 1
    west, south, east, north = shape(doc["features"][0]["geometry"]).bounds
    assert -180 <= west < east <= 180 and -90 <= south < north <= 90
    truth = _dbf_area(_shp(key))
    props = doc["features"][0]["properties"]
    assert props.get("Area_km2", props.get("Area_sqkm")) == pytest.approx(truth)
    back = read_geojson(written)
    assert _rel(back.area_sqkm, truth) < TOLERANCE
    assert _rel(back.area_sqkm, load_aoi(_shp(key)).area_sqkm) < 1e-9
    assert back.name == REAL_AOIS[key]
    assert "Converted shapefiles" in result.stdout


def test_convert_shp_folder_and_json_output(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for key in REAL_AOIS:
        _copy_shapefile(key, folder)
    out = tmp_path / "out"
    result = _invoke("convert-shp", "--shp", str(folder), "--output", str(out), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["aoi_name"] for r in rows) == sorted(REAL_AOIS.values())
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{Path(k).name}.geojson" for k in REAL_AOIS)
    for row in rows:
        assert _rel(row["area_sqkm"], _dbf_area(Path(row["source"]))) < TOLERANCE


def test_convert_shp_keeps_dates_and_replaces_old_output(tmp_path: Path) -> None:
    path = _gage_file(tmp_path, [[5, "x", date(2024, 1, 1), "2024-06-30"]])
    out = tmp_path / "out"
    out.mkdir()
    (out / "gages.geojson").write_text("old")
    result = _invoke("convert-shp", "--shp", str(path), "--output", str(out))
    assert result.exit_code == 0, result.output
    props = json.loads((out / "gages.geojson").read_text())["features"][0]["properties"]
    assert props == {"GageID": 5, "GageName": "x", "StartDate": "2024-01-01", "EndDate": "2024-06-30"}
    assert [p.name for p in out.iterdir()] == ["gages.geojson"]  # no temp files left


def test_convert_shp_errors_are_one_line(tmp_path: Path) -> None:
    path = _copy_shapefile("Scott/DrySpy_AOI_ScottRiver", tmp_path, (".shp", ".shx", ".prj"))
    result = _invoke("convert-shp", "--shp", str(path), "--output", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "DrySpy_AOI_ScottRiver.dbf is missing" in lines[-1]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "DrySpy_AOI_ScottRiver.geojson").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke("convert-shp", "--shp", str(empty))
    assert result.exit_code == 2 and "no .shp files" in result.stderr
    result = _invoke("convert-shp", "--shp", str(tmp_path / "missing.shp"))
    assert result.exit_code == 2 and "does not exist" in result.stderr
