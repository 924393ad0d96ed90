"""Several batch-check-status runs on one batch, sharing one order store (SQLite file or PostgreSQL server):
each order is claimed before it is checked, no file is fetched twice, nothing is left behind when a run dies.

Real parts: the Planet sandbox on 127.0.0.1 (its request log counts the downloads), real stores, a real
`flowzero` process next to in-process runs, and SIGKILL for a run that dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.config import Config, StorageConfig
from flowzero.models import Order
from flowzero.sandbox.server import Sandbox
from flowzero.storage.opening import open_store
from tests.fixtures.sandbox import IMAGE_ONLY

ITEM = "20240105_181001_00_2262"
BATCH = "batch-share"
FILE_SIZE = 32 * 1024
CLIP = {"type": "Polygon", "coordinates": [[[-121.66, 36.60], [-121.60, 36.60], [-121.60, 36.66],
                                            [-121.66, 36.66], [-121.66, 36.60]]]}


@dataclass
class Shared:
    """One batch in one store, and how to run flowzero on it (in this process or in another one)."""

    sandbox: Sandbox
    store: Any
    env: dict[str, str]
    base_args: list[str]
    out: Path
    order_ids: list[str]

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, [*self.base_args, "batch-check-status", BATCH, "--output", str(self.out),
                                        "--json", *args], env=self.env, catch_exceptions=False)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "flowzero", *self.base_args, "batch-check-status", BATCH, "--output",
                   str(self.out), "--json", *args]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **self.env})

    def wait_for_a_claim(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(self.store.get_claim(order_id) for order_id in self.order_ids):
                return
            time.sleep(0.02)
        raise AssertionError("the run never claimed an order")

    def image_downloads(self) -> Counter[str]:
        return Counter(r["path"] for r in self.sandbox.requests()
                       if r["method"] == "GET" and r["path"].startswith("/download/") and r["path"].endswith(".tif")
                       and "_AnalyticMS" in r["path"])


def _categories(result: Result | str) -> dict[str, str]:
    text = result if isinstance(result, str) else result.stdout
    return {o["order_id"]: o["category"] for o in json.loads(text)["orders"]}


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shared]:
    from flowzero.planet.client import PlanetClient

    with Sandbox(tmp_path / "sandbox", file_size=FILE_SIZE, polls_per_state=0) as sandbox:
        env = {"PL_API_KEY": "test-key-1234", "FLOWZERO_PLANET_API_URL": sandbox.api_url,
               "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url, "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
               "FLOWZERO_PLANET_MAX_RETRIES": "2", "FLOWZERO_DOWNLOADS_MAX_WORKERS": "4", **IMAGE_ONLY}
        config = Config()
        if request.param == "postgres":
            url = request.getfixturevalue("postgres_url")
            env.update(FLOWZERO_STORAGE_BACKEND="postgres", FLOWZERO_DATABASE_URL=url)
            config.storage = StorageConfig(backend="postgres", url=url)
            base_args: list[str] = []
        else:
            db = tmp_path / "shared.db"
            config.database_path = str(db)
            base_args = ["--database-path", str(db)]
        store = open_store(config)
        planet = PlanetClient("test-key-1234", api_url=sandbox.api_url, orders_url=sandbox.orders_url,
                              basemaps_url=sandbox.basemaps_url)
        order_ids = []
        for n in range(10):
            created = planet.create_order({"name": f"Gage{n:02d}", "products": [
                {"item_ids": [ITEM], "item_type": "PSScene", "product_bundle": "analytic_udm2"}],
                "tools": [{"clip": {"aoi": CLIP}}]})
            store.save_order(Order(created["id"], aoi_name=f"Gage{n:02d}", batch_id=BATCH, num_bands="four_bands",
                                   start_date=f"2024-01-{n + 1:02d}", end_date="2024-01-31",
                                   product_bundle="analytic_udm2", batch_order=True))
            order_ids.append(created["id"])
        planet.close()
        sandbox.clear_requests()
        yield Shared(sandbox, store, env, base_args, tmp_path / "out", order_ids)
        store.close()


def _assert_all_delivered_once(shared: Shared) -> None:
    downloads = shared.image_downloads()
    assert len(downloads) == len(shared.order_ids)  # one analytic image per order...
    assert set(downloads.values()) == {1}  # ...each fetched exactly once
    for n, order_id in enumerate(shared.order_ids):
        record = shared.store.get_order(order_id)
        assert record.status == "success" and record.metadata["delivered_at"], order_id
        assert shared.store.get_claim(order_id) is None  # released
        [image] = (shared.out / "planetscope analytic" / "four_bands" / f"Gage{n:02d}").glob("*.tiff")
        assert image.stat().st_size == FILE_SIZE


def test_two_runs_at_once_split_the_batch_and_fetch_each_file_once(shared: Shared) -> None:
    shared.sandbox.set_faults(slow_ms=150)
    other = shared.spawn()
    try:
        shared.wait_for_a_claim()
        mine = shared.run()
        out, err = other.communicate(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0, err
    assert mine.exit_code == 0, mine.output
    theirs, ours = _categories(out), _categories(mine)
    assert set(theirs) == set(ours) == set(shared.order_ids)
    for order_id in shared.order_ids:
        pair = sorted([theirs[order_id], ours[order_id]])
        assert pair in (["delivered", "elsewhere"], ["delivered", "skipped"]), (order_id, pair)
    assert "delivered" in theirs.values() and "delivered" in ours.values()  # both runs did part of the work
    assert "in progress elsewhere" in out or "in progress elsewhere" in mine.stdout
    _assert_all_delivered_once(shared)


def test_an_order_held_by_a_dead_run_is_taken_over_when_its_lease_lapses(shared: Shared) -> None:
    held = shared.order_ids[3]
    assert shared.store.claim(held, "deadhost:4242:gone", 2.5)  # outlives the two runs below, on a busy machine too
    first = shared.run()
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["summary"]["delivered"] == 9 and report["summary"]["elsewhere"] == 1
    [entry] = [o for o in report["orders"] if o["order_id"] == held]
    assert entry["category"] == "elsewhere" and "deadhost:4242:gone" in entry["message"]
    table = shared.run()  # a person's view while it is still held
    assert "in progress elsewhere" in table.stdout or "skipped" in table.stdout
    time.sleep(2.6)
    second = shared.run()
    assert second.exit_code == 0, second.output
    categories = _categories(second)
    assert categories[held] == "delivered"
    assert Counter(categories.values()) == {"delivered": 1, "skipped": 9}
    _assert_all_delivered_once(shared)


def _dead_pid() -> int:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(gone.stdout)


def test_an_order_held_by_a_killed_run_on_this_machine_is_taken_over_at_once(shared: Shared) -> None:
    import socket

    held = shared.order_ids[5]
    dead = f"{socket.gethostname()}:{_dead_pid()}:killed"
    assert shared.store.claim(held, dead, 600.0)  # a long lease: only the dead process lets it go early
    live = f"{socket.gethostname()}:{os.getpid()}:alive"
    assert shared.store.claim(shared.order_ids[6], live, 600.0)

    result = shared.run()

    assert result.exit_code == 0, result.output
    categories = _categories(result)
    assert categories[held] == "delivered" and categories[shared.order_ids[6]] == "elsewhere"
    assert shared.store.get_claim(held) is None


def test_check_order_status_claims_the_order_it_delivers(shared: Shared) -> None:
    """A single-order run does not move files another run is delivering; it claims while it works."""
    order_id = shared.order_ids[0]

    def check() -> dict[str, Any]:
        result = CliRunner().invoke(cli, [*shared.base_args, "check-order-status", order_id, "--output",
                                          str(shared.out), "--json"], env=shared.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert shared.store.claim(order_id, "otherhost:77:busy", 600.0)
    held = check()
    assert held["category"] == "elsewhere" and "otherhost:77:busy" in held["message"]
    assert shared.image_downloads() == Counter() and not shared.out.exists()

    shared.store.release(order_id, "otherhost:77:busy")
    assert check()["category"] == "delivered"
    assert sum(shared.image_downloads().values()) == 1
    assert shared.store.get_claim(order_id) is None  # released when done
    again = check()  # a single order is always checked again; its files are skipped, not fetched
    assert again["category"] == "delivered" and again["skipped"] == 1
    assert sum(shared.image_downloads().values()) == 1


def test_a_killed_run_leaves_nothing_behind(shared: Shared) -> None:
    shared.sandbox.set_faults(slow_ms=300)
    doomed = shared.spawn("--lease", "1.5")
    try:
        shared.wait_for_a_claim()
        time.sleep(0.4)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    shared.sandbox.set_faults(slow_ms=0)
    held = [order_id for order_id in shared.order_ids if shared.store.get_claim(order_id)]
    assert held  # the dead run's claims outlive it...
    during = shared.run()
    assert during.exit_code == 0, during.output
    for order_id in held:
        assert _categories(during)[order_id] in ("elsewhere", "delivered")
    deadline = time.monotonic() + 10
    while any(shared.store.get_claim(order_id) for order_id in shared.order_ids):  # ...until their leases lapse
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = shared.run()
    assert after.exit_code == 0, after.output
    assert set(_categories(after).values()) <= {"delivered", "skipped"}
    for n, order_id in enumerate(shared.order_ids):
        record = shared.store.get_order(order_id)
        assert record.metadata.get("delivered_at"), order_id
        [image] = (shared.out / "planetscope analytic" / "four_bands" / f"Gage{n:02d}").glob("*.tiff")
        assert image.stat().st_size == FILE_SIZE


def test_lease_keeper_renews_while_working_and_reports_a_lost_claim(tmp_path: Path) -> None:
    from flowzero.delivery.claims import LeaseKeeper
    from flowzero.storage.sqlite import SqliteOrderStore

    messages: list[str] = []
    with SqliteOrderStore(tmp_path / "k.db") as store:
        store.save_order(Order("mine", aoi_name="a"))
        store.save_order(Order("stolen", aoi_name="a"))
        assert store.claim("mine", "me", 0.3) and store.claim("stolen", "me", 0.3)
        with LeaseKeeper(store, "me", 0.3, ["mine", "stolen"], messages.append):
            store.release("stolen", "me")
            assert store.claim("stolen", "thief", 30)
            for _ in range(8):  # 0.8 s: more than two leases
                time.sleep(0.1)
                assert store.claim("mine", "other", 30) is False
        assert store.get_claim("mine")["worker"] == "me"
        assert messages == ["lost the claim on order stolen (its lease ran out); another run may take it"]
        time.sleep(0.35)
        assert store.claim("mine", "other", 30)  # not renewed any more: lapsed
