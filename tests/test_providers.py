"""The psscope and basemap providers, reached through the plugin registry, with a scripted Planet client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flowzero import plugins
from flowzero.aoi import AOI, load_aoi, vertex_count
from flowzero.config import Config
from flowzero.errors import PlanetError, UsageError

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"


class ScriptedPlanet:
    """Returns canned search features and mosaics, and remembers what it was asked."""

    def __init__(self, features: list[dict[str, Any]] | None = None,
                 mosaics: list[dict[str, Any]] | None = None) -> None:
        self.features = features or []
        self.mosaics = mosaics or []
        self.searches: list[tuple[list[str], dict[str, Any]]] = []
        self.mosaic_queries: list[dict[str, Any]] = []

    def search(self, item_types: list[str], search_filter: dict[str, Any], page_size: int = 250
               ) -> Iterator[dict[str, Any]]:
        self.searches.append((item_types, search_filter))
        return iter(self.features)

    def list_mosaics(self, name_contains: str | None = None, acquired_gt: str | None = None,
                     acquired_lt: str | None = None) -> Iterator[dict[str, Any]]:
        self.mosaic_queries.append({"name_contains": name_contains, "acquired_gt": acquired_gt,
                                    "acquired_lt": acquired_lt})
        return iter(self.mosaics)

    def get_mosaic(self, name: str) -> dict[str, Any]:
        for mosaic in self.mosaics:
            if mosaic["name"] == name:
                return mosaic
        raise PlanetError(f"no basemap mosaic named '{name}'", status_code=404)


@pytest.fixture(scope="module")
def salinas() -> AOI:
    return load_aoi(SALINAS)


def footprint(aoi: AOI, fraction: float = 1.0) -> dict[str, Any]:
    """A box over the AOI's bounds (widened a little), keeping only the western ``fraction`` of it."""
    west, south, east, north = aoi.bbox
    west, south, north = west - 0.01, south - 0.01, north + 0.01
    east = west + (east + 0.01 - west) * fraction
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(item_id: str, acquired: str, geometry: dict[str, Any], cloud: float = 0.0) -> dict[str, Any]:
    return {"id": item_id, "type": "Feature", "geometry": geometry,
            "properties": {"acquired": acquired, "cloud_cover": cloud, "quality_category": "standard"}}


def make(kind: str, client: Any, config: Config | None = None) -> Any:
    return plugins.get("providers", kind)(client, config or Config())


def test_both_providers_are_registered_plugins() -> None:
    found = plugins.providers()
    assert found["psscope"].order_type == "PSScope" and found["psscope"].description
    assert found["basemap"].order_type == "Basemap (Composite)" and found["basemap"].description


def test_search_selects_best_full_coverage_scene_per_interval(salinas: AOI) -> None:
    full, half = footprint(salinas), footprint(salinas, 0.5)
    features = [
        feature("20240105_180000_00_aaaa", "2024-01-05T18:00:00Z", half),
        feature("20240105_181000_00_bbbb", "2024-01-05T18:10:00Z", full),
        feature("20240120_180000_00_cccc", "2024-01-20T18:00:00Z", full),
        feature("20240120_180000_00_cccc", "2024-01-20T18:00:00Z", full),  # repeated across pages
        feature("20240210_180000_00_dddd", "2024-02-10T18:00:00Z", half),
    ]
    client = ScriptedPlanet(features)
    daily = make("psscope", client).search(salinas, date(2024, 1, 1), date(2024, 2, 29))
    assert (daily.found, daily.eligible) == (4, 2)
    assert [s.id for s in daily.selected] == ["20240105_181000_00_bbbb", "20240120_180000_00_cccc"]
    assert all(s.coverage_pct == pytest.approx(100.0) for s in daily.selected)
    assert daily.quota_hectares == pytest.approx(salinas.area_sqkm * 2 * 100)
    monthly = make("psscope", client).search(salinas, date(2024, 1, 1), date(2024, 2, 29), cadence="monthly")
    assert [s.id for s in monthly.selected] == ["20240105_181000_00_bbbb"]


def test_search_asks_planet_for_psscene_with_the_configured_filters(salinas: AOI) -> None:
    config = Config()
    config.downloads.cloud_cover_max = 0.1
    client = ScriptedPlanet()
    search = make("psscope", client, config).search(salinas, date(2024, 3, 1), date(2024, 3, 31),
                                                    num_bands="eight_bands")
    [(item_types, search_filter)] = client.searches
    assert item_types == ["PSScene"]
    text = str(search_filter)
    assert "ortho_analytic_8b_sr" in text and "'lte': 0.1" in text and "2024-03-01" in text
    assert search.product_bundle == "analytic_8b_sr_udm2"
    assert search.clip is not None and vertex_count(search.clip) <= 500
    assert search.found == 0 and search.selected == []


