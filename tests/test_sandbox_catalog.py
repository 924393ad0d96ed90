"""The sandbox's pure parts: generated catalog, Planet's filter language, byte ranges and the quad grid."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from shapely.geometry import box, shape

from flowzero.sandbox.api import ApiError
from flowzero.sandbox.basemaps import (
    all_mosaics,
    parse_quad_id,
    quad_bounds,
    quads_for_geometry,
    quads_in_bbox,
)
from flowzero.sandbox.catalog import Catalog, assets_for, parse_item_id, properties_for, scenes_for_day
from flowzero.sandbox.deliverables import vertex_count
from flowzero.sandbox.filters import acquired_window, compile_filter, search_area
from flowzero.sandbox.ranges import RangeNotSatisfiable, parse_range

AOI = box(-121.50, 38.50, -121.40, 38.58)
UTC = timezone.utc


def _year_of_features(aoi=AOI) -> list[dict]:
    catalog = Catalog("http://127.0.0.1:1/data/v1")
    return catalog.features(
        aoi, datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)
    )


def test_same_area_and_day_give_the_same_scenes_and_longer_ranges_contain_shorter_ones() -> None:
    day = date(2024, 3, 14)
    assert scenes_for_day(AOI, day) == scenes_for_day(AOI, day)
    catalog = Catalog("http://127.0.0.1:1/data/v1")
    march = catalog.features(AOI, datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 31, 23, 59, tzinfo=UTC))
    quarter = catalog.features(
        AOI, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 30, 23, 59, tzinfo=UTC)
    )
    assert {f["id"] for f in march} < {f["id"] for f in quarter}
    elsewhere = catalog.features(
        box(10, 45, 10.1, 45.1), datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 31, 23, 59, tzinfo=UTC)
    )
    assert {f["id"] for f in march}.isdisjoint({f["id"] for f in elsewhere})


def test_a_year_has_several_scenes_a_week_with_a_realistic_mix() -> None:
    features = _year_of_features()
    assert 52 * 5 <= len(features) <= 52 * 13
    coverage = [shape(f["geometry"]).intersection(AOI).area / AOI.area for f in features]
    full = sum(c > 0.999 for c in coverage)
    partial = [c for c in coverage if c <= 0.999]
    assert 0.6 < full / len(features) < 0.9
    assert partial and all(0.3 < c < 0.95 for c in partial)
    clouds = [f["properties"]["cloud_cover"] for f in features]
    assert 0.4 < clouds.count(0.0) / len(clouds) < 0.7
    assert any(c > 0.5 for c in clouds) and all(0 <= c <= 1 for c in clouds)
    categories = [f["properties"]["quality_category"] for f in features]
    assert 0.03 < categories.count("test") / len(categories) < 0.25
    assert any("ortho_analytic_4b_sr" not in f["assets"] for f in features)
    weeks = {datetime.fromisoformat(f["properties"]["acquired"][:19]).isocalendar()[1] for f in features}
    assert len(weeks) >= 50


def test_features_look_like_planet_psscene_items() -> None:
    feature = _year_of_features()[0]
    item_id = feature["id"]
    parsed = parse_item_id(item_id)
    assert parsed is not None and parsed[0].year == 2023
    props = feature["properties"]
    assert props["acquired"].endswith("Z") and props["acquired"].startswith(item_id[:4])
    assert (
        props["item_type"] == "PSScene"
        and props["pixel_resolution"] == 3
        and props["satellite_id"] == parsed[1]
    )
    assert props["clear_percent"] + props["cloud_percent"] <= 100
    for key in (
        "instrument",
        "gsd",
        "published",
        "sun_elevation",
        "view_angle",
        "strip_id",
        "visible_percent",
    ):
        assert key in props
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
    assert feature["_permissions"] == [f"assets.{a}:download" for a in feature["assets"]]
    assert feature["_links"]["_self"].endswith(f"/item-types/PSScene/items/{item_id}")
    assert properties_for(item_id) == props  # a function of the id alone


def test_eight_band_assets_only_from_2021() -> None:
    old = [
        f
        for f in Catalog("x").features(
            AOI, datetime(2019, 6, 1, tzinfo=UTC), datetime(2019, 6, 30, tzinfo=UTC)
        )
    ]
    new = _year_of_features()
    assert old and not any("ortho_analytic_8b_sr" in f["assets"] for f in old)
    assert any("ortho_analytic_8b_sr" in f["assets"] for f in new)
    assert all(f["properties"]["instrument"] == "PSB.SD" for f in new)
    assert "ortho_analytic_8b_sr" not in assets_for("20190601_101010_00_1003")


def test_no_scenes_before_planetscope_or_in_the_future() -> None:
    catalog = Catalog("x")
    assert catalog.features(AOI, datetime(2010, 1, 1, tzinfo=UTC), datetime(2015, 12, 31, tzinfo=UTC)) == []
    assert catalog.features(AOI, datetime(2999, 1, 1, tzinfo=UTC), datetime(2999, 2, 1, tzinfo=UTC)) == []


def _filter(*parts: dict) -> dict:
    return {"type": "AndFilter", "config": list(parts)}


def test_filters_select_like_planet() -> None:
    features = _year_of_features()
    geometry = {
        "type": "GeometryFilter",
        "field_name": "geometry",
        "config": {
            "type": "Polygon",
            "coordinates": [
                [[-121.5, 38.5], [-121.49, 38.5], [-121.49, 38.51], [-121.5, 38.51], [-121.5, 38.5]]
            ],
        },
    }
    dates = {
        "type": "DateRangeFilter",
        "field_name": "acquired",
        "config": {"gte": "2023-03-01T00:00:00Z", "lte": "2023-03-31T23:59:59Z"},
    }
    cloud = {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": 0.0}}
    asset = {"type": "AssetFilter", "config": ["ortho_analytic_4b_sr"]}
    standard = {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]}
    permission = {"type": "PermissionFilter", "config": ["assets:download"]}
    chosen = [
        f for f in features if compile_filter(_filter(geometry, dates, cloud, asset, standard, permission))(f)
    ]
    assert chosen
    for f in features:
        props = f["properties"]
        expected = (
            props["acquired"].startswith("2023-03")
            and props["cloud_cover"] == 0.0
            and "ortho_analytic_4b_sr" in f["assets"]
            and props["quality_category"] == "standard"
            and shape(f["geometry"]).intersects(shape(geometry["config"]))
        )
        assert (f in chosen) == expected
    not_test = {
        "type": "NotFilter",
        "config": {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]},
    }
    assert all(f["properties"]["quality_category"] == "test" for f in features if compile_filter(not_test)(f))
    either = {
        "type": "OrFilter",
        "config": [cloud, {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"gt": 0.9}}],
    }
    assert all(
        f["properties"]["cloud_cover"] in (0.0,) or f["properties"]["cloud_cover"] > 0.9
        for f in features
        if compile_filter(either)(f)
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "Bogus"},
        {"type": "AndFilter", "config": {}},
        {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": "low"}},
        {"type": "RangeFilter", "config": {"lte": 0.1}},
        {"type": "DateRangeFilter", "field_name": "acquired", "config": {"gte": "yesterday"}},
        {"type": "GeometryFilter", "field_name": "geometry", "config": {"type": "Polygon"}},
        {
            "type": "GeometryFilter",
            "field_name": "geometry",  # a bow tie: self-intersecting
            "config": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
        },
        {"type": "AssetFilter", "config": []},
        "not a filter",
    ],
)
def test_bad_filters_are_rejected_with_a_400(bad: object) -> None:
    with pytest.raises(ApiError) as caught:
        compile_filter(bad)
    assert caught.value.status == 400 and caught.value.message


def test_search_area_and_window_come_from_the_filter() -> None:
    request = {
        "filter": _filter(
            {
                "type": "GeometryFilter",
                "field_name": "geometry",
                "config": {"type": "Point", "coordinates": [5, 6]},
            },
            {
                "type": "DateRangeFilter",
                "field_name": "acquired",
                "config": {"gte": "2024-01-01T00:00:00.5Z", "lt": "2024-02-01T00:00:00+00:00"},
            },
        )
    }
    assert search_area(request).equals(shape({"type": "Point", "coordinates": [5, 6]}))
    start, end = acquired_window(request, datetime(2016, 1, 1, tzinfo=UTC))
    assert (start, end) == (
        datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        datetime(2024, 2, 1, tzinfo=UTC),
    )
    with pytest.raises(ApiError):
        search_area({"filter": _filter()})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-1,5-6", None),
    ],
)
def test_byte_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header", ["bytes=100-", "bytes=5-2", "items=0-1", "bytes=a-b", "bytes=-0", "bytes=-"]
)
def test_unsatisfiable_or_malformed_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_quad_grid_matches_planets_naming() -> None:
    quads = quads_in_bbox((-121.5, 38.5, -121.4, 38.6))
    assert quads and all(q.startswith("L15-") for q, _ in quads)
    for qid, bounds in quads:
        assert quad_bounds(*parse_quad_id(qid)) == bounds
        assert box(*bounds).intersects(box(-121.5, 38.5, -121.4, 38.6))
    # A quad is 360/2048 degrees wide; y counts from the south, so north of the equator it is above 1024.
    west, _, east, _ = quads[0][1]
    assert east - west == pytest.approx(360 / 2048)
    assert parse_quad_id(quads[0][0])[1] > 1024
    thin = shape(
        {
            "type": "Polygon",
            "coordinates": [[[-121.5, 38.5], [-121.0, 39.0], [-121.0, 38.999], [-121.5, 38.5]]],
        }
    )
    assert len(quads_for_geometry(thin)) < len(quads_in_bbox(thin.bounds))


def test_mosaic_catalog_has_monthly_and_quarterly_mosaics() -> None:
    mosaics = {m.name: m for m in all_mosaics(date(2025, 1, 15))}
    january = mosaics["global_monthly_2024_01_mosaic"]
    assert january.first_acquired == datetime(2024, 1, 1, tzinfo=UTC)
    assert january.last_acquired == datetime(2024, 2, 1, tzinfo=UTC)
    assert mosaics["global_quarterly_2024q4_mosaic"].interval == "3 mons"
    assert "global_monthly_2025_01_mosaic" not in mosaics  # January 2025 is not complete yet
    assert len({m.id for m in mosaics.values()}) == len(mosaics)


def test_vertex_count_ignores_closing_positions() -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    assert vertex_count(square) == 4
    assert vertex_count({"type": "MultiPolygon", "coordinates": [square["coordinates"]] * 2}) == 8
