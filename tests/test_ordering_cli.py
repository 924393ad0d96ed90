"""The ordering commands end to end: `flowzero` subprocesses against the Planet sandbox over real sockets,
with the real AOIs and a SQLite order database in tmp; what Planet saw comes from the sandbox request log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flowzero.storage.sqlite import SqliteOrderStore
from tests.test_ordering_batch import write_gage_shapefile

if TYPE_CHECKING:
    from flowzero.sandbox import Sandbox

DATA = Path(__file__).parent / "data" / "aoi"
SALINAS_JSON = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
SCOTT_SHP = DATA / "Scott" / "DrySpy_AOI_ScottRiver.shp"
API_KEY = "test-key"
ORDERS_PATH = "/compute/ops/orders/v2"


@dataclass
class Env:
    sandbox: Sandbox
    db: Path
    vars: dict[str, str]

    def run(self, *args: str, key: str = API_KEY) -> subprocess.CompletedProcess[str]:
        env = {**self.vars, "PL_API_KEY": key}
        done = subprocess.run([sys.executable, "-m", "flowzero", *args], capture_output=True, text=True,
                              env=env, timeout=120)
        assert not key or key not in done.stdout + done.stderr, "the API key must never be printed"
        assert "Traceback" not in done.stderr
        return done

    def order_posts(self) -> int:
        return sum(1 for r in self.sandbox.requests() if r["method"] == "POST" and r["path"] == ORDERS_PATH)

    def store(self) -> SqliteOrderStore:
        return SqliteOrderStore(self.db)


@pytest.fixture
def env(sandbox: Sandbox, tmp_path: Path) -> Iterator[Env]:
    variables = dict(os.environ)
    variables.update({
        "FLOWZERO_PLANET_API_URL": sandbox.api_url,
        "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
        "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
        "FLOWZERO_PLANET_MAX_RETRIES": "1",
        "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db"),
    })
    yield Env(sandbox, tmp_path / "orders.db", variables)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line, which ends stderr (status lines may come before it)."""
    lines = done.stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    return errors[0]


SALINAS_JAN = ("--geojson", str(SALINAS_JSON), "--start-date", "2024-01-01", "--end-date", "2024-01-31")


