"""check-order-status / batch-check-status end to end: sandbox orders, a real SQLite store, local folders and
moto S3, through the CLI. Files are compared byte for byte with what the sandbox serves."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.models import Order
from flowzero.sandbox.server import Sandbox
from tests.fixtures.s3 import S3Bucket
from tests.fixtures.sandbox import IMAGE_ONLY

ITEMS = ["20240105_181001_00_2262", "20240112_175959_04_2262", "20240119_180312_11_2262"]
AOI = "SalinasRiver"
FOLDER = f"planetscope analytic/four_bands/{AOI}"
CLIP = {"type": "Polygon", "coordinates": [[[-121.66, 36.60], [-121.60, 36.60], [-121.60, 36.66],
                                            [-121.66, 36.66], [-121.66, 36.60]]]}


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.downloaders import http

    monkeypatch.setattr(http, "BACKOFF_BASE", 0.01)


@pytest.fixture
def planet_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", file_size=48 * 1024, polls_per_state=0) as sb:
        yield sb


@pytest.fixture
def env(planet_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"PL_API_KEY": "test-key-1234", "FLOWZERO_PLANET_API_URL": planet_sandbox.api_url,
              "FLOWZERO_PLANET_ORDERS_URL": planet_sandbox.orders_url,
              "FLOWZERO_PLANET_BASEMAPS_URL": planet_sandbox.basemaps_url,
              "FLOWZERO_PLANET_MAX_RETRIES": "2", "FLOWZERO_DOWNLOADS_MAX_WORKERS": "4", **IMAGE_ONLY}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def planet(env: dict[str, str]) -> Iterator[Any]:
    from flowzero.planet.client import PlanetClient

    client = PlanetClient("test-key-1234", api_url=env["FLOWZERO_PLANET_API_URL"],
                          orders_url=env["FLOWZERO_PLANET_ORDERS_URL"],
                          basemaps_url=env["FLOWZERO_PLANET_BASEMAPS_URL"], poll_interval=0.01)
    yield client
    client.close()


def place_order(planet: Any, store: Any, items: list[str], batch_id: str | None = None,
                bundle: str = "analytic_udm2") -> str:
    """An order created in the sandbox and recorded in the store, as `flowzero submit` would."""
    created = planet.create_order({
        "name": f"{AOI}_{items[0][:8]}", "products": [{"item_ids": items, "item_type": "PSScene",
                                                       "product_bundle": bundle}],
        "tools": [{"clip": {"aoi": CLIP}}],
    })
    store.save_order(Order(order_id=created["id"], aoi_name=AOI, batch_id=batch_id, start_date="2024-01-01",
                           end_date="2024-01-31", num_bands="four_bands", product_bundle=bundle,
                           status="queued", batch_order=batch_id is not None))
    return created["id"]


def invoke(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--database-path", str(db_path), *args], catch_exceptions=False)


def served_images(planet: Any, order_id: str) -> dict[str, bytes]:
    """target file name -> the bytes the sandbox serves for each ordered analytic image."""
    order = planet.get_order(order_id)
    found = {}
    for result in order["_links"]["results"]:
        name = result["name"].rsplit("/", 1)[-1]
        if "_AnalyticMS" in name and name.endswith(".tif"):
            item = name.split("_3B_")[0]
            target = f"{item[:4]}_{item[4:6]}_{item[6:8]}_{item[9:]}.tiff"
            found[target] = httpx.get(result["location"]).content
    return found


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- one order, local folder ---------------------------------------------------------------------------------


def test_local_delivery_layout_db_rerun_overwrite_and_repair(planet: Any, store: Any, db_path: Path,
                                                             tmp_path: Path) -> None:
    order_id = place_order(planet, store, ITEMS[:2])
    out = tmp_path / "out"

    first = invoke(db_path, "check-order-status", order_id, "--output", str(out), "--json")

    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["state"], report["category"], report["downloaded"], report["skipped"]) == (
        "success", "delivered", 2, 0)
    expected = served_images(planet, order_id)
    assert set(expected) == {"2024_01_05_181001_00_2262.tiff", "2024_01_12_175959_04_2262.tiff"}
    delivered = files_under(out)
    assert set(delivered) == {f"{FOLDER}/{name}" for name in expected} | {f"{FOLDER}/metadata.json"}
    for name, data in expected.items():
        assert delivered[f"{FOLDER}/{name}"] == data
    metadata = json.loads(delivered[f"{FOLDER}/metadata.json"])
    assert metadata["id"] == order_id and "token=" not in json.dumps(metadata)
    record = store.get_order(order_id)
    assert record.status == "success"
    assert record.metadata["destination"] == str(out)
    assert sorted(record.metadata["files"]) == sorted(f"{FOLDER}/{n}" for n in expected)
    assert record.metadata["delivered_at"]

    again = json.loads(invoke(db_path, "check-order-status", order_id, "--output", str(out), "--json").stdout)
    assert (again["downloaded"], again["skipped"]) == (0, 2)

    forced = json.loads(invoke(db_path, "check-order-status", order_id, "--output", str(out), "--json",
                               "--overwrite").stdout)
    assert (forced["downloaded"], forced["skipped"]) == (2, 0)

    victim = out / FOLDER / "2024_01_05_181001_00_2262.tiff"
    victim.write_bytes(b"\0" * victim.stat().st_size)
    rerun = invoke(db_path, "check-order-status", order_id, "--output", str(out), "--json")
    repaired = json.loads(rerun.stdout)
    assert (repaired["downloaded"], repaired["skipped"]) == (1, 1)
    assert victim.read_bytes() == expected[victim.name]


def test_human_output_and_state_only(planet: Any, store: Any, db_path: Path) -> None:
    order_id = place_order(planet, store, ITEMS[:1])

    result = invoke(db_path, "check-order-status", order_id)

    assert result.exit_code == 0, result.output
    assert "finished (not downloaded)" in result.stdout and "Summary:" in result.stdout
    assert store.get_order(order_id).status == "success"
    assert not store.get_order(order_id).metadata.get("delivered_at")


# -- S3, both downloaders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("downloader", ["threads", "s5cmd"])
def test_s3_delivery(planet: Any, store: Any, db_path: Path, s3_bucket: S3Bucket, downloader: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    if downloader == "s5cmd":
        pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
    monkeypatch.setenv("FLOWZERO_S3_BUCKET_NAME", s3_bucket.name)
    order_id = place_order(planet, store, ITEMS)
    extra = ["--use-s5cmd"] if downloader == "s5cmd" else ["--downloader", "threads"]

    result = invoke(db_path, "check-order-status", order_id, "--output", "s3", "--json", *extra)

    assert result.exit_code == 0, result.output
    expected = served_images(planet, order_id)
    assert s3_bucket.keys() == sorted([f"{FOLDER}/{n}" for n in expected] + [f"{FOLDER}/metadata.json"])
    for name, data in expected.items():
        assert s3_bucket.get(f"{FOLDER}/{name}") == data
    assert store.get_order(order_id).metadata["destination"] == f"s3://{s3_bucket.name}/"

    again = json.loads(invoke(db_path, "check-order-status", order_id, "--output",
                              f"s3://{s3_bucket.name}", "--json", *extra).stdout)
    assert (again["downloaded"], again["skipped"]) == (0, 3)


def test_fast_s3_delivery_never_loads_boto3(planet: Any, store: Any, db_path: Path, s3_bucket: S3Bucket) -> None:
    """The Rust core moves the files, writes metadata.json and cleans up: boto3's start-up is not paid."""
    order_id = place_order(planet, store, ITEMS[:2])
    command = [sys.executable, "-X", "importtime", "-m", "flowzero", "--database-path", str(db_path),
               "check-order-status", order_id, "--output", f"s3://{s3_bucket.name}/r", "--downloader", "fast",
               "--json"]

    for downloaded in (2, 0):  # the rerun checks what is there (HEAD) and skips it
        run = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["downloaded"] == downloaded
        imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "flowzero._fast" in imported and "json" in imported  # the importtime listing is there
        assert not {name for name in imported if name.split(".")[0] in ("boto3", "botocore")}
    expected = served_images(planet, order_id)
    assert s3_bucket.keys() == sorted([f"r/{FOLDER}/{n}" for n in expected] + [f"r/{FOLDER}/metadata.json"])
    for name, data in expected.items():
        assert s3_bucket.get(f"r/{FOLDER}/{name}") == data
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"r/{FOLDER}/metadata.json")
    document = s3_bucket.get(f"r/{FOLDER}/metadata.json")
    assert head["Metadata"]["sha256"] == hashlib.sha256(document).hexdigest()
    assert json.loads(document)["id"] == order_id


