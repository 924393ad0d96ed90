"""Reliability items 8 and 10: real `flowzero` processes killed with SIGKILL mid-transfer, then rerun; two
processes delivering the same batch at once.

The Planet sandbox runs in this process; flowzero runs as child processes (`python -m flowzero`) sharing a
real SQLite file and a destination (a local folder, or a bucket on moto's S3 server). To catch a child in the
middle of a transfer, the sandbox cuts every download halfway (``drop_mid_body``): the child keeps the part
it has (a temp file, or an S3 multipart upload with its first part) while it backs off before resuming, and
that is when it is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from flowzero.models import Order
from flowzero.sandbox import Sandbox
from tests.fixtures.sandbox import IMAGE_ONLY

API_KEY = "reliability-crash-key"
AOI = "SalinasRiver"
FOLDER = f"planetscope analytic/four_bands/{AOI}"
ITEMS = ["20240105_181001_00_2262", "20240112_175959_04_2262", "20240119_180312_11_2262"]
CLIP = {"type": "Polygon", "coordinates": [[[-121.66, 36.60], [-121.60, 36.60], [-121.60, 36.66],
                                            [-121.66, 36.66], [-121.66, 36.60]]]}
MIB = 1024 * 1024


def key_of(item: str) -> str:
    return f"{FOLDER}/{item[:4]}_{item[4:6]}_{item[6:8]}_{item[9:]}.tiff"


@dataclass
class Site:
    sandbox: Sandbox
    planet: Any
    db: Path
    env: dict[str, str]
    tmp: Path

    def place(self, item: str, batch_id: str | None = None) -> tuple[str, str, int]:
        """An order of one scene, recorded as `submit` would; returns its id and the image's sha256 and size."""
        from flowzero.storage.sqlite import SqliteOrderStore

        created = self.planet.create_order({
            "name": f"{AOI}_{item}", "products": [{"item_ids": [item], "item_type": "PSScene",
                                                   "product_bundle": "analytic_udm2"}],
            "tools": [{"clip": {"aoi": CLIP}}]})
        with SqliteOrderStore(self.db) as store:
            store.save_order(Order(order_id=created["id"], aoi_name=AOI, batch_id=batch_id,
                                   start_date="2024-01-01", end_date="2024-01-31", num_bands="four_bands",
                                   product_bundle="analytic_udm2", batch_order=batch_id is not None))
        order = self.planet.get_order(created["id"])
        link = next(r for r in order["_links"]["results"] if r["name"].endswith("manifest.json"))
        entry = next(f for f in self.planet.get_json(link["location"])["files"]
                     if "_AnalyticMS" in f["path"] and f["path"].endswith(".tif"))
        return created["id"], entry["digests"]["sha256"], int(entry["size"])

    def flowzero(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "flowzero", "--database-path", str(self.db), *args],
                                env={**os.environ, **self.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    from flowzero.planet.client import PlanetClient

    staging = tmp_path / "tmp"
    staging.mkdir()
    with Sandbox(tmp_path / "sandbox", file_size=12 * MIB, polls_per_state=0) as sandbox:
        env = {"PL_API_KEY": API_KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
               "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
               "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url, "FLOWZERO_PLANET_MAX_RETRIES": "12",
               "FLOWZERO_DOWNLOADS_PART_SIZE_MIB": "5", "FLOWZERO_DOWNLOADS_MAX_WORKERS": "2", **IMAGE_ONLY,
               "TMPDIR": str(staging)}
        with PlanetClient(API_KEY, api_url=sandbox.api_url, orders_url=sandbox.orders_url,
                          basemaps_url=sandbox.basemaps_url) as planet:
            yield Site(sandbox, planet, tmp_path / "db" / "orders.db", env, tmp_path)


class ImageCutter:
    """Cuts every download of an analytic image halfway (the sandbox's drop_mid_body, armed per request):
    manifest.json, fetched just before, must come through whole for the delivery to start at all."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from flowzero.sandbox import server

        self.on = False
        real = server._Handler._send_file
        cutter = self

        def send_file(handler: Any, method: str, file: Path, filename: str) -> None:
            if cutter.on and method == "GET" and "_AnalyticMS" in filename:
                handler.app.faults.apply({"drop_mid_body": 1})
            real(handler, method, file, filename)

        monkeypatch.setattr(server._Handler, "_send_file", send_file)


@pytest.fixture
def cutter(monkeypatch: pytest.MonkeyPatch) -> ImageCutter:
    return ImageCutter(monkeypatch)


def wait_for(condition: Callable[[], Any], proc: subprocess.Popen[str], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"flowzero ended before the fault: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError("the transfer never reached the state to kill it in")


def kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


# -- item 8: SIGKILL mid-transfer, then rerun --------------------------------------------------------------------


@pytest.mark.parametrize("downloader", ["threads", "fast"])
def test_killed_local_download_leaves_no_final_file_and_the_rerun_cleans_up(
        site: Site, downloader: str, cutter: ImageCutter, fault_ledger: Any) -> None:
    order_id, sha256, size = site.place(ITEMS[0])
    out = site.tmp / "out"
    target = out / key_of(ITEMS[0])
    args = ("check-order-status", order_id, "--output", str(out), "--downloader", downloader, "--json")
    cutter.on = True

    run = site.flowzero(*args)
    temps = wait_for(lambda: [p for p in target.parent.glob(".flowzero-tmp-*") if p.stat().st_size > 0], run)
    kill_9(run)

    assert not target.exists()  # nothing truncated at the final name
    assert all(p.exists() for p in temps)  # the killed run could not clean up after itself
    cutter.on = False

    rerun = site.flowzero(*args)
    stdout, stderr = rerun.communicate(timeout=120)

    assert rerun.returncode == 0, stderr
    assert json.loads(stdout)["category"] == "delivered"
    data = target.read_bytes()
    assert len(data) == size and hashlib.sha256(data).hexdigest() == sha256
    assert sorted(p.name for p in out.rglob(".*")) == []  # the killed run's temp files are gone too
    fault_ledger.record(8, "SIGKILL mid-download, rerun", f"{downloader}/local", 1, survived=True,
                        bytes_lost=0 if hashlib.sha256(data).hexdigest() == sha256 else size)


@pytest.mark.parametrize("downloader", ["threads", "fast"])
def test_killed_multipart_upload_leaves_no_object_and_the_rerun_aborts_it(
        site: Site, downloader: str, cutter: ImageCutter, s3_bucket: Any, fault_ledger: Any) -> None:
    order_id, sha256, size = site.place(ITEMS[0])
    key = f"rivers/{key_of(ITEMS[0])}"
    args = ("check-order-status", order_id, "--output", f"s3://{s3_bucket.name}/rivers", "--downloader",
            downloader, "--json")
    cutter.on = True

    def upload_with_a_part() -> bool:
        for upload in s3_bucket.multipart_uploads():
            parts = s3_bucket.client.list_parts(Bucket=s3_bucket.name, Key=upload["Key"],
                                                UploadId=upload["UploadId"])
            if parts.get("Parts"):
                return True
        return False

    run = site.flowzero(*args)
    wait_for(upload_with_a_part, run)
    kill_9(run)

    present = s3_bucket.keys()
    assert key not in present  # no object at the key
    assert [u["Key"] for u in s3_bucket.multipart_uploads()] == [key]  # the killed run's upload is still open
    cutter.on = False

    rerun = site.flowzero(*args)
    stdout, stderr = rerun.communicate(timeout=120)

    assert rerun.returncode == 0, stderr
    assert json.loads(stdout)["category"] == "delivered"
    data = s3_bucket.get(key)
    assert len(data) == size and hashlib.sha256(data).hexdigest() == sha256
    assert s3_bucket.multipart_uploads() == []  # aborted by the rerun
    fault_ledger.record(8, "SIGKILL mid multipart upload, rerun", f"{downloader}/s3", 1, survived=True,
                        bytes_lost=0 if hashlib.sha256(data).hexdigest() == sha256 else size)


def test_killed_s5cmd_run_leaves_no_object_and_the_rerun_removes_its_staging(
        site: Site, s3_bucket: Any, cutter: ImageCutter, fault_ledger: Any) -> None:
    pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
    order_id, sha256, _ = site.place(ITEMS[0])
    key = f"rivers/{key_of(ITEMS[0])}"
    staging = Path(site.env["TMPDIR"])
    args = ("check-order-status", order_id, "--output", f"s3://{s3_bucket.name}/rivers", "--downloader",
            "s5cmd", "--json")
    cutter.on = True

    run = site.flowzero(*args)
    wait_for(lambda: [p for p in staging.rglob("*.part") if p.stat().st_size > 0], run)
    kill_9(run)

    present = s3_bucket.keys()
    assert key not in present
    assert [p.name.split("-")[2] for p in staging.iterdir()] == [str(run.pid)]  # its staging folder stayed
    cutter.on = False

    rerun = site.flowzero(*args)
    stdout, stderr = rerun.communicate(timeout=120)

    assert rerun.returncode == 0, stderr
    assert json.loads(stdout)["category"] == "delivered"
    assert hashlib.sha256(s3_bucket.get(key)).hexdigest() == sha256
    assert list(staging.iterdir()) == []  # the killed run's staging folder (a whole file) is gone
    assert s3_bucket.multipart_uploads() == []
    fault_ledger.record(8, "SIGKILL while staging, rerun", "s5cmd/s3", 1, survived=True)


# -- item 10: two processes deliver the same batch at once -------------------------------------------------------


def test_two_processes_delivering_one_batch_deliver_each_file_once(site: Site, fault_ledger: Any) -> None:
    import apsw

    from flowzero.storage.sqlite import SqliteOrderStore

    placed = {item: site.place(item, batch_id="B-shared") for item in ITEMS}
    out = site.tmp / "shared-out"
    site.sandbox.clear_requests()
    site.sandbox.set_faults(slow_ms=40)  # long enough for the two runs to overlap

    runs = [site.flowzero("batch-check-status", "B-shared", "--output", str(out), "--json") for _ in range(2)]
    done = [run.communicate(timeout=180) for run in runs]

    for run, (_, stderr) in zip(runs, done):
        assert run.returncode == 0, stderr
        assert "Traceback" not in stderr
    images = [r for r in site.sandbox.requests() if r["path"].startswith("/download/") and "_AnalyticMS" in r["path"]]
    assert sorted(r["path"].rsplit("/", 1)[-1][:23] for r in images) == sorted(ITEMS)  # each fetched once
    delivered = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert delivered == sorted([key_of(i) for i in ITEMS] + [f"{FOLDER}/metadata.json"])  # no temp file left
    for item, (_, sha256, size) in placed.items():
        data = (out / key_of(item)).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha256
    with SqliteOrderStore(site.db) as store:
        for item, (order_id, _, _) in placed.items():
            record = store.get_order(order_id)
            assert record.status == "success"
            assert record.metadata["destination"] == str(out) and record.metadata["delivered_at"]
            assert record.metadata["files"] == [key_of(item)]
            assert store.get_claim(order_id) is None  # every claim released
    conn = apsw.Connection(str(site.db))
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    fault_ledger.record(10, "two concurrent batch-check-status runs", "threads/local", 1, survived=True)


def test_cleanup_never_touches_a_live_run(tmp_path: Path) -> None:
    from flowzero.delivery.destination import Destination
    from flowzero.delivery.leftovers import DeliveryLock

    folder = tmp_path / "out" / "f"
    folder.mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = int(gone.stdout)
    live = folder / f".flowzero-tmp-a.tif.{os.getpid()}.k2x9_q1z.part"
    stale = folder / f".flowzero-tmp-b.tif.{dead}.7hd83ja0.part"
    stale_fast = folder / f".flowzero-tmp-c.tif.{dead}.3"
    others = [folder / "c.tif", folder / ".hidden", folder / f".b.tif.{dead}.7hd83ja0.part"]
    for path in [live, stale, stale_fast, *others]:
        path.write_bytes(b"x")
    destination = Destination("local", str(tmp_path / "out"))

    with DeliveryLock(destination, ["f"]) as first:
        assert first.exclusive and sorted(first.cleaned) == sorted([str(stale), str(stale_fast)])
        later = folder / f".flowzero-tmp-d.tif.{dead}.p0o9i8u7.part"
        later.write_bytes(b"x")
        with DeliveryLock(destination, ["f"]) as second:  # another run is going on: no cleaning
            assert not second.exclusive and second.cleaned == [] and later.exists()
    assert live.exists() and all(p.exists() for p in others)
    with DeliveryLock(destination, ["f"]) as alone:
        assert alone.cleaned == [str(later)]
