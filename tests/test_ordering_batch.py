"""Batch ordering: gages from a real multi-gage shapefile, chunked ranges, one order per chunk, reruns."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from flowzero.aoi import AOI, read_gages
from flowzero.config import Config
from flowzero.errors import AuthError, PlanetError, UsageError
from flowzero.models import Scene
from flowzero.ordering.batch import plan_chunks, run_batch
from flowzero.ordering.providers import SceneSearch
from flowzero.ordering.submit import EXISTS, ORDERED
from flowzero.storage.sqlite import SqliteOrderStore
from tests.test_ordering_submit import FakePlanet

DATA = Path(__file__).parent / "data" / "aoi"
TEALE_ALBERS_SOURCES = {
    "salinas": DATA / "Salinas" / "DrySpy_AOI_SalinasRiver.shp",
    "scott": DATA / "Scott" / "DrySpy_AOI_ScottRiver.shp",
    "santaclara": DATA / "SantaClara" / "DrySpy_AOI_SantaClaraRiver_central.shp",
}


def write_gage_shapefile(folder: Path, rows: list[tuple[str, str, str, str]],
                         columns: tuple[str, str, str] = ("gage_id", "start_date", "end_date")) -> Path:
    """A batch shapefile from the real AOI polygons (Teale Albers, with their .prj): one record per
    ``(gage_id, start, end, source)`` row, ``source`` a key of TEALE_ALBERS_SOURCES."""
    import shapefile

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "gages.shp"
    with shapefile.Writer(str(target), shapeType=shapefile.POLYGON) as writer:
        for column in columns:
            writer.field(column, "C", size=40)
        for gage_id, start, end, source in rows:
            with shapefile.Reader(str(TEALE_ALBERS_SOURCES[source])) as reader:
                writer.shape(reader.shape(0))
            writer.record(gage_id, start, end)
    shutil.copyfile(TEALE_ALBERS_SOURCES["salinas"].with_suffix(".prj"), target.with_suffix(".prj"))
    return target


class FakeScenes:
    """A scene provider whose search is scripted per gage; planning is the real psscope provider's."""

    name = "fake"
    description = "scripted"
    order_type = "PSScope"

    def __init__(self, empty: set[str] = frozenset(), broken: set[str] = frozenset(),  # type: ignore[assignment]
                 auth_fails: bool = False) -> None:
        from flowzero.providers.psscope import PSScopeProvider

        self.real = PSScopeProvider(None, Config())
        self.empty, self.broken, self.auth_fails = empty, broken, auth_fails
        self.searched: list[tuple[str, date, date]] = []

    def search(self, aoi: AOI, start: date, end: date, *, cadence: str = "daily",
               num_bands: str = "four_bands", bundle: str | None = None) -> SceneSearch:
        self.searched.append((aoi.name, start, end))
        if self.auth_fails:
            raise AuthError("Planet rejected the API key (HTTP 401)")
        if aoi.name in self.broken:
            raise PlanetError("POST quick-search -> HTTP 400: bad geometry", status_code=400)
        scenes = [] if aoi.name in self.empty else [
            Scene(id=f"{start:%Y%m%d}_{n:06d}_00_{aoi.name}", acquired=f"{start.isoformat()}T18:00:00Z",
                  cloud_cover=0.0, coverage_pct=100.0) for n in range(3)]
        return SceneSearch(aoi.name, aoi.area_sqkm, start, end, cadence, num_bands, "ortho_analytic_4b_sr",
                           "analytic_sr_udm2", found=len(scenes) + 2, eligible=len(scenes), selected=scenes,
                           clip=aoi.geojson())

    def plan(self, search: SceneSearch, **options: Any) -> Any:
        return self.real.plan(search, **options)


@pytest.fixture
def gages_shp(tmp_path: Path) -> Path:
    return write_gage_shapefile(tmp_path / "shp", [
        ("G-1", "2024-01-01", "2024-12-31", "salinas"),
        ("G-2", "2024-03-15", "2024-04-10", "scott"),
        ("G-3", "2023-11-01", "2024-02-29", "santaclara"),
    ])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOrderStore]:
    db = SqliteOrderStore(tmp_path / "orders.db")
    yield db
    db.close()


