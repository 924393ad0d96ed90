"""Scene selection rules: coverage of the AOI, cadence intervals, best-per-interval, bundles and quota."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pyproj import Geod
from shapely.geometry import Polygon, box, mapping

from flowzero.errors import UsageError
from flowzero.models import Scene
from flowzero.selection import (
    acquired_date,
    acquired_datetime,
    choose_bundle,
    coverage_pct,
    filter_by_coverage,
    interval_key,
    quota_hectares,
    scene_from_feature,
    select_best,
)

DATA = Path(__file__).parent / "data" / "aoi"
AOI_BOX = box(-120.2, 36.0, -120.1, 36.1)


def _scene(scene_id: str, acquired: str, coverage: float, cloud: float = 0.0) -> Scene:
    return Scene(id=scene_id, acquired=acquired, cloud_cover=cloud, coverage_pct=coverage)


def _feature(scene_id: str, acquired: str, geometry: dict[str, Any] | None,
             cloud: float = 0.0) -> dict[str, Any]:
    """A Data API search feature with the fields Planet returns (see the SDK's search_result example)."""
    return {
        "type": "Feature",
        "id": scene_id,
        "geometry": geometry,
        "properties": {"acquired": acquired, "cloud_cover": cloud, "item_type": "PSScene",
                       "quality_category": "standard"},
        "_links": {"_self": f"https://api.planet.com/data/v1/item-types/PSScene/items/{scene_id}"},
    }


# --- acquired timestamps ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-01-25T07:55:09.67Z", datetime(2022, 1, 25, 7, 55, 9, 670000, tzinfo=timezone.utc)),
        ("2022-01-25T07:55:09Z", datetime(2022, 1, 25, 7, 55, 9, tzinfo=timezone.utc)),
        ("2022-01-25T07:55:09.123456789Z", datetime(2022, 1, 25, 7, 55, 9, 123456, tzinfo=timezone.utc)),
        ("2022-01-25T07:55:09.5+02:00", datetime(2022, 1, 25, 5, 55, 9, 500000, tzinfo=timezone.utc)),
        ("2022-01-25", datetime(2022, 1, 25, tzinfo=timezone.utc)),
    ],
)
def test_acquired_datetime_parses_planet_timestamps(text: str, expected: datetime) -> None:
    assert acquired_datetime(text) == expected


@pytest.mark.parametrize("text", ["25/01/2022", "2022-01-32T00:00:00Z", "", "soon"])
def test_acquired_datetime_rejects_garbage(text: str) -> None:
    with pytest.raises(UsageError, match="invalid acquired timestamp"):
        acquired_datetime(text)


def test_acquired_date_is_the_utc_day() -> None:
    assert acquired_date("2024-06-01T23:30:00-02:00") == date(2024, 6, 2)
    assert acquired_date("2024-06-02T00:30:00+01:00") == date(2024, 6, 1)


# --- cadence intervals ---


@pytest.mark.parametrize(
    ("acquired", "expected"),
    [
        ("2024-06-01T18:00:00Z", "2024-05-26"),  # Saturday: still the week that began Sunday May 26
        ("2024-06-02T00:00:01Z", "2024-06-02"),  # Sunday starts a new week
        ("2024-06-03T10:00:00Z", "2024-06-02"),  # Monday
        ("2024-06-08T23:59:59Z", "2024-06-02"),  # the following Saturday
        ("2025-01-01T12:00:00Z", "2024-12-29"),  # Wednesday: the week started in the previous year
        ("2024-02-29T12:00:00Z", "2024-02-25"),  # leap day (a Thursday)
        ("2024-03-02T12:00:00Z", "2024-02-25"),  # Saturday after a leap day, week spans the month end
    ],
)
def test_weekly_key_is_the_sunday_on_or_before(acquired: str, expected: str) -> None:
    assert date.fromisoformat(expected).weekday() == 6  # the expectation itself is a Sunday
    assert interval_key(acquired, "weekly") == expected


