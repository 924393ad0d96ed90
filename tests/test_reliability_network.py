"""Reliability items 1-4 and 7: faults of the download source, for every downloader and destination.

Each case places a one-scene order in the Planet sandbox, records it in a real SQLite store, arms a sandbox
fault switch once the manifest has been read (so the fault hits the image, not manifest.json), then runs
`flowzero check-order-status ID --output DEST --downloader NAME --json` in-process. What is checked afterwards
is what is really at the destination (a local folder, or a bucket on moto's S3 server), the sandbox's request
log, and the order store.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from flowzero.cli import cli
from flowzero.models import Order
from flowzero.sandbox import Sandbox
from tests.fixtures.sandbox import IMAGE_ONLY

API_KEY = "reliability-key-0001"
AOI = "SalinasRiver"
FOLDER = f"planetscope analytic/four_bands/{AOI}"
ITEM = "20240105_181001_00_2262"
IMAGE_KEY = f"{FOLDER}/2024_01_05_181001_00_2262.tiff"
CLIP = {"type": "Polygon", "coordinates": [[[-121.66, 36.60], [-121.60, 36.60], [-121.60, 36.66],
                                            [-121.66, 36.66], [-121.66, 36.60]]]}
FILE_SIZE = 96 * 1024

# Every downloader, on every destination it handles itself (s5cmd hands local folders to threads).
TARGETS = [("threads", "local"), ("threads", "s3"), ("fast", "local"), ("fast", "s3"), ("s5cmd", "s3")]


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.downloaders import http

    monkeypatch.setattr(http, "BACKOFF_BASE", 0.01)


@dataclass
class Rig:
    """A sandbox, a store and a destination, with helpers to place an order and deliver it."""

    sandbox: Sandbox
    planet: Any
    store: Any
    db_path: Path
    downloader: str
    kind: str
    out: Path
    staging: Path
    bucket: Any = None
    armed: list[int] = field(default_factory=list)

    @property
    def output(self) -> str:
        return f"s3://{self.bucket.name}/rel" if self.kind == "s3" else str(self.out)

    def place_order(self) -> str:
        created = self.planet.create_order({
            "name": f"{AOI}_reliability", "products": [{"item_ids": [ITEM], "item_type": "PSScene",
                                                        "product_bundle": "analytic_udm2"}],
            "tools": [{"clip": {"aoi": CLIP}}]})
        self.store.save_order(Order(order_id=created["id"], aoi_name=AOI, start_date="2024-01-01",
                                    end_date="2024-01-31", num_bands="four_bands",
                                    product_bundle="analytic_udm2", status="queued"))
        return str(created["id"])

    def manifest_digest(self, order_id: str) -> tuple[str, int]:
        """The sha256 and size manifest.json gives the ordered image (read before any fault is armed)."""
        order = self.planet.get_order(order_id)
        link = next(r for r in order["_links"]["results"] if r["name"].endswith("manifest.json"))
        manifest = self.planet.get_json(link["location"])
        entry = next(f for f in manifest["files"] if "_AnalyticMS" in f["path"] and f["path"].endswith(".tif"))
        return entry["digests"]["sha256"], int(entry["size"])

    def deliver(self, order_id: str, arm: Callable[[], None] | None, monkeypatch: pytest.MonkeyPatch,
                ) -> tuple[int, dict[str, Any], str]:
        """Run check-order-status; ``arm`` sets the fault when the first downloader is made."""
        from flowzero.delivery import deliver

        real = deliver.make_downloader

        def arming(*args: Any, **kwargs: Any) -> Any:
            self.armed.append(1)
            if arm is not None and len(self.armed) == 1:
                arm()
            return real(*args, **kwargs)

        monkeypatch.setattr(deliver, "make_downloader", arming)
        self.sandbox.clear_requests()
        result = CliRunner().invoke(cli, ["--database-path", str(self.db_path), "check-order-status", order_id,
                                          "--output", self.output, "--downloader", self.downloader, "--json"],
                                    catch_exceptions=False)
        assert "Traceback" not in result.output
        return result.exit_code, json.loads(result.stdout), result.stderr

    def final_bytes(self) -> bytes | None:
        """What is at the image's final name or key now (None: nothing)."""
        if self.kind == "s3":
            present = self.bucket.keys()
            return self.bucket.get(f"rel/{IMAGE_KEY}") if f"rel/{IMAGE_KEY}" in present else None
        path = self.out / IMAGE_KEY
        return path.read_bytes() if path.exists() else None

    def leftovers(self) -> list[str]:
        """Anything half-written: temp files, staging folders, incomplete multipart uploads."""
        found = [str(p) for p in self.out.rglob("*") if p.name.startswith(".") or p.suffix == ".part"]
        found += [str(p) for p in self.staging.iterdir()]
        if self.bucket is not None:
            found += [u["Key"] for u in self.bucket.multipart_uploads()]
        return found

    def downloads(self) -> list[dict[str, Any]]:
        """The image's download requests in the sandbox log (manifest.json excluded)."""
        return [r for r in self.sandbox.requests()
                if r["path"].startswith("/download/") and "_AnalyticMS" in r["path"]]

    def order_gets(self, order_id: str) -> int:
        return sum(1 for r in self.sandbox.requests() if r["method"] == "GET" and r["path"].endswith(order_id))