def test_search_scenes_lists_the_selection_and_orders_nothing(env: Env) -> None:
    done = env.run("search-scenes", *SALINAS_JAN, "--cadence", "weekly", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["aoi_name"] == "SalinasRiver" and data["product_bundle"] == "analytic_sr_udm2"
    assert data["found"] >= data["eligible"] >= data["selected"] > 0
    assert data["selected"] == len(data["scenes"]) <= 6  # at most one per week (Sunday-based) touched
    assert all(s["coverage_pct"] >= 98 and s["cloud_cover"] == 0 for s in data["scenes"])
    assert data["quota_hectares"] == pytest.approx(data["area_sqkm"] * data["selected"] * 100, rel=1e-3)
    table = env.run("search-scenes", *SALINAS_JAN, "--cadence", "weekly")
    assert table.returncode == 0
    assert data["scenes"][0]["id"] in table.stdout and f"selected {data['selected']}" in table.stdout
    assert env.order_posts() == 0 and not env.db.exists()


def test_search_scenes_reads_a_shapefile(env: Env) -> None:
    done = env.run("search-scenes", "--geojson", str(SCOTT_SHP), "--start-date", "2024-05-01",
                   "--end-date", "2024-05-15", "--num-bands", "eight_bands", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["aoi_name"] == "ScottRiver" and data["product_bundle"] == "analytic_8b_sr_udm2"
    assert data["area_sqkm"] == pytest.approx(46.68, abs=0.05)


def test_submit_twice_places_one_order(env: Env) -> None:
    first = env.run("submit", *SALINAS_JAN)
    assert first.returncode == 0, first.stderr
    [line] = [x for x in first.stdout.splitlines() if x.startswith("ordered: ")]
    order_id = line.split()[1]
    assert env.order_posts() == 1
    with env.store() as store:
        order = store.get_order(order_id)
    assert order is not None
    assert (order.aoi_name, order.order_type, order.start_date, order.end_date) == (
        "SalinasRiver", "PSScope", "2024-01-01", "2024-01-31")
    assert (order.num_bands, order.product_bundle, order.clipped) == ("four_bands", "analytic_sr_udm2", True)
    assert order.scenes_selected and order.scenes_found and order.scenes_found >= order.scenes_selected
    assert order.quota_hectares == pytest.approx((order.aoi_area_sqkm or 0) * order.scenes_selected * 100)
    assert order.order_name and order.order_name.startswith("flowzero-SalinasRiver-2024-01-01-2024-01-31-")
    assert len(order.metadata["item_ids"]) == order.scenes_selected
    planet = httpx.get(f"{env.sandbox.orders_url}/{order_id}", auth=(API_KEY, "")).json()
    assert planet["name"] == order.order_name
    assert planet["products"][0]["item_ids"] == order.metadata["item_ids"]
    assert "clip" in planet["tools"][0]

    second = env.run("submit", *SALINAS_JAN)
    assert second.returncode == 0, second.stderr
    assert f"already ordered: {order_id} (" in second.stdout
    assert env.order_posts() == 1

    forced = env.run("submit", *SALINAS_JAN, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    [placed] = json.loads(forced.stdout)["orders"]
    assert placed["outcome"] == "ordered" and placed["order_id"] != order_id
    assert env.order_posts() == 2


def test_dry_run_orders_and_records_nothing(env: Env) -> None:
    done = env.run("submit", *SALINAS_JAN, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would order: flowzero-SalinasRiver-2024-01-01-2024-01-31-" in done.stdout
    assert env.order_posts() == 0
    with env.store() as store:
        assert store.list_orders() == [] and store.pending_intents() == []


def test_no_scenes_is_a_clear_message_and_no_order(env: Env) -> None:
    done = env.run("submit", "--geojson", str(SALINAS_JSON), "--start-date", "2015-01-01",
                   "--end-date", "2015-01-31")
    assert done.returncode == 0, done.stderr
    assert "No scenes cover at least 98% of SalinasRiver" in done.stdout and "nothing ordered" in done.stdout
    assert env.order_posts() == 0


def test_a_run_killed_after_planet_accepted_is_recorded_not_reordered(env: Env, sandbox_config: Any) -> None:
    from flowzero import plugins
    from flowzero.aoi import load_aoi
    from flowzero.planet.client import PlanetClient

    # What a run does up to the crash: plan, note the intent, POST; then it dies before recording.
    with PlanetClient.from_config(sandbox_config) as client:
        provider = plugins.get("providers", "psscope")(client, sandbox_config)
        search = provider.search(load_aoi(SALINAS_JSON), *_dates("2024-01-01", "2024-01-31"))
        [planned] = provider.plan(search)
    with env.store() as store:
        store.record_intent(planned.name, planned.intent_details())
    response = httpx.post(env.sandbox.orders_url, json=planned.request, auth=(API_KEY, ""))
    assert response.status_code == 202
    placed_id = response.json()["id"]

    rerun = env.run("submit", *SALINAS_JAN)
    assert rerun.returncode == 0, rerun.stderr
    assert f"already ordered: {placed_id} (" in rerun.stdout
    assert f"recorded {placed_id}" in rerun.stderr
    assert env.order_posts() == 1  # only the killed run's POST
    with env.store() as store:
        order = store.get_order(placed_id)
        assert order is not None and order.order_name == planned.name
        assert order.scenes_selected == len(planned.item_ids) and order.aoi_name == "SalinasRiver"
        assert store.pending_intents() == []
        assert len(store.list_orders()) == 1


def test_an_order_post_without_answer_is_never_resent(env: Env, sandbox_config: Any) -> None:
    from flowzero import plugins
    from flowzero.aoi import load_aoi
    from flowzero.ordering.submit import submit_orders
    from flowzero.planet.client import PlanetClient

    sandbox_config.database_path = str(env.db)
    with PlanetClient.from_config(sandbox_config) as client, env.store() as store:
        provider = plugins.get("providers", "psscope")(client, sandbox_config)
        planned = provider.plan(provider.search(load_aoi(SALINAS_JSON), *_dates("2024-01-01", "2024-01-31")))
        env.sandbox.set_faults(server_errors=[500])  # the order POST fails in a way that leaves doubt
        with pytest.raises(Exception, match="does not list it yet"):
            submit_orders(planned, store, client)
        assert env.order_posts() == 1
        assert [i["order_name"] for i in store.pending_intents()] == [planned[0].name]
        assert store.list_orders() == []
    rerun = env.run("submit", *SALINAS_JAN)  # Planet never created it: the rerun orders it, once
    assert rerun.returncode == 0, rerun.stderr
    assert "ordered: " in rerun.stdout
    assert env.order_posts() == 2
    with env.store() as store:
        assert len(store.list_orders()) == 1 and store.pending_intents() == []


def _dates(start: str, end: str) -> tuple[Any, Any]:
    from datetime import date

    return date.fromisoformat(start), date.fromisoformat(end)


def test_batch_submit_orders_each_chunk_once(env: Env, tmp_path: Path) -> None:
    shp = write_gage_shapefile(tmp_path / "gages", [
        ("G-1", "2024-01-01", "2024-03-31", "salinas"),
        ("G-2", "2024-02-01", "2024-02-20", "scott"),
        ("G-3", "2015-01-01", "2015-01-31", "santaclara"),  # before any scene: no valid scenes
    ])
    args = ("batch-submit", "--shp", str(shp), "--max-months", "2", "--cadence", "weekly")
    dry = env.run(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count(": would order ") == 3 and env.order_posts() == 0

    done = env.run(*args)
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.splitlines()[0].removeprefix("Batch ID: ")
    assert str(uuid.UUID(batch_id)) == batch_id
    assert "G-1 2024-01-01..2024-02-29: ordered " in done.stdout
    assert "G-1 2024-03-01..2024-03-31: ordered " in done.stdout
    assert "G-2 2024-02-01..2024-02-20: ordered " in done.stdout
    assert "G-3 2015-01-01..2015-01-31: no valid scenes" in done.stdout
    summary = f"Batch {batch_id}: 3 order(s) ordered, 0 already ordered, 1 chunk(s) without valid scenes"
    assert summary in done.stdout
    assert env.order_posts() == 3
    with env.store() as store:
        orders = store.get_batch_orders(batch_id)
    assert sorted((o.aoi_name, o.start_date, o.end_date) for o in orders) == [
        ("G-1", "2024-01-01", "2024-02-29"), ("G-1", "2024-03-01", "2024-03-31"),
        ("G-2", "2024-02-01", "2024-02-20")]
    assert all(o.batch_order and o.metadata["cadence"] == "weekly" for o in orders)

    again = env.run(*args, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [o["outcome"] for o in report["orders"]] == ["exists"] * 3
    assert report["no_valid_scenes"] == [
        {"gage_id": "G-3", "start_date": "2015-01-01", "end_date": "2015-01-31"}]
    assert env.order_posts() == 3


def test_batch_submit_names_missing_columns_and_bad_dates(env: Env, tmp_path: Path) -> None:
    shp = write_gage_shapefile(tmp_path / "a", [("G-1", "2024-01-01", "2024-03-31", "salinas")],
                               columns=("site", "start_date", "end_date"))
    done = env.run("batch-submit", "--shp", str(shp))
    assert done.returncode == 2
    assert "no column 'gage_id'" in error_line(done)
    bad = write_gage_shapefile(tmp_path / "b", [("G-7", "2024-01-01", "01/03/2024", "scott")])
    done = env.run("batch-submit", "--shp", str(bad))
    assert done.returncode == 2
    line = error_line(done)
    assert "G-7" in line and "end_date" in line
    assert env.order_posts() == 0


def test_list_basemaps_filters_by_first_acquired(env: Env) -> None:
    done = env.run("list-basemaps", "--start-date", "2024-01-01", "--end-date", "2024-03-31", "--json")
    assert done.returncode == 0, done.stderr
    mosaics = json.loads(done.stdout)
    names = [m["name"] for m in mosaics]
    assert {"global_monthly_2024_01_mosaic", "global_monthly_2024_03_mosaic",
            "global_quarterly_2024q1_mosaic"} <= set(names)
    assert all("2024-01-01" <= m["first_acquired"][:10] <= "2024-03-31" for m in mosaics)
    monthly = json.loads(env.run("list-basemaps", "--start-date", "2024-01-01", "--end-date", "2024-03-31",
                                 "--name-contains", "monthly", "--json").stdout)
    assert [m["name"] for m in monthly] == [f"global_monthly_2024_0{m}_mosaic" for m in (1, 2, 3)]
    table = env.run("list-basemaps", "--start-date", "2024-01-01", "--end-date", "2024-01-31")
    assert "global_monthly_2024_01_mosaic" in table.stdout and "Found 2 basemap(s)." in table.stdout


def test_order_basemap_once(env: Env) -> None:
    args = ("order-basemap", "--mosaic-name", "global_monthly_2024_01_mosaic", "--geojson", str(SALINAS_JSON))
    assert "would order: " in env.run(*args, "--dry-run").stdout and env.order_posts() == 0
    done = env.run(*args)
    assert done.returncode == 0, done.stderr
    order_id = done.stdout.split("ordered: ")[1].split()[0]
    with env.store() as store:
        order = store.get_order(order_id)
    assert order is not None and order.order_type == "Basemap (Composite)"
    assert (order.mosaic_name, order.aoi_name) == ("global_monthly_2024_01_mosaic", "SalinasRiver")
    assert (order.start_date, order.end_date) == ("2024-01-01", "2024-02-01")
    planet = httpx.get(f"{env.sandbox.orders_url}/{order_id}", auth=(API_KEY, "")).json()
    assert planet["source_type"] == "basemaps" and planet["tools"] == [{"clip": {}}]
    again = env.run(*args)
    assert f"already ordered: {order_id} (" in again.stdout and env.order_posts() == 1
    unknown = env.run("order-basemap", "--mosaic-name", "no_such_mosaic", "--geojson", str(SALINAS_JSON))
    assert unknown.returncode == 2 and "no basemap mosaic named 'no_such_mosaic'" in error_line(unknown)


@pytest.mark.parametrize(("args", "expected"), [
    (("--start-date", "2024-02-30", "--end-date", "2024-03-01"), "invalid --start-date '2024-02-30'"),
    (("--start-date", "2024-03-01", "--end-date", "2024/03/31"), "invalid --end-date '2024/03/31'"),
    (("--start-date", "2024-03-01", "--end-date", "2024-02-01"), "is before --start-date"),
])
def test_bad_dates_are_one_line_errors(env: Env, args: tuple[str, ...], expected: str) -> None:
    done = env.run("submit", "--geojson", str(SALINAS_JSON), *args)
    assert done.returncode == 2
    assert expected in error_line(done)
    assert env.sandbox.requests() == []


def test_missing_file_and_rejected_key_are_one_line_errors(env: Env) -> None:
    missing = env.run("submit", "--geojson", "/no/such/aoi.geojson", "--start-date", "2024-01-01",
                      "--end-date", "2024-01-31")
    assert missing.returncode == 2 and "file not found" in error_line(missing)
    rejected = env.run("search-scenes", *SALINAS_JAN, key="invalid-key")
    assert rejected.returncode == 1 and "HTTP 401" in error_line(rejected)
    assert env.order_posts() == 0


def test_the_old_per_command_api_key_flag_still_works(env: Env) -> None:
    done = env.run("search-scenes", *SALINAS_JAN, "--api-key", "old-style-key", "--json", key="")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["selected"] > 0
    assert "old-style-key" not in done.stdout + done.stderr
