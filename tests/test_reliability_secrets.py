"""Reliability items 14 and 15: secrets never leak, and what flowzero creates is private to the user.

Item 14 runs real `flowzero --debug` processes (DEBUG logging of flowzero, httpx, httpcore and botocore, and
tracebacks) through forced failures: Planet answering 503 until retries run out, a 429, S3 refusing the
credentials (the fault-injecting proxy from test_reliability_s3) for the threads and fast downloaders, a
corrupted download, plus a normal delivery. Everything they print, the order database (with its WAL) and the
delivered metadata.json are then searched for the API keys (raw and base64, as in a Basic auth header), every
download token Planet issued, the AWS secret key, and any S3 request signature.

Item 15 runs flowzero with umask 000 in a fresh HOME and checks the modes of what it created.
"""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowzero.models import Order
from flowzero.sandbox import Sandbox
from tests.test_reliability_s3 import FaultyS3Proxy

API_KEY = "PLAKsecret0123456789abcdefREL"
OTHER_KEY = "PLAKflag9876543210fedcbaREL"
AWS_ID = "AKIARELIABILITYTEST1"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYRELIABILITY"
SALINAS = Path(__file__).parent / "data" / "aoi" / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
DATES = ("--start-date", "2024-01-01", "--end-date", "2024-01-31")
CLIP = {"type": "Polygon", "coordinates": [[[-121.66, 36.60], [-121.60, 36.60], [-121.60, 36.66],
                                            [-121.66, 36.66], [-121.66, 36.60]]]}
_SIGNATURE = re.compile(r"(?:x-amz-)?signature=(?!\*\*\*\*)[0-9a-f]{16,}", re.IGNORECASE)


def secret_forms(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode(), base64.b64encode(f"{value}:".encode()).decode()]


@pytest.fixture
def proxy(s3_server: str) -> Iterator[FaultyS3Proxy]:
    running = FaultyS3Proxy(s3_server)
    yield running
    running.close()