@pytest.fixture(params=TARGETS, ids=[f"{d}-{k}" for d, k in TARGETS])
def rig(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    from flowzero.planet.client import PlanetClient
    from flowzero.storage.sqlite import SqliteOrderStore

    downloader, kind = request.param
    if downloader == "s5cmd":
        pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
    bucket = request.getfixturevalue("s3_bucket") if kind == "s3" else None
    staging = tmp_path / "tmp"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))  # s5cmd's staging folders land here
    with Sandbox(tmp_path / "sandbox", file_size=FILE_SIZE, polls_per_state=0) as sandbox:
        for key, value in {"PL_API_KEY": API_KEY, "FLOWZERO_PLANET_API_URL": sandbox.api_url,
                           "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
                           "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url,
                           "FLOWZERO_PLANET_MAX_RETRIES": "2", "FLOWZERO_DOWNLOADS_MAX_WORKERS": "2",
                           **IMAGE_ONLY}.items():
            monkeypatch.setenv(key, value)
        planet = PlanetClient(API_KEY, api_url=sandbox.api_url, orders_url=sandbox.orders_url,
                              basemaps_url=sandbox.basemaps_url)
        db_path = tmp_path / "db" / "flowzero.db"
        store = SqliteOrderStore(db_path)
        try:
            yield Rig(sandbox, planet, store, db_path, downloader, kind, tmp_path / "out", staging, bucket)
        finally:
            store.close()
            planet.close()


# name -> (item, switches, the image arrives?)
CASES: dict[str, tuple[int, dict[str, Any], bool]] = {
    "drop-at-50pc": (1, {"drop_mid_body": 1}, True),
    "short-body": (2, {"short_body": 1}, True),
    "always-short": (2, {"short_body": 50}, False),
    "flipped-byte-once": (3, {"flip_byte": 1}, True),
    "flipped-byte-twice": (3, {"flip_byte": 2}, False),
    "ignores-range": (4, {"drop_mid_body": 1, "ignore_range": True}, True),
}


def _fired(rig: Rig, switches: dict[str, Any]) -> int:
    """How many of the armed faults the sandbox really fired (its counters go down as they fire)."""
    left = rig.sandbox.faults
    fired = sum(n - left[name] for name, n in switches.items() if isinstance(n, int) and not isinstance(n, bool))
    if switches.get("ignore_range"):
        fired += sum(1 for r in rig.downloads()[1:] if r["status"] == 200)  # a ranged GET answered 200
    return fired