def test_weekly_key_for_every_day_of_a_leap_year() -> None:
    day = date(2024, 1, 1)
    while day.year == 2024:
        key = date.fromisoformat(interval_key(day, "weekly"))
        assert key.weekday() == 6 and key <= day and (day - key).days < 7
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("acquired", "daily", "monthly"),
    [
        ("2024-01-31T23:59:59Z", "2024-01-31", "2024-01"),
        ("2024-02-01T00:00:00Z", "2024-02-01", "2024-02"),
        ("2024-02-29T10:00:00Z", "2024-02-29", "2024-02"),
        ("2023-12-31T22:00:00Z", "2023-12-31", "2023-12"),
    ],
)
def test_daily_and_monthly_keys(acquired: str, daily: str, monthly: str) -> None:
    assert interval_key(acquired, "daily") == daily
    assert interval_key(acquired, "monthly") == monthly


def test_interval_key_accepts_dates() -> None:
    assert interval_key(date(2024, 7, 4), "monthly") == "2024-07"


def test_unknown_cadence_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown cadence 'hourly'"):
        interval_key("2024-01-01T00:00:00Z", "hourly")
    with pytest.raises(UsageError, match="unknown cadence"):
        select_best([], "yearly")


# --- coverage ---


def test_footprint_covering_the_aoi_is_100_percent() -> None:
    footprint = mapping(AOI_BOX.buffer(0.05))
    assert coverage_pct(footprint, AOI_BOX) == 100.0


def test_footprint_covering_the_western_half_is_50_percent() -> None:
    west = box(-121.0, 35.0, -120.15, 37.0)
    assert coverage_pct(west, AOI_BOX) == pytest.approx(50.0, abs=1e-6)


def test_coverage_uses_geodesic_area_not_degrees() -> None:
    # The southern half of a box in degrees is slightly larger on the ground than the northern half.
    south = box(-121.0, 35.0, -119.0, 36.05)
    cov = coverage_pct(south, AOI_BOX)
    geod = Geod(ellps="WGS84")
    expected = 100 * abs(geod.geometry_area_perimeter(box(-120.2, 36.0, -120.1, 36.05))[0]) / abs(
        geod.geometry_area_perimeter(AOI_BOX)[0])
    assert cov == pytest.approx(expected, rel=1e-9)
    assert 50.0 < cov < 50.1


def test_disjoint_and_empty_footprints_cover_nothing() -> None:
    assert coverage_pct(box(0, 0, 1, 1), AOI_BOX) == 0.0
    assert coverage_pct(Polygon(), AOI_BOX) == 0.0


def test_self_intersecting_footprint_does_not_crash() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[-120.3, 35.9], [-120.0, 36.2], [-120.0, 35.9],
                                                  [-120.3, 36.2], [-120.3, 35.9]]]}
    cov = coverage_pct(bowtie, AOI_BOX)
    assert 0.0 < cov < 100.0


def test_scene_from_feature_takes_id_time_cloud_and_coverage() -> None:
    footprint = mapping(box(-120.25, 35.95, -120.15, 36.15))
    feature = _feature("20240601_180000_12_24a3", "2024-06-01T18:00:00.12Z", footprint, cloud=0.03)
    scene = scene_from_feature(feature, mapping(AOI_BOX))
    assert scene.id == "20240601_180000_12_24a3"
    assert scene.acquired == "2024-06-01T18:00:00.12Z"
    assert scene.cloud_cover == 0.03
    assert scene.coverage_pct == pytest.approx(50.0, abs=1e-6)
    assert scene.geometry == footprint
    assert scene.properties["quality_category"] == "standard"


def test_scene_from_feature_without_geometry_has_zero_coverage() -> None:
    assert scene_from_feature(_feature("a", "2024-06-01T18:00:00Z", None), AOI_BOX).coverage_pct == 0.0


def test_scene_from_feature_needs_id_and_acquired() -> None:
    with pytest.raises(UsageError):
        scene_from_feature({"id": "x", "properties": {}, "geometry": mapping(AOI_BOX)}, AOI_BOX)
    with pytest.raises(UsageError, match="invalid acquired"):
        scene_from_feature(_feature("x", "June 1st", mapping(AOI_BOX)), AOI_BOX)


