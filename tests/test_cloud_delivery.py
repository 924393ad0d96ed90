"""Cloud delivery end to end: `flowzero submit --delivery cloud` against the sandbox, which writes the order's files
into a moto bucket with the credentials of the order; `check-order-status` then arranges the layout inside the
bucket by verified server-side copy and deletes the staged images. Secrets are looked for everywhere they could
leak: command output, --json, logs, the order database (its files on disk) and metadata.json."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.sandbox import Sandbox
from tests.fixtures.s3 import S3Bucket
from tests.fixtures.sandbox import IMAGE_ONLY

SALINAS = Path(__file__).parent / "data" / "aoi" / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
RANGE = ("--start-date", "2024-01-01", "--end-date", "2024-01-20", "--cadence", "weekly")
API_KEY = "cloud-test-key-7781"
ACCESS_KEY = "AKIAFLOWZEROCLOUD77"
SECRET_KEY = "s3cr3t-Cl0ud-K3y-never-print-me"
FOLDER = "planetscope analytic/four_bands/SalinasRiver"
ORDERS_PATH = "/compute/ops/orders/v2"


@dataclass
class Cloud:
    sandbox: Sandbox
    bucket: S3Bucket
    db: Path
    outputs: list[str]

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(cli, ["--database-path", str(self.db), *args], catch_exceptions=False)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def order(self, order_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.sandbox.orders_url}/{order_id}", auth=(API_KEY, "")).json()

    def posts(self) -> int:
        return sum(1 for r in self.sandbox.requests() if (r["method"], r["path"]) == ("POST", ORDERS_PATH))

    def staged(self, order_id: str) -> list[str]:
        listing = self.bucket.keys()
        return [k for k in listing if k.startswith(f"planet-staging/{order_id}/")]

    def manifest(self, order_id: str) -> dict[str, dict[str, Any]]:
        """The staged manifest once the order is final (the sandbox writes the bucket in the background)."""
        for _ in range(20):
            if self.order(order_id)["state"] == "success":
                break
        data = json.loads(self.bucket.get(f"planet-staging/{order_id}/manifest.json"))
        return {f["path"]: f for f in data["files"]}


@pytest.fixture
def cloud(s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with Sandbox(tmp_path / "sandbox", file_size=40 * 1024, polls_per_state=0) as sandbox:
        for name, value in {
            "PL_API_KEY": API_KEY, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "FLOWZERO_PLANET_API_URL": sandbox.api_url, "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
            "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url, "FLOWZERO_PLANET_MAX_RETRIES": "1",
            "FLOWZERO_S3_BUCKET_NAME": s3_bucket.name, "FLOWZERO_S3_REGION": "us-east-1",
            "FLOWZERO_DOWNLOADS_MAX_WORKERS": "4", **IMAGE_ONLY,
        }.items():
            monkeypatch.setenv(name, value)
        yield Cloud(sandbox, s3_bucket, tmp_path / "db" / "flowzero.db", [])


def image_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if k.endswith(".tiff")]


def assert_no_secrets(text: str) -> None:
    for secret in (SECRET_KEY, ACCESS_KEY, API_KEY):
        assert secret not in text


def database_bytes(db: Path) -> bytes:
    """Everything the order database wrote to disk (main file, WAL)."""
    return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())


def submit_cloud(cloud: Cloud, *extra: str) -> str:
    done = cloud.run("submit", "--geojson", str(SALINAS), *RANGE, "--delivery", "cloud", "--json", *extra)
    assert done.exit_code == 0, done.output
    [order] = json.loads(done.stdout)["orders"]
    assert (order["outcome"], order["delivery"]) == ("ordered", "cloud")
    return str(order["order_id"])


def test_s3_compatible_submit_arrange_verify_rerun_fetch_and_no_secret_anywhere(
        cloud: Cloud, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    order_id = submit_cloud(cloud)

    # Planet got the s3_compatible block with the keys; the order database only ever saw them masked.
    sent = cloud.order(order_id)["delivery"]["s3_compatible"]
    assert (sent["bucket"], sent["endpoint"], sent["path_prefix"], sent["use_path_style"]) == (
        cloud.bucket.name, cloud.bucket.endpoint_url, "planet-staging/", True)
    assert (sent["access_key_id"], sent["secret_access_key"]) == (ACCESS_KEY, SECRET_KEY)
    recorded = json.loads(cloud.run("db", "get", order_id, "--json").stdout)
    delivery = recorded["metadata"]["delivery"]
    assert (delivery["mode"], delivery["type"], delivery["bucket"]) == ("cloud", "s3_compatible", cloud.bucket.name)
    assert delivery["request"]["s3_compatible"]["secret_access_key"] == "****"

    # The first GET makes the order final: the sandbox has staged everything under planet-staging/<id>/.
    manifest = cloud.manifest(order_id)
    images = {p: f for p, f in manifest.items() if "_AnalyticMS" in p and p.endswith(".tif")}
    assert images and all(f"planet-staging/{order_id}/{p}" in cloud.staged(order_id) for p in manifest)

    caplog.set_level(logging.DEBUG)
    first = cloud.run("--debug", "check-order-status", order_id, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["category"], report["files"], report["downloaded"], report["skipped"]) == (
        "delivered", len(images), len(images), 0)
    assert report["destination"] == f"s3://{cloud.bucket.name}/"
    log_text = caplog.text
    caplog.set_level(logging.WARNING)
    assert "CopyObject" in log_text and "Credential=****" in log_text  # the debug logs were seen, redacted

    keys = cloud.bucket.keys()
    arranged = image_keys(keys)
    assert len(arranged) == len(images) and all(k.startswith(f"{FOLDER}/") for k in arranged)
    for path, entry in images.items():
        item = entry["annotations"]["planet/item_id"]
        key = f"{FOLDER}/{item[:4]}_{item[4:6]}_{item[6:8]}_{item[9:]}.tiff"
        data = cloud.bucket.get(key)
        assert hashlib.sha256(data).hexdigest() == entry["digests"]["sha256"] and len(data) == entry["size"]
        head = cloud.bucket.client.head_object(Bucket=cloud.bucket.name, Key=key)
        assert head["Metadata"]["sha256"] == entry["digests"]["sha256"]
        assert f"planet-staging/{order_id}/{path}" not in keys  # the staged image is gone: stored once
    assert f"planet-staging/{order_id}/manifest.json" in keys  # sidecars and the manifest stay where Planet put them
    assert not [k for k in keys if "flowzero-tmp" in k]
    metadata_text = cloud.bucket.get(f"{FOLDER}/metadata.json").decode()
    metadata = json.loads(metadata_text)
    assert metadata["id"] == order_id and metadata["delivery"]["s3_compatible"]["access_key_id"] == "****"
    stored = json.loads(cloud.run("db", "get", order_id, "--json").stdout)["metadata"]
    assert stored["destination"] == f"s3://{cloud.bucket.name}/" and len(stored["files"]) == len(images)

    # A rerun copies nothing: every image is skipped after one HEAD, nothing changes in the bucket.
    before = {k: cloud.bucket.client.head_object(Bucket=cloud.bucket.name, Key=k)["ETag"] for k in arranged}
    again = json.loads(cloud.run("check-order-status", order_id, "--json").stdout)
    assert (again["category"], again["skipped"], again["downloaded"]) == ("delivered", len(images), 0)
    assert cloud.bucket.keys() == keys
    assert {k: cloud.bucket.client.head_object(Bucket=cloud.bucket.name, Key=k)["ETag"] for k in arranged} == before

    # --output DIR fetches the order from the bucket (the arranged copies, the staged ones being gone).
    out = tmp_path / "local"
    fetched = cloud.run("check-order-status", order_id, "--output", str(out), "--json")
    assert fetched.exit_code == 0, fetched.output
    assert json.loads(fetched.stdout)["downloaded"] == len(images)
    local = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sorted(local) == sorted([*arranged, f"{FOLDER}/metadata.json"])
    assert all(local[k] == cloud.bucket.get(k) for k in arranged)

    assert cloud.posts() == 1
    for text in [*cloud.outputs, log_text, metadata_text, json.dumps(local[f"{FOLDER}/metadata.json"].decode())]:
        assert_no_secrets(text)
    assert SECRET_KEY.encode() not in database_bytes(cloud.db)
    assert ACCESS_KEY.encode() not in database_bytes(cloud.db)


def test_corrupted_staged_image_fails_verification_and_is_never_placed(cloud: Cloud) -> None:
    order_id = submit_cloud(cloud)
    manifest = cloud.manifest(order_id)
    images = sorted(p for p in manifest if "_AnalyticMS" in p and p.endswith(".tif"))
    assert len(images) >= 2, "the test needs two images: one corrupted, one fine"
    bad = f"planet-staging/{order_id}/{images[0]}"
    data = bytearray(cloud.bucket.get(bad))
    data[len(data) // 2] ^= 0xFF  # same size, one byte off: only the digest can tell
    cloud.bucket.client.put_object(Bucket=cloud.bucket.name, Key=bad, Body=bytes(data))

    done = cloud.run("check-order-status", order_id, "--json")

    assert done.exit_code == 1
    report = json.loads(done.stdout)
    assert report["category"] == "incomplete" and report["files"] == len(images) - 1
    [failure] = report["failed_files"]
    assert "mismatch" in failure["error"]
    keys = cloud.bucket.keys()
    item = manifest[images[0]]["annotations"]["planet/item_id"]
    assert not [k for k in keys if item[9:] in k and k.startswith(FOLDER)]  # never at its final key
    assert bad in keys  # kept for inspection, not deleted
    assert len(image_keys(keys)) == len(images) - 1
    assert f"{FOLDER}/metadata.json" not in keys  # the order is not complete: no metadata.json yet
    record = json.loads(cloud.run("db", "get", order_id, "--json").stdout)["metadata"]
    assert not record.get("delivered_at") and record["delivery_failed_files"]


def test_destination_ref_batch_submit_and_batch_check_status(cloud: Cloud, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_ordering_batch import write_gage_shapefile

    registered = cloud.run("destinations", "register", "river-bucket", "--json")
    assert registered.exit_code == 0, registered.output
    ref = json.loads(registered.stdout)["ref"]
    assert ref.startswith("pl:destinations/river-bucket-")
    listed = json.loads(cloud.run("destinations", "list", "--json").stdout)
    assert [(d["name"], d["bucket"], d["ref"]) for d in listed] == [("river-bucket", cloud.bucket.name, ref)]

    monkeypatch.setenv("FLOWZERO_DELIVERY_DESTINATION_REF", ref)
    monkeypatch.setenv("FLOWZERO_DELIVERY_MODE", "cloud")  # the default comes from the config
    monkeypatch.setenv("FLOWZERO_DELIVERY_PATH_PREFIX", "incoming")
    shp = write_gage_shapefile(tmp_path / "gages", [("G1", "2024-01-01", "2024-01-20", "salinas")])
    done = cloud.run("batch-submit", "--shp", str(shp), "--cadence", "weekly", "--json")
    assert done.exit_code == 0, done.output
    batch = json.loads(done.stdout)
    [order] = batch["orders"]
    order_id = order["order_id"]
    # No secret travels with the order: only the reference and the prefix.
    assert cloud.order(order_id)["delivery"] == {"destination": {"ref": ref, "path_prefix": "incoming/"}}

    checked = cloud.run("batch-check-status", batch["batch_id"], "--json")
    assert checked.exit_code == 0, checked.output
    [outcome] = json.loads(checked.stdout)["orders"]
    assert outcome["category"] == "delivered" and outcome["files"] >= 1
    keys = cloud.bucket.keys()
    assert len(image_keys(keys)) == outcome["files"]
    assert all(k.startswith("planetscope analytic/four_bands/G1/") for k in image_keys(keys))
    assert not [k for k in keys if k.startswith(f"incoming/{order_id}/") and k.endswith("AnalyticMS_SR_clip.tif")]

    rerun = json.loads(cloud.run("batch-check-status", batch["batch_id"], "--json").stdout)
    assert rerun["orders"][0]["category"] == "skipped"  # already delivered there
    for text in cloud.outputs:
        assert_no_secrets(text)
    assert SECRET_KEY.encode() not in database_bytes(cloud.db)


def test_bad_cloud_settings_are_one_line_errors_and_order_nothing(cloud: Cloud,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWZERO_DELIVERY_MODE", "teleport")
    done = cloud.run("submit", "--geojson", str(SALINAS), *RANGE)
    assert done.exit_code == 1 and done.stderr.startswith("Error: delivery.mode must be one of download, cloud")
    monkeypatch.delenv("FLOWZERO_DELIVERY_MODE")

    monkeypatch.delenv("FLOWZERO_S3_BUCKET_NAME")
    done = cloud.run("submit", "--geojson", str(SALINAS), *RANGE, "--delivery", "cloud")
    assert done.exit_code == 1 and "s3.bucket_name is not set" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    monkeypatch.setenv("FLOWZERO_DELIVERY_DESTINATION_REF", "pl:destinations/nope-123")
    done = cloud.run("order-basemap", "--mosaic-name", "global_monthly_2024_01_mosaic", "--geojson", str(SALINAS),
                     "--delivery", "cloud")
    assert done.exit_code == 1 and "not registered with Planet" in done.stderr

    monkeypatch.delenv("FLOWZERO_DELIVERY_DESTINATION_REF")
    monkeypatch.setenv("FLOWZERO_S3_BUCKET_NAME", "no-such-bucket-here")
    done = cloud.run("submit", "--geojson", str(SALINAS), *RANGE, "--delivery", "cloud")
    assert done.exit_code == 1 and "Unable to write to and delete from s3://no-such-bucket-here/" in done.stderr
    assert "Traceback" not in done.output
    assert cloud.posts() == 1  # only the refused one reached Planet
    for text in cloud.outputs:
        assert_no_secrets(text)