@pytest.mark.parametrize("case", list(CASES))
def test_source_faults(rig: Rig, case: str, monkeypatch: pytest.MonkeyPatch, fault_ledger: Any) -> None:
    item, switches, heals = CASES[case]
    order_id = rig.place_order()
    sha256, size = rig.manifest_digest(order_id)

    code, report, stderr = rig.deliver(order_id, lambda: rig.sandbox.set_faults(**switches), monkeypatch)
    fired = _fired(rig, switches)
    rig.sandbox.reset_faults()

    arrived = rig.final_bytes()
    record = rig.store.get_order(order_id)
    lost = 0
    if arrived is not None and hashlib.sha256(arrived).hexdigest() != sha256:
        lost += len(arrived)  # corrupt bytes at a final name
    if report["category"] == "delivered" and arrived is None:
        lost += size  # reported delivered, but missing
    assert lost == 0
    assert rig.leftovers() == []  # nothing partial left, whatever happened
    assert fired >= 1, "the fault must really have been injected"
    downloads = rig.downloads()
    if heals:
        assert code == 0, stderr
        assert report["category"] == "delivered" and report["downloaded"] == 1
        assert arrived is not None and len(arrived) == size
        assert record.metadata.get("delivered_at")
        if case == "ignores-range":
            assert downloads[1]["status"] == 200  # the ranged retry got the whole file: restarted from zero
        elif case == "drop-at-50pc" and rig.downloader != "s5cmd":
            assert any(r["status"] == 206 for r in downloads[1:])  # resumed with Range
    else:
        assert code == 1
        assert report["category"] == "incomplete"
        [failure] = report["failed_files"]
        assert failure["file"] == IMAGE_KEY and failure["error"]
        assert arrived is None  # never written to the final name or key
        assert not record.metadata.get("delivered_at")  # never marked done
        if case == "flipped-byte-twice":
            assert "mismatch" in failure["error"]
            assert len(downloads) == 2  # fetched once more, then reported
        else:
            assert len(downloads) == 3  # the first GET and max_retries (2) more
    fault_ledger.record(item, case, f"{rig.downloader}/{rig.kind}", fired, survived=True, bytes_lost=lost)


def test_expired_links_are_renewed_once(rig: Rig, monkeypatch: pytest.MonkeyPatch, fault_ledger: Any) -> None:
    order_id = rig.place_order()
    sha256, _ = rig.manifest_digest(order_id)

    code, report, stderr = rig.deliver(order_id, lambda: rig.sandbox.set_faults(expire_links=True), monkeypatch)

    assert code == 0, stderr
    assert report["category"] == "delivered"
    first, second = rig.downloads()
    assert first["status"] == 410 and second["status"] in (200, 206)
    assert rig.order_gets(order_id) == 2  # the check, then one more GET for fresh links
    arrived = rig.final_bytes()
    assert arrived is not None and hashlib.sha256(arrived).hexdigest() == sha256
    assert rig.leftovers() == []
    fault_ledger.record(7, "link expired (410)", f"{rig.downloader}/{rig.kind}", 1, survived=True)


def test_links_that_stay_expired_are_reported_after_one_renewal(rig: Rig, monkeypatch: pytest.MonkeyPatch,
                                                                fault_ledger: Any) -> None:
    order_id = rig.place_order()

    code, report, _ = rig.deliver(order_id, lambda: rig.sandbox.set_faults(download_errors=[410, 403, 410]),
                                  monkeypatch)
    rig.sandbox.reset_faults()

    assert code == 1
    assert report["category"] == "incomplete"
    [failure] = report["failed_files"]
    assert "expired" in failure["error"] and ("410" in failure["error"] or "403" in failure["error"])
    assert [r["status"] for r in rig.downloads()] == [410, 403]  # one try, one renewal, then reported
    assert rig.order_gets(order_id) == 2
    assert rig.final_bytes() is None and rig.leftovers() == []
    assert not rig.store.get_order(order_id).metadata.get("delivered_at")
    fault_ledger.record(7, "link stays expired (410/403)", f"{rig.downloader}/{rig.kind}", 2, survived=True)
