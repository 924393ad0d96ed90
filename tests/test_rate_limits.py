"""Planet as it really is: per-endpoint rate limits, 429s with and without Retry-After, download links that
redirect to a storage host and expire, several processes on one key, and batch-submit as a pipeline.

Everything runs the real CLI (in process or as subprocesses) against the sandbox over real sockets, with its
``planet_limits`` switch on. To keep the suite quick, the limits (and flowzero's configured rates with them) are
Planet's times SCALE: the same dynamics, SCALE times faster. What Planet saw comes from ``/_sandbox/stats``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.sandbox import Sandbox
from flowzero.sandbox.limits import PLANET_RATES
from flowzero.storage.sqlite import SqliteOrderStore
from tests.test_ordering_batch import write_gage_shapefile

SCALE = 4
LIMITS = {name: rate * SCALE for name, rate in PLANET_RATES.items()}
LATENCY = {"data": 60, "orders_create": 50, "orders_get": 20, "downloads": 10}
KEY = "rate-limit-key"
FILE_SIZE = 16 * 1024
DATA = Path(__file__).parent / "data" / "aoi"
SALINAS = DATA / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"


@dataclass
class Planet:
    """A sandbox enforcing (scaled) Planet limits, and the environment that points flowzero at it."""

    sandbox: Sandbox
    env: dict[str, str]
    db: Path
    out: Path

    def cli(self, *args: str) -> Result:
        result = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "flowzero", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, **self.env})

    def stats(self) -> dict[str, Any]:
        return self.sandbox.stats()

    def refused(self) -> float:
        stats = self.stats()
        return stats["refused"] / max(stats["requests"], 1)

    def delivered(self) -> list[Path]:
        """The files the orders delivered (images, masks, item metadata), not flowzero's own documents."""
        return sorted(p for p in self.out.rglob("*") if p.is_file() and p.name != "metadata.json"
                      and "stac" not in p.relative_to(self.out).parts)


def _client_rates(scale: float, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {f"FLOWZERO_PLANET_RATE_LIMITS_{name.upper()}": str(rate * scale) for name, rate in PLANET_RATES.items()}
    for name in env:  # the suite's unpaced defaults (tests/conftest.py) do not apply here
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def planet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Planet]:
    with Sandbox(tmp_path / "sandbox", file_size=FILE_SIZE, polls_per_state=1) as sandbox:
        sandbox.set_faults(planet_limits=LIMITS, latency_ms=LATENCY, redirect_downloads=True)
        env = {"PL_API_KEY": KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
               "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url, "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
               "FLOWZERO_PLANET_MAX_RETRIES": "2", "FLOWZERO_DATABASE_PATH": str(tmp_path / "orders.db"),
               "HOME": os.environ["HOME"], **_client_rates(SCALE, monkeypatch)}
        yield Planet(sandbox, env, tmp_path / "orders.db", tmp_path / "out")


def _submit(planet: Planet, month: str = "2024-01") -> str:
    done = planet.cli("submit", "--geojson", str(SALINAS), "--start-date", f"{month}-01", "--end-date",
                      f"{month}-28", "--cadence", "weekly", "--json")
    assert done.exit_code == 0, done.output
    [order] = json.loads(done.stdout)["orders"]
    return str(order["order_id"])


def _assert_within_limits(planet: Planet) -> None:
    for name, cls in planet.stats()["classes"].items():
        assert cls["peak_per_window"] <= LIMITS[name], (name, cls)