def test_real_aoi_coverage() -> None:
    from flowzero.aoi import load_aoi

    aoi = load_aoi(DATA / "Salinas" / "DrySpy_AOI_SalinasRiver.shp")
    assert coverage_pct(aoi.geometry, aoi.geometry) == pytest.approx(100.0)
    minx, miny, maxx, maxy = aoi.bbox
    # a scene footprint ending half way up the AOI's bounding box covers part of it
    lower = box(minx - 0.1, miny - 0.1, maxx + 0.1, (miny + maxy) / 2)
    cov = coverage_pct(mapping(lower), aoi.geometry)
    assert 0.0 < cov < 100.0
    upper = box(minx - 0.1, (miny + maxy) / 2, maxx + 0.1, maxy + 0.1)
    # Splitting an edge in lon/lat moves it off its geodesic by millimetres: the halves add up to 100 % within
    # far less than the 0.01 pp that selection compares at.
    assert cov + coverage_pct(upper, aoi.geometry) == pytest.approx(100.0, abs=1e-4)


def test_zero_area_aoi_is_refused() -> None:
    with pytest.raises(UsageError, match="no area"):
        coverage_pct(AOI_BOX, Polygon())


# --- filter_by_coverage ---


def test_filter_by_coverage_at_two_decimals() -> None:
    scenes = [_scene("a", "2024-01-01T00:00:00Z", 97.994), _scene("b", "2024-01-02T00:00:00Z", 97.996),
              _scene("c", "2024-01-03T00:00:00Z", 98.0), _scene("d", "2024-01-04T00:00:00Z", 100.0),
              _scene("e", "2024-01-05T00:00:00Z", 12.0)]
    assert [s.id for s in filter_by_coverage(scenes)] == ["b", "c", "d"]
    assert [s.id for s in filter_by_coverage(scenes, 0.0)] == ["a", "b", "c", "d", "e"]
    assert [s.id for s in filter_by_coverage(scenes, 100.0)] == ["d"]


@pytest.mark.parametrize("bad", [-1.0, 100.5])
def test_filter_by_coverage_threshold_range(bad: float) -> None:
    with pytest.raises(UsageError):
        filter_by_coverage([], bad)


# --- select_best ---


def test_select_best_daily_takes_highest_coverage_per_day() -> None:
    scenes = [
        _scene("d1-low", "2024-06-01T17:00:00Z", 98.5),
        _scene("d1-high", "2024-06-01T19:00:00Z", 99.9),
        _scene("d2", "2024-06-02T18:00:00Z", 98.1),
    ]
    assert [s.id for s in select_best(scenes, "daily")] == ["d1-high", "d2"]


def test_select_best_ties_at_hundredths_go_to_the_earliest() -> None:
    scenes = [
        _scene("later-more", "2024-06-01T19:00:00Z", 99.994),  # rounds to 99.99
        _scene("earlier", "2024-06-01T17:00:00Z", 99.99),
    ]
    assert [s.id for s in select_best(scenes, "daily")] == ["earlier"]


def test_select_best_a_difference_at_hundredths_wins_over_time() -> None:
    scenes = [
        _scene("earlier", "2024-06-01T17:00:00Z", 99.98),
        _scene("later-better", "2024-06-01T19:00:00Z", 99.99),
    ]
    assert [s.id for s in select_best(scenes, "daily")] == ["later-better"]
    scenes = [
        _scene("earlier", "2024-06-01T17:00:00Z", 99.99),
        _scene("later-rounds-up", "2024-06-01T19:00:00Z", 99.996),  # rounds to 100.0
    ]
    assert [s.id for s in select_best(scenes, "daily")] == ["later-rounds-up"]


def test_select_best_compares_times_not_strings() -> None:
    # As text "...09Z" sorts after "...09.67Z", but it is the earlier acquisition.
    scenes = [_scene("later", "2024-06-01T18:00:09.67Z", 100.0),
              _scene("earlier", "2024-06-01T18:00:09Z", 100.0)]
    assert [s.id for s in select_best(scenes, "daily")] == ["earlier"]