def test_gages_are_read_from_the_real_polygons_and_chunked(gages_shp: Path) -> None:
    gages = read_gages(gages_shp, "gage_id", "start_date", "end_date")
    assert [g.gage_id for g in gages] == ["G-1", "G-2", "G-3"]
    assert gages[0].area_sqkm == pytest.approx(27.24, abs=0.05)  # reprojected from Teale Albers
    chunks = plan_chunks(gages, 6)
    assert [c.label for c in chunks] == [
        "G-1 2024-01-01..2024-06-30", "G-1 2024-07-01..2024-12-31",
        "G-2 2024-03-15..2024-04-10",
        "G-3 2023-11-01..2024-02-29",
    ]
    assert len(plan_chunks(gages, 1)) == 12 + 1 + 4


def test_batch_orders_each_chunk_once_and_reruns_order_nothing(gages_shp: Path,
                                                               store: SqliteOrderStore) -> None:
    chunks = plan_chunks(read_gages(gages_shp, "gage_id", "start_date", "end_date"), 6)
    planet = FakePlanet()
    seen: list[str] = []
    report = run_batch(chunks, FakeScenes(empty={"G-2"}), store, planet, batch_id="batch-A",
                       on_chunk=lambda o: seen.append(o.chunk.label))
    assert seen == [c.label for c in chunks]
    assert len(report.placed) == 3 and len(planet.posts) == 3
    assert [o.chunk.label for o in report.no_scenes] == ["G-2 2024-03-15..2024-04-10"]
    assert (report.found, report.selected) == (3 * 5 + 2, 9)
    assert report.hectares == pytest.approx(sum(r.order.quota_hectares for r in report.placed))  # type: ignore[union-attr, misc]
    recorded = store.get_batch_orders("batch-A")
    assert sorted((o.aoi_name, o.start_date, o.end_date) for o in recorded) == [
        ("G-1", "2024-01-01", "2024-06-30"), ("G-1", "2024-07-01", "2024-12-31"),
        ("G-3", "2023-11-01", "2024-02-29")]
    assert all(o.batch_order and o.batch_id == "batch-A" for o in recorded)

    again = run_batch(chunks, FakeScenes(empty={"G-2"}), store, planet, batch_id="batch-B")
    assert [r.outcome for o in again.outcomes for r in o.results] == [EXISTS] * 3
    assert len(planet.posts) == 3 and store.get_batch_orders("batch-B") == []


def test_dry_run_batch_orders_and_records_nothing(gages_shp: Path, store: SqliteOrderStore) -> None:
    chunks = plan_chunks(read_gages(gages_shp, "gage_id", "start_date", "end_date"), 6)
    report = run_batch(chunks, FakeScenes(), store, None, batch_id="dry", dry_run=True)
    assert len(report.would_order) == 4 and report.placed == []
    assert report.hectares > 0
    assert store.list_orders() == [] and store.pending_intents() == []


def test_a_failing_chunk_is_reported_and_the_batch_goes_on(gages_shp: Path, store: SqliteOrderStore) -> None:
    chunks = plan_chunks(read_gages(gages_shp, "gage_id", "start_date", "end_date"), 6)
    planet = FakePlanet()
    report = run_batch(chunks, FakeScenes(broken={"G-1"}), store, planet, batch_id="b")
    assert [o.chunk.gage.gage_id for o in report.failed] == ["G-1", "G-1"]
    assert "bad geometry" in (report.failed[0].error or "")
    assert [r.outcome for r in report.placed] == [ORDERED, ORDERED]


def test_a_rejected_api_key_stops_the_batch(gages_shp: Path, store: SqliteOrderStore) -> None:
    chunks = plan_chunks(read_gages(gages_shp, "gage_id", "start_date", "end_date"), 6)
    provider = FakeScenes(auth_fails=True)
    with pytest.raises(AuthError):
        run_batch(chunks, provider, store, FakePlanet(), batch_id="b")
    assert len(provider.searched) == 1


def test_missing_column_and_bad_date_name_the_gage_and_column(tmp_path: Path) -> None:
    shp = write_gage_shapefile(tmp_path / "a", [("G-9", "2024-01-01", "2024-13-01", "scott")])
    with pytest.raises(UsageError, match=r"gage G-9.*end_date"):
        read_gages(shp, "gage_id", "start_date", "end_date")
    with pytest.raises(UsageError, match="no column 'site'"):
        read_gages(shp, "site", "start_date", "end_date")