@pytest.mark.parametrize("downloader", ["threads", "fast"])
def test_a_paced_run_stays_within_every_limit_and_delivers_everything(planet: Planet, downloader: str) -> None:
    order_id = _submit(planet)
    done = planet.cli("check-order-status", order_id, "--wait", "--output", str(planet.out), "--downloader",
                      downloader, "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["category"] == "delivered" and report["downloaded"] == len(planet.delivered()) >= 4
    stats = planet.stats()
    assert stats["refused"] == 0, stats
    _assert_within_limits(planet)
    assert stats["storage"]["requests"] >= len(planet.delivered())  # every file came through the redirect...
    assert stats["storage"]["with_authorization"] == 0  # ...and no credentials ever reached the storage host


# Each engine once, and each kind of 429 (with and without Retry-After) once.
@pytest.mark.parametrize(("downloader", "retry_after"), [("threads", True), ("fast", False)])
def test_too_fast_a_client_meets_429s_and_still_delivers_every_file(planet: Planet, downloader: str,
                                                                    retry_after: bool) -> None:
    """flowzero told Planet allows 4 times what it does: it is refused, slows down, loses nothing."""
    order_id = _submit(planet)
    planet.sandbox.set_faults(planet_limits={name: max(1, rate // SCALE) for name, rate in LIMITS.items()},
                              planet_limits_retry_after=retry_after)
    planet.sandbox.reset_stats()
    done = planet.cli("check-order-status", order_id, "--wait", "--output", str(planet.out), "--downloader",
                      downloader, "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["category"] == "delivered"
    assert planet.stats()["refused"] > 0  # the sandbox did refuse...
    assert report["downloaded"] == len(planet.delivered()) >= 4  # ...and every file arrived anyway, verified


def test_a_429_storm_longer_than_the_retries_still_delivers(planet: Planet) -> None:
    order_id = _submit(planet)
    planet.sandbox.set_faults(download_errors=[429] * 5, retry_after=0)  # FLOWZERO_PLANET_MAX_RETRIES is 2
    done = planet.cli("check-order-status", order_id, "--wait", "--output", str(planet.out), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["category"] == "delivered"
    assert planet.sandbox.faults["download_errors"] == []  # all five were answered


def test_links_about_to_expire_are_renewed_before_they_are_used(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(tmp_path / "sb", file_size=FILE_SIZE, polls_per_state=0, link_ttl=30) as sandbox:
        env = {"PL_API_KEY": KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
               "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url, "FLOWZERO_DATABASE_PATH": str(tmp_path / "o.db")}
        submitted = CliRunner().invoke(cli, ["submit", "--geojson", str(SALINAS), "--start-date", "2024-01-01",
                                             "--end-date", "2024-01-28", "--cadence", "weekly", "--json"], env=env)
        [order] = json.loads(submitted.stdout)["orders"]
        sandbox.clear_requests()
        done = CliRunner().invoke(cli, ["check-order-status", order["order_id"], "--output", str(tmp_path / "out"),
                                        "--json"], env=env)
        assert done.exit_code == 0, done.output
        log = sandbox.requests()
    gets = [r for r in log if r["method"] == "GET" and r["path"].endswith(order["order_id"])]
    assert len(gets) == 2  # the check, then the renewal: its links had 30 s left, less than the 60 s margin
    assert all(r["status"] != 410 for r in log)  # no download ever met an expired link


def test_three_processes_on_one_key_share_its_limits(planet: Planet, tmp_path: Path) -> None:
    shp = write_gage_shapefile(tmp_path / "gages", [(f"G-{n}", "2024-01-01", "2024-04-30", "salinas")
                                                    for n in range(3)])
    submitted = planet.cli("batch-submit", "--shp", str(shp), "--max-months", "2", "--cadence", "monthly")
    assert submitted.exit_code == 0, submitted.output
    batch_id = submitted.stdout.splitlines()[0].removeprefix("Batch ID: ")
    planet.sandbox.reset_stats()
    workers = [planet.spawn("batch-check-status", batch_id, "--wait", "--output", str(planet.out), "--json")
               for _ in range(3)]
    reports = [json.loads(w.communicate(timeout=180)[0]) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0]
    delivered = {o["order_id"] for r in reports for o in r["orders"] if o["category"] == "delivered"}
    with SqliteOrderStore(planet.db) as store:
        batch = store.get_batch_orders(batch_id)
    assert len(batch) == 6 and delivered == {o.order_id for o in batch}
    assert all(o.metadata.get("delivered_at") for o in batch)
    assert planet.refused() <= 0.02, planet.stats()
    _assert_within_limits(planet)


def test_batch_submit_searches_concurrently_and_reports_in_shapefile_order(planet: Planet, tmp_path: Path) -> None:
    gages = [(f"G-{n:02d}", "2024-01-01", "2024-03-31", "salinas") for n in range(6)]
    shp = write_gage_shapefile(tmp_path / "gages", gages)
    args = ("batch-submit", "--shp", str(shp), "--max-months", "1", "--cadence", "monthly")
    dry = planet.cli(*args, "--dry-run")
    done = planet.cli(*args)
    assert dry.exit_code == 0 and done.exit_code == 0, done.output
    expected = [f"G-{n:02d} 2024-{m:02d}-01" for n in range(6) for m in (1, 2, 3)]
    for run, verb in ((dry, "would order"), (done, "ordered")):
        lines = [line for line in run.stdout.splitlines() if f": {verb} " in line]
        assert [line.split("..")[0] for line in lines] == expected
    data = planet.stats()["classes"]["data"]
    assert data["peak_per_window"] > 1 and data["refused"] == 0  # searches overlapped, within the limit
    assert planet.stats()["classes"]["orders_create"]["accepted"] == 18
    again = planet.cli(*args, "--json")
    assert [o["outcome"] for o in json.loads(again.stdout)["orders"]] == ["exists"] * 18
    assert planet.stats()["classes"]["orders_create"]["accepted"] == 18  # never twice
