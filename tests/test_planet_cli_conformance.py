"""Planet's own SDK and CLI (the `planet` package) against the sandbox: if they parse it, so will anyone.

The CLI reads the API key from PL_API_KEY and never needs planet.com for these commands. Its Orders base URL
is the part before ``/orders/v2`` (the SDK appends that itself), so ``--base-url <sandbox>/compute/ops``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowzero.sandbox import Sandbox
from tests.fixtures.sandbox import order_request, orderable_item_ids, search_request

planet = pytest.importorskip("planet")
pytestmark = pytest.mark.slow  # a dozen CLI start-ups, about a second each

KEY = "conformance-key"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(auth=(KEY, ""), timeout=20) as c:
        yield c


def _planet(*args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    """Run Planet's CLI (its console-script entry point, planet.cli.cli:main, in this interpreter)."""
    env = {**os.environ, "PL_API_KEY": key}
    code = "import sys; from planet.cli.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "--quiet", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_planet_cli_gets_waits_for_and_downloads_an_order(
    sandbox: Sandbox, client: httpx.Client, tmp_path: Path
) -> None:
    items = orderable_item_ids(client, sandbox, 2)
    order_id = client.post(sandbox.orders_url, json=order_request(items, name="conformance")).json()["id"]
    base = ["orders", "--base-url", f"{sandbox.url}/compute/ops"]

    got = _planet(*base, "get", order_id)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["id"] == order_id

    waited = _planet(*base, "wait", "--delay", "0", order_id)
    assert waited.returncode == 0, waited.stderr
    assert "success" in waited.stdout

    target = tmp_path / "planet-download"
    target.mkdir()
    downloaded = _planet(*base, "download", "--checksum", "MD5", "--directory", str(target), order_id)
    assert downloaded.returncode == 0, downloaded.stderr
    again = _planet(*base, "download", "--checksum", "SHA256", "--directory", str(target), order_id)
    assert again.returncode == 0, again.stderr  # already there: only the checksums are validated

    order = client.get(f"{sandbox.orders_url}/{order_id}").json()
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == sorted(r["name"] for r in order["_links"]["results"])
    for result in order["_links"]["results"]:
        assert (target / result["name"]).read_bytes() == client.get(result["location"]).content
    manifest = json.loads((target / order_id / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (target / order_id / entry["path"]).read_bytes()
        assert hashlib.md5(data).hexdigest() == entry["digests"]["md5"]

    listed = _planet(*base, "list", "--name", "conformance")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines() if line.strip()] == [order_id]


def test_planet_cli_reports_a_rejected_key_and_a_missing_order(sandbox: Sandbox) -> None:
    base = ["orders", "--base-url", f"{sandbox.url}/compute/ops"]
    rejected = _planet(*base, "get", "00000000-0000-0000-0000-000000000000", key="invalid-key")
    assert rejected.returncode != 0 and "API key" in rejected.stderr
    missing = _planet(*base, "get", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_planet_cli_cancels_an_order(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 1)
    order_id = client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    cancelled = _planet("orders", "--base-url", f"{sandbox.url}/compute/ops", "cancel", order_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert client.get(f"{sandbox.orders_url}/{order_id}").json()["state"] == "cancelled"


def test_planet_cli_mosaics_info_list_search_and_download(sandbox: Sandbox, tmp_path: Path) -> None:
    base = ["mosaics", "--base-url", f"{sandbox.url}/basemaps/v1"]
    info = _planet(*base, "info", "global_monthly_2024_01_mosaic")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["name"] == "global_monthly_2024_01_mosaic"
    listed = _planet(*base, "list", "--name-contains", "global_monthly_2023")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 12  # all pages followed
    bbox = "-121.5,38.5,-121.4,38.58"
    searched = _planet(*base, "search", "global_monthly_2024_01_mosaic", "--bbox", bbox)
    assert searched.returncode == 0, searched.stderr
    quads = json.loads(searched.stdout)
    assert quads and all(q["id"].startswith("L15-") for q in quads)
    out = tmp_path / "quads"
    out.mkdir()
    downloaded = _planet(
        *base, "download", "global_monthly_2024_01_mosaic", "--bbox", bbox, "--output-dir", str(out)
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{q['id']}.tif" for q in quads)
    assert all((out / f"{q['id']}.tif").read_bytes()[:4] == b"II*\x00" for q in quads)


def test_planet_sdk_data_search_follows_every_page(
    sandbox: Sandbox, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK checks item types against a spec it fetches from planet.com; give it the answer offline.
    from planet import specs

    monkeypatch.setattr(
        specs.PRODUCT_BUNDLES,
        "cache",
        {"bundles": {}, "bundle_names": [], "item_types": {"PSScene"}},
        raising=False,
    )
    body = search_request("2024-01-01", "2024-12-31")

    async def search() -> list[dict]:
        async with planet.Session(auth=planet.Auth.from_key(KEY)) as session:
            data = planet.DataClient(session, base_url=sandbox.api_url)
            return [
                item
                async for item in data.search(
                    ["PSScene"], search_filter=body["filter"], sort="acquired asc", limit=0
                )
            ]

    found = asyncio.run(search())
    page = client.post(f"{sandbox.api_url}/quick-search", json=body, params={"_sort": "acquired asc"}).json()
    expected = page["features"]
    while page["_links"].get("_next"):
        page = client.get(page["_links"]["_next"]).json()
        expected += page["features"]
    assert len(found) > 250  # more than one page
    assert [f["id"] for f in found] == [f["id"] for f in expected]
    assert found == expected