def test_eight_bands_before_2021_falls_back_to_four(salinas: AOI) -> None:
    search = make("psscope", ScriptedPlanet()).search(salinas, date(2020, 6, 1), date(2020, 6, 30),
                                                      num_bands="eight_bands")
    assert (search.asset, search.product_bundle) == ("ortho_analytic_4b_sr", "analytic_sr_udm2")


def test_search_refuses_reversed_dates_and_unknown_cadence(salinas: AOI) -> None:
    provider = make("psscope", ScriptedPlanet())
    with pytest.raises(UsageError, match="before the start date"):
        provider.search(salinas, date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(UsageError, match="cadence"):
        provider.search(salinas, date(2024, 1, 1), date(2024, 1, 2), cadence="hourly")


def test_psscope_plan_records_everything_the_old_tool_did(salinas: AOI) -> None:
    features = [feature(f"2024010{d}_180000_00_aaaa", f"2024-01-0{d}T18:00:00Z", footprint(salinas))
                for d in range(1, 4)]
    provider = make("psscope", ScriptedPlanet(features))
    search = provider.search(salinas, date(2024, 1, 1), date(2024, 1, 31))
    [planned] = provider.plan(search, batch_id="batch-1")
    order = planned.order
    assert (order.order_type, order.aoi_name, order.start_date, order.end_date) == (
        "PSScope", "SalinasRiver", "2024-01-01", "2024-01-31")
    assert (order.num_bands, order.product_bundle, order.clipped) == ("four_bands", "analytic_sr_udm2", True)
    assert (order.scenes_found, order.scenes_selected, order.batch_id, order.batch_order) == (
        3, 3, "batch-1", True)
    assert order.aoi_area_sqkm == pytest.approx(salinas.area_sqkm)
    assert order.quota_hectares == pytest.approx(salinas.area_sqkm * 300)
    assert order.metadata["item_ids"] == [f["id"] for f in features]
    assert planned.request["tools"] == [{"clip": {"aoi": search.clip}}]
    assert planned.request["products"][0]["item_type"] == "PSScene"


MOSAICS = [
    {"id": "m-dec", "name": "global_monthly_2023_12_mosaic", "first_acquired": "2023-12-01T00:00:00.000Z",
     "last_acquired": "2024-01-01T00:00:00.000Z", "interval": "1 mon"},
    {"id": "m-feb", "name": "global_monthly_2024_02_mosaic", "first_acquired": "2024-02-01T00:00:00.000Z",
     "last_acquired": "2024-03-01T00:00:00.000Z", "interval": "1 mon"},
    {"id": "m-jan", "name": "global_monthly_2024_01_mosaic", "first_acquired": "2024-01-01T00:00:00.000Z",
     "last_acquired": "2024-02-01T00:00:00.000Z", "interval": "1 mon"},
    {"id": "q-1", "name": "global_quarterly_2024q1_mosaic", "first_acquired": "2024-01-01T00:00:00.000Z",
     "last_acquired": "2024-04-01T00:00:00.000Z", "interval": "3 mons"},
]


def test_list_mosaics_keeps_first_acquired_in_range() -> None:
    client = ScriptedPlanet(mosaics=MOSAICS)
    provider = make("basemap", client)
    found = provider.list_mosaics(date(2024, 1, 1), date(2024, 1, 31))
    assert [m["name"] for m in found] == ["global_monthly_2024_01_mosaic", "global_quarterly_2024q1_mosaic"]
    assert client.mosaic_queries[-1] == {"name_contains": None, "acquired_gt": "2023-12-31T00:00:00Z",
                                         "acquired_lt": None}
    monthly = provider.list_mosaics(date(2024, 1, 1), date(2024, 2, 29), name_contains="monthly")
    assert [m["id"] for m in monthly] == ["m-jan", "m-feb"]
    assert client.mosaic_queries[-1]["name_contains"] == "monthly"
    with pytest.raises(UsageError):
        provider.list_mosaics(date(2024, 2, 1), date(2024, 1, 1))


def test_basemap_plan_records_the_mosaic_and_its_dates(salinas: AOI) -> None:
    provider = make("basemap", ScriptedPlanet(mosaics=MOSAICS))
    [planned] = provider.plan(salinas, "global_monthly_2024_01_mosaic")
    order = planned.order
    assert (order.order_type, order.mosaic_name, order.aoi_name) == (
        "Basemap (Composite)", "global_monthly_2024_01_mosaic", "SalinasRiver")
    assert (order.start_date, order.end_date) == ("2024-01-01", "2024-02-01")
    assert order.metadata["mosaic_id"] == "m-jan"
    assert planned.request["source_type"] == "basemaps" and planned.request["tools"] == [{"clip": {}}]
    assert planned.request["products"][0]["mosaic_name"] == "global_monthly_2024_01_mosaic"
    with pytest.raises(UsageError, match="no basemap mosaic named 'nope'"):
        provider.plan(salinas, "nope")