def test_no_secret_in_output_logs_tracebacks_database_or_json(sandbox: Sandbox, s3_bucket: Any,
                                                               proxy: FaultyS3Proxy, tmp_path: Path) -> None:
    from flowzero.planet.client import PlanetClient
    from flowzero.storage.sqlite import SqliteOrderStore

    db = tmp_path / "db" / "orders.db"
    env = {**os.environ, "PL_API_KEY": API_KEY, "AWS_ACCESS_KEY_ID": AWS_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
           "FLOWZERO_PLANET_API_URL": sandbox.api_url, "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
           "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url, "FLOWZERO_PLANET_MAX_RETRIES": "1",
           "FLOWZERO_DATABASE_PATH": str(db), "AWS_ENDPOINT_URL_S3": proxy.url}
    with PlanetClient(API_KEY, api_url=sandbox.api_url, orders_url=sandbox.orders_url,
                      basemaps_url=sandbox.basemaps_url) as planet:
        order_id = planet.create_order({"name": "secret-test", "products": [
            {"item_ids": ["20240105_181001_00_2262"], "item_type": "PSScene", "product_bundle": "analytic_udm2"}],
            "tools": [{"clip": {"aoi": CLIP}}]})["id"]
        planet.poll_interval = 0.01
        planet.wait_order(order_id)
    with SqliteOrderStore(db) as store:
        store.save_order(Order(order_id=order_id, aoi_name="SalinasRiver", num_bands="four_bands"))
    out = tmp_path / "out"
    transcript: list[str] = []

    def flowzero(*args: str, expect: int) -> str:
        done = subprocess.run([sys.executable, "-m", "flowzero", "--debug", *args], env=env, capture_output=True,
                              text=True, timeout=180)
        transcript.append(done.stdout + done.stderr)
        assert done.returncode == expect, done.stderr[-3000:]
        return done.stderr

    sandbox.set_faults(server_errors=10, retry_after=0)  # Planet down: retries run out, --debug prints the traceback
    failed_search = flowzero("search-scenes", "--geojson", str(SALINAS), *DATES, "--json", expect=1)
    assert "Traceback" in failed_search  # the test sees what --debug shows
    flowzero("--api-key", OTHER_KEY, "search-scenes", "--geojson", str(SALINAS), *DATES, expect=1)
    sandbox.reset_faults()
    sandbox.set_faults(rate_limit=1, retry_after=0)
    flowzero("submit", "--geojson", str(SALINAS), *DATES, "--cadence", "monthly", "--json", expect=0)
    proxy.deny = True  # S3 refuses the credentials: botocore logs the signed requests at DEBUG
    refused = flowzero("check-order-status", order_id, "--output", f"s3://{s3_bucket.name}/x", "--downloader",
                       "threads", "--json", expect=1)
    assert "Authorization" in refused and "Signature=****" in refused  # logged, and redacted
    flowzero("check-order-status", order_id, "--output", f"s3://{s3_bucket.name}/x", "--downloader", "fast",
             "--json", expect=1)
    sandbox.set_faults(flip_byte=3)  # manifest.json corrupted, then the image: failures with tokened URLs around
    flowzero("check-order-status", order_id, "--output", str(out), "--json", expect=1)
    sandbox.reset_faults()
    delivered = flowzero("check-order-status", order_id, "--output", str(out), "--json", expect=0)
    assert "DEBUG" in delivered and "/download/" in delivered  # download requests were logged

    tokens = set()
    for order in httpx.get(sandbox.orders_url, auth=(API_KEY, "")).json()["orders"]:
        for result in order["_links"].get("results") or []:
            tokens.add(result["location"].split("token=")[1])
    assert tokens
    text = "\n".join(transcript)
    stored = b"".join(p.read_bytes() for p in db.parent.iterdir())  # the database and its WAL
    files = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    secrets = [*secret_forms(API_KEY), *secret_forms(OTHER_KEY), AWS_SECRET, *tokens]
    leaks = [s for s in secrets if s in text or s.encode() in stored or s.encode() in files]
    assert leaks == []
    assert _SIGNATURE.findall(text) == []
    assert AWS_ID not in text


# -- item 15 ------------------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_what_flowzero_creates_is_private_even_with_umask_000(tmp_path: Path, sandbox: Sandbox) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PL_API_KEY": API_KEY,
           "FLOWZERO_PLANET_API_URL": sandbox.api_url, "FLOWZERO_PLANET_ORDERS_URL": sandbox.orders_url,
           "FLOWZERO_PLANET_BASEMAPS_URL": sandbox.basemaps_url}
    env.pop("FLOWZERO_DATABASE_PATH", None)

    def flowzero(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowzero", *args], env=env, capture_output=True, text=True,
                              timeout=120, preexec_fn=lambda: os.umask(0))

    assert flowzero("db", "stats").returncode == 0  # creates the default database
    with httpx.Client(auth=(API_KEY, "")) as client:
        order_id = client.post(sandbox.orders_url, json={"name": "modes", "products": [
            {"item_ids": ["20240105_181001_00_2262"], "item_type": "PSScene",
             "product_bundle": "analytic_udm2"}]}).json()["id"]
        while client.get(f"{sandbox.orders_url}/{order_id}").json()["state"] != "success":
            pass
    done = flowzero("check-order-status", order_id, "--output", str(tmp_path / "out"))  # takes a delivery lock
    assert done.returncode == 0, done.stderr

    state = home / ".flowzero"
    created = [state, *state.rglob("*")]
    assert {p.name for p in created} >= {".flowzero", "flowzero.db", "locks"}
    for path in created:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_the_sandbox_creates_its_default_folder_in_flowzeros_home_privately(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "flowzero", "sandbox", "serve", "--port", "0"],
                              env={**os.environ, "HOME": str(home)}, stdout=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.umask(0))
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("Press Ctrl-C"):
                break
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert _mode(home / ".flowzero") == 0o700  # where the order database will go
    assert _mode(home / ".flowzero" / "sandbox") == 0o700