def test_select_best_weekly_splits_saturday_from_sunday() -> None:
    scenes = [
        _scene("sat", "2024-06-01T18:00:00Z", 99.0),  # Saturday, week of May 26
        _scene("sun", "2024-06-02T18:00:00Z", 98.5),  # Sunday, week of June 2
        _scene("wed", "2024-06-05T18:00:00Z", 99.5),  # same week as Sunday, better
        _scene("tue", "2024-05-28T18:00:00Z", 98.2),  # same week as Saturday, worse
    ]
    assert [s.id for s in select_best(scenes, "weekly")] == ["sat", "wed"]


def test_select_best_monthly_splits_at_month_end() -> None:
    scenes = [
        _scene("jan31", "2024-01-31T23:00:00Z", 99.0),
        _scene("feb01", "2024-02-01T01:00:00Z", 99.0),
        _scene("feb29", "2024-02-29T18:00:00Z", 99.5),
        _scene("jan05", "2024-01-05T18:00:00Z", 98.0),
    ]
    assert [s.id for s in select_best(scenes, "monthly")] == ["jan31", "feb29"]


def test_select_best_result_is_sorted_by_acquired_and_empty_is_empty() -> None:
    scenes = [_scene(f"s{d}", f"2024-03-{d:02d}T18:00:00Z", 99.0) for d in (9, 3, 27, 1, 15)]
    assert [s.id for s in select_best(scenes, "daily")] == ["s1", "s3", "s9", "s15", "s27"]
    assert select_best([], "weekly") == []


def test_select_best_equal_time_and_coverage_is_deterministic() -> None:
    a = _scene("b-id", "2024-06-01T18:00:00Z", 99.0)
    b = _scene("a-id", "2024-06-01T18:00:00Z", 99.0)
    assert select_best([a, b], "daily")[0].id == "a-id"
    assert select_best([b, a], "daily")[0].id == "a-id"


# --- bundles and quota ---


@pytest.mark.parametrize(
    ("num_bands", "start", "override", "expected"),
    [
        ("four_bands", date(2024, 1, 1), None, ("ortho_analytic_4b_sr", "analytic_sr_udm2")),
        ("four_bands", date(2018, 1, 1), None, ("ortho_analytic_4b_sr", "analytic_sr_udm2")),
        ("eight_bands", date(2021, 1, 1), None, ("ortho_analytic_8b_sr", "analytic_8b_sr_udm2")),
        ("eight_bands", date(2020, 12, 31), None, ("ortho_analytic_4b_sr", "analytic_sr_udm2")),
        ("four_bands", date(2024, 1, 1), "analytic_udm2", ("ortho_analytic_4b", "analytic_udm2")),
        ("four_bands", date(2024, 1, 1), "analytic_8b_sr_udm2",
         ("ortho_analytic_8b_sr", "analytic_8b_sr_udm2")),
        ("eight_bands", date(2022, 1, 1), "visual", ("ortho_visual", "visual")),
        ("eight_bands", date(2022, 1, 1), "some_new_bundle", ("ortho_analytic_8b_sr", "some_new_bundle")),
        ("eight_bands", date(2019, 1, 1), "some_new_bundle", ("ortho_analytic_4b_sr", "some_new_bundle")),
    ],
)
def test_choose_bundle(num_bands: str, start: date, override: str | None, expected: tuple[str, str]) -> None:
    assert choose_bundle(num_bands, start, override) == expected


def test_choose_bundle_rejects_unknown_band_choice() -> None:
    with pytest.raises(UsageError, match="unknown band choice 'six_bands'"):
        choose_bundle("six_bands", date(2024, 1, 1), None)


def test_quota_hectares() -> None:
    assert quota_hectares(27.2422513719, 3) == pytest.approx(8172.67541157)
    assert quota_hectares(0.5, 0) == 0.0
    assert quota_hectares(1.0, 1) == 100.0
