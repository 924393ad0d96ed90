"""Search filters: the JSON Planet expects, whole inclusive days, cloud cover as a fraction, clear errors."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from flowzero.errors import UsageError
from flowzero.planet import build_search_filter
from flowzero.planet.filters import cloud_cover_filter, date_range_filter, geometry_filter

POLYGON = {"type": "Polygon",
           "coordinates": [[[-121.5, 38.5], [-121.4, 38.5], [-121.4, 38.6], [-121.5, 38.5]]]}


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_build_search_filter_has_every_condition_in_order() -> None:
    result = build_search_filter(POLYGON, date(2024, 1, 1), date(2024, 1, 31), 0.1, "ortho_analytic_4b_sr")
    assert result["type"] == "AndFilter"
    assert [f["type"] for f in result["config"]] == [
        "GeometryFilter", "DateRangeFilter", "RangeFilter", "AssetFilter", "StringInFilter"]
    geometry, dates, cloud, asset, quality = result["config"]
    assert geometry == {"type": "GeometryFilter", "field_name": "geometry", "config": POLYGON}
    assert dates == {"type": "DateRangeFilter", "field_name": "acquired",
                     "config": {"gte": "2024-01-01T00:00:00Z", "lte": "2024-01-31T23:59:59Z"}}
    assert cloud == {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": 0.1}}
    assert asset == {"type": "AssetFilter", "config": ["ortho_analytic_4b_sr"]}
    assert quality == {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]}
    assert json.loads(json.dumps(result)) == result  # plain JSON, ready to POST


def test_matches_planet_sdk_filters() -> None:
    """Planet's own SDK builds the same structure (it writes +00:00 where we write Z: same instants)."""
    sdk = pytest.importorskip("planet.data_filter")
    ours = build_search_filter(POLYGON, date(2024, 3, 1), date(2024, 3, 2), 0.25, "ortho_analytic_8b_sr")
    theirs = sdk.and_filter([
        sdk.geometry_filter(POLYGON),
        sdk.date_range_filter("acquired", gte=datetime(2024, 3, 1, tzinfo=timezone.utc),
                              lte=datetime(2024, 3, 2, 23, 59, 59, tzinfo=timezone.utc)),
        sdk.range_filter("cloud_cover", lte=0.25),
        sdk.asset_filter(["ortho_analytic_8b_sr"]),
        sdk.string_in_filter("quality_category", ["standard"]),
    ])
    our_dates, their_dates = ours["config"][1]["config"], theirs["config"][1]["config"]
    assert {k: _parse(v) for k, v in our_dates.items()} == {k: _parse(v) for k, v in their_dates.items()}
    ours["config"][1]["config"] = theirs["config"][1]["config"] = None
    assert ours == theirs


def test_end_day_is_inclusive_and_single_day_ranges_work() -> None:
    config = date_range_filter(date(2024, 2, 29), date(2024, 2, 29))["config"]
    span = _parse(config["lte"]) - _parse(config["gte"])
    assert span.total_seconds() == 24 * 3600 - 1


def test_datetimes_are_reduced_to_their_day() -> None:
    config = date_range_filter(datetime(2024, 5, 3, 15, 30), datetime(2024, 5, 4, 1, 0))["config"]
    assert config == {"gte": "2024-05-03T00:00:00Z", "lte": "2024-05-04T23:59:59Z"}


def test_start_after_end_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="2024-02-01 is after the end date 2024-01-31"):
        build_search_filter(POLYGON, date(2024, 2, 1), date(2024, 1, 31), 0.0, "ortho_analytic_4b_sr")


@pytest.mark.parametrize("value", [-0.01, 1.5, 10.0])
def test_cloud_cover_must_be_a_fraction(value: float) -> None:
    with pytest.raises(UsageError, match="fraction") as info:
        cloud_cover_filter(value)
    assert info.value.hint == "write 10 % as 0.1"


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_cloud_cover_bounds_are_accepted(value: float) -> None:
    assert cloud_cover_filter(value)["config"] == {"lte": value}


@pytest.mark.parametrize("geometry", [None, [1, 2], {"coordinates": []}])
def test_geometry_must_be_geojson(geometry: object) -> None:
    with pytest.raises(UsageError, match="GeoJSON geometry"):
        geometry_filter(geometry)  # type: ignore[arg-type]


def test_empty_asset_is_rejected() -> None:
    with pytest.raises(UsageError, match="asset"):
        build_search_filter(POLYGON, date(2024, 1, 1), date(2024, 1, 2), 0.0, "")