def test_s3_prefix_and_resumed_downloads(planet: Any, store: Any, db_path: Path, s3_bucket: S3Bucket,
                                         planet_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.delivery import deliver

    order_id = place_order(planet, store, ITEMS[:2])
    real = deliver.make_downloader

    def drop_downloads(*args: Any, **kwargs: Any) -> Any:  # after the manifest was read
        planet_sandbox.set_faults(drop_mid_body=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(deliver, "make_downloader", drop_downloads)

    result = invoke(db_path, "check-order-status", order_id, "--output", f"s3://{s3_bucket.name}/rivers/",
                    "--json")

    assert result.exit_code == 0, result.output
    for name, data in served_images(planet, order_id).items():
        assert s3_bucket.get(f"rivers/{FOLDER}/{name}") == data
    assert planet_sandbox.faults["drop_mid_body"] == 0  # both drops happened


def test_flipped_bytes_fail_the_command_and_leave_nothing(planet: Any, store: Any, db_path: Path,
                                                          tmp_path: Path, planet_sandbox: Sandbox,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.delivery import deliver

    order_id = place_order(planet, store, ITEMS[:1])
    planet.get_order(order_id)
    real = deliver.make_downloader

    def flip_images_only(*args: Any, **kwargs: Any) -> Any:  # the manifest has been read by now
        planet_sandbox.set_faults(flip_byte=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(deliver, "make_downloader", flip_images_only)
    out = tmp_path / "out"

    result = invoke(db_path, "check-order-status", order_id, "--output", str(out), "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["category"] == "incomplete"
    assert "mismatch" in report["failed_files"][0]["error"]
    tokens = [r["location"].split("token=")[1] for r in planet.get_order(order_id)["_links"]["results"]]
    db_bytes = b"".join(p.read_bytes() for p in db_path.parent.glob(f"{db_path.name}*"))  # with the WAL
    for token in tokens:  # download tokens never reach output or the database
        assert token not in result.output and token.encode() not in db_bytes
    assert [p for p in out.rglob("*") if p.is_file()] == []  # no image, no metadata.json, no temp file
    assert "delivered_at" not in store.get_order(order_id).metadata


def test_expired_links_are_refreshed_once(planet: Any, store: Any, db_path: Path, tmp_path: Path,
                                          planet_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.delivery import deliver

    order_id = place_order(planet, store, ITEMS[:2])
    real = deliver.make_downloader
    calls = []

    def expire_first(*args: Any, **kwargs: Any) -> Any:  # links die between the order GET and the downloads
        calls.append(1)
        if len(calls) == 1:
            planet_sandbox.set_faults(expire_links=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(deliver, "make_downloader", expire_first)
    out = tmp_path / "out"

    result = invoke(db_path, "check-order-status", order_id, "--output", str(out), "--json")

    assert result.exit_code == 0, result.output
    assert len(calls) == 2
    assert json.loads(result.stdout)["downloaded"] == 2
    for name, data in served_images(planet, order_id).items():
        assert (out / FOLDER / name).read_bytes() == data


def test_corrupt_manifest_is_an_error_not_a_silent_pass(planet: Any, store: Any, db_path: Path,
                                                        tmp_path: Path, planet_sandbox: Sandbox) -> None:
    order_id = place_order(planet, store, ITEMS[:1])
    planet.get_order(order_id)
    planet_sandbox.set_faults(flip_byte=1)  # the first download is manifest.json

    result = invoke(db_path, "check-order-status", order_id, "--output", str(tmp_path / "out"), "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["category"] == "error"
    assert not (tmp_path / "out").exists()


def test_basemap_quads_go_to_the_mosaic_month(planet: Any, store: Any, db_path: Path,
                                              s3_bucket: S3Bucket) -> None:
    mosaic = "global_monthly_2024_03_mosaic"
    created = planet.create_order({"name": f"{AOI}_basemap", "source_type": "basemaps",
                                   "products": [{"mosaic_name": mosaic, "geometry": CLIP}],
                                   "tools": [{"clip": {}}]})
    store.save_order(Order(order_id=created["id"], aoi_name=AOI, order_type="Basemap (Composite)",
                           mosaic_name=mosaic))

    result = invoke(db_path, "check-order-status", created["id"], "--output", f"s3://{s3_bucket.name}",
                    "--json")

    assert result.exit_code == 0, result.output
    order = planet.get_order(created["id"])
    quads = {r["name"].rsplit("/", 1)[-1]: r["location"] for r in order["_links"]["results"]
             if r["name"].endswith(".tif")}
    assert quads
    assert s3_bucket.keys() == sorted([f"basemaps/{AOI}/2024_03/{q}" for q in quads]
                                      + [f"basemaps/{AOI}/2024_03/metadata.json"])
    for name, location in quads.items():
        assert s3_bucket.get(f"basemaps/{AOI}/2024_03/{name}") == httpx.get(location).content


# -- errors --------------------------------------------------------------------------------------------------


def test_unknown_order_id_is_one_line(store: Any, db_path: Path, env: dict[str, str]) -> None:
    result = invoke(db_path, "check-order-status", "00000000-0000-0000-0000-000000000000")
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: unknown order id") and "Traceback" not in result.output


def test_output_s3_needs_a_bucket(planet: Any, store: Any, db_path: Path) -> None:
    order_id = place_order(planet, store, ITEMS[:1])
    result = invoke(db_path, "check-order-status", order_id, "--output", "s3")
    assert result.exit_code != 0
    assert "s3.bucket_name" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_downloader_is_refused(planet: Any, store: Any, db_path: Path, tmp_path: Path) -> None:
    order_id = place_order(planet, store, ITEMS[:1])
    result = invoke(db_path, "check-order-status", order_id, "--output", str(tmp_path),
                    "--downloader", "nope")
    assert result.exit_code != 0 and "no downloader named 'nope'" in result.stderr


def test_failed_order_shows_error_hints_and_exits_1(planet: Any, store: Any, db_path: Path,
                                                    planet_sandbox: Sandbox) -> None:
    planet_sandbox.set_next_order_outcome("failed")
    order_id = place_order(planet, store, ITEMS[:1])

    result = invoke(db_path, "check-order-status", order_id, "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["category"] == "failed" and report["error_hints"]
    assert store.get_order(order_id).status == "failed"
    assert store.get_order(order_id).metadata["error_hints"] == report["error_hints"]


def test_wait_polls_until_final_then_delivers(planet: Any, store: Any, db_path: Path, tmp_path: Path,
                                              planet_sandbox: Sandbox) -> None:
    planet_sandbox.set_faults(order_polls_per_state=1)
    order_id = place_order(planet, store, ITEMS[:1])

    result = invoke(db_path, "check-order-status", order_id, "--output", str(tmp_path / "o"), "--wait",
                    "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["category"] == "delivered"
    gets = [r for r in planet_sandbox.requests() if r["method"] == "GET" and r["path"].endswith(order_id)]
    assert len(gets) >= 2  # it polled


# -- batches -------------------------------------------------------------------------------------------------


def test_batch_summary_every_state_db_and_rerun(planet: Any, store: Any, db_path: Path, tmp_path: Path,
                                                planet_sandbox: Sandbox) -> None:
    planet_sandbox.set_faults(order_polls_per_state=1)
    ids = {}
    for outcome in ("success", "partial", "failed", "cancelled"):
        planet_sandbox.set_next_order_outcome(outcome)
        ids[outcome] = place_order(planet, store, ITEMS, batch_id="B1")
        planet.wait_order(ids[outcome])  # make it final now
    ids["pending"] = place_order(planet, store, ITEMS[:1], batch_id="B1")
    out = tmp_path / "out"

    result = invoke(db_path, "batch-check-status", "B1", "--output", str(out), "--json")

    assert result.exit_code == 1, result.output  # one order failed
    report = json.loads(result.stdout)
    by_id = {o["order_id"]: o for o in report["orders"]}
    assert {k: by_id[v]["category"] for k, v in ids.items()} == {
        "success": "delivered", "partial": "partial", "failed": "failed", "cancelled": "cancelled",
        "pending": "pending"}
    summary = report["summary"]
    assert (summary["delivered"], summary["partial"], summary["failed"], summary["cancelled"],
            summary["pending"]) == (1, 1, 1, 1, 1)
    assert by_id[ids["partial"]]["missing"]  # what is missing is named
    assert set(by_id[ids["partial"]]["missing"]) <= set(ITEMS)
    assert by_id[ids["failed"]]["error_hints"]
    statuses = {k: store.get_order(v).status for k, v in ids.items()}
    assert statuses == {"success": "success", "partial": "partial", "failed": "failed",
                        "cancelled": "cancelled", "pending": "running"}
    assert len(list((out / FOLDER).glob("*.tiff"))) == 3  # the success order's images (partial's overlap)

    planet_sandbox.clear_requests()
    rerun = invoke(db_path, "batch-check-status", "B1", "--output", str(out), "--json")
    by_id = {o["order_id"]: o for o in json.loads(rerun.stdout)["orders"]}
    assert by_id[ids["success"]]["category"] == "skipped" and by_id[ids["partial"]]["category"] == "skipped"
    checked = {r["path"].rsplit("/", 1)[-1] for r in planet_sandbox.requests() if r["method"] == "GET"}
    assert ids["pending"] in checked
    assert not checked & {ids["success"], ids["partial"], ids["failed"], ids["cancelled"]}

    human = invoke(db_path, "batch-check-status", "B1", "--force")
    assert "Summary:" in human.stdout and "1 failed" in human.stdout and "1 cancelled" in human.stdout


def test_unknown_batch_is_one_line(store: Any, db_path: Path, env: dict[str, str]) -> None:
    result = invoke(db_path, "batch-check-status", "nope")
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("Error: no orders recorded for batch 'nope'")


def test_metadata_json_digest_matches_manifest(planet: Any, store: Any, db_path: Path,
                                               tmp_path: Path) -> None:
    order_id = place_order(planet, store, ITEMS[:1], bundle="analytic_udm2")
    out = tmp_path / "m"
    assert invoke(db_path, "check-order-status", order_id, "--output", str(out)).exit_code == 0
    order = planet.get_order(order_id)
    results = order["_links"]["results"]
    manifest_url = next(r["location"] for r in results if r["name"].endswith("manifest.json"))
    manifest = httpx.get(manifest_url).json()
    image = next(f for f in manifest["files"] if "_AnalyticMS" in f["path"])
    [tiff] = list((out / FOLDER).glob("*.tiff"))
    assert hashlib.sha256(tiff.read_bytes()).hexdigest() == image["digests"]["sha256"]
