"""The STAC catalog at every destination, end to end: sandbox orders placed by `submit`, delivered by
`check-order-status` to a folder and to S3 (moto), then read back with pystac (validated offline) and loaded
with odc-stac. Also: reruns write nothing, concurrent writers lose no item, `flowzero stac DEST` relinks."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flowzero.cli import cli
from flowzero.sandbox.server import Sandbox
from tests.fixtures.s3 import S3Bucket
from tests.test_cloud_delivery import cloud, submit_cloud  # noqa: F401 (the cloud-delivery fixture, by name)

AOI_FILE = Path(__file__).parent / "data" / "aoi" / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
AOI = "SalinasRiver"
FOLDER = f"planetscope analytic/four_bands/{AOI}"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A sandbox with one weekly order of January 2024 placed by `flowzero submit`; yields the database."""
    with Sandbox(tmp_path / "sandbox", file_size=24 * 1024, polls_per_state=0) as sb:
        for key, value in {"PL_API_KEY": "k", "FLOWZERO_PLANET_API_URL": sb.api_url,
                           "FLOWZERO_PLANET_ORDERS_URL": sb.orders_url, "FLOWZERO_PLANET_BASEMAPS_URL": sb.basemaps_url,
                           "FLOWZERO_PLANET_MAX_RETRIES": "2"}.items():
            monkeypatch.setenv(key, value)
        db = tmp_path / "flowzero.db"
        placed = run(db, "submit", "--geojson", str(AOI_FILE), "--start-date", "2024-01-01", "--end-date",
                     "2024-01-31", "--cadence", "weekly", "--json")
        assert placed.exit_code == 0, placed.output
        yield db


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--database-path", str(db), *args], catch_exceptions=False)


def order_of(db: Path) -> Any:
    from flowzero.storage.sqlite import SqliteOrderStore

    with SqliteOrderStore(db) as store:
        [order] = store.list_orders()
    return order


def deliver(db: Path, output: str, *extra: str) -> dict[str, Any]:
    done = run(db, "check-order-status", order_of(db).order_id, "--wait", "--output", output, "--json", *extra)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_folder_delivery_is_a_valid_catalog_that_odc_stac_loads(site: Path, tmp_path: Path,
                                                                  stac_offline: None) -> None:
    import odc.stac
    import pystac

    out = tmp_path / "out"
    report = deliver(site, str(out))
    order = order_of(site)
    assert report["catalog"] == str(out / "stac" / "catalog.json")

    catalog = pystac.Catalog.from_file(report["catalog"])
    catalog.validate_all()
    [collection] = list(catalog.get_children())
    assert collection.id == AOI and collection.license == "proprietary"
    assert [p.name for p in collection.providers] == ["Planet Labs PBC", "flowzero"]
    items = sorted(collection.get_items(), key=lambda i: i.datetime)
    scenes = order.metadata["scenes"]
    assert sorted(i.id for i in items) == sorted(scenes) and len(items) == order.scenes_selected >= 3
    for item in items:
        props = item.properties
        assert props["flowzero:order_id"] == order.order_id and props["flowzero:order_name"] == order.order_name
        assert props["flowzero:period"] == scenes[item.id]["period"] and props["flowzero:cadence"] == "weekly"
        assert 0 <= props["eo:cloud_cover"] <= 100 and "pl:clear_percent" in props and "pl:visible_percent" in props
        assert props["pl:item_type"] == "PSScene"
        assert set(item.assets) == {"image", "udm2", "metadata"}
        assert item.assets["udm2"].roles == ["cloud", "data-mask"] and item.assets["image"].roles == ["data"]
        for asset in item.assets.values():
            path = Path(asset.get_absolute_href())
            assert path.is_file() and path.parent == out / FOLDER
            assert asset.extra_fields["file:size"] == path.stat().st_size
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
        assert "token" not in json.dumps(item.to_dict())
    assert collection.extent.temporal.intervals[0][0] == items[0].datetime

    data = odc.stac.load(items, bands=["image", "udm2"], crs="EPSG:32610", resolution=60, chunks=None)
    assert list(data.data_vars) == ["image", "udm2"]
    assert data.image.dims == ("time", "y", "x") and data.image.shape[0] == len(items)
    assert 200 < data.sizes["x"] < 2000 and 200 < data.sizes["y"] < 2000  # the AOI at 60 m
    assert [t.astype("datetime64[s]").item() for t in data.time.values] == [
        i.datetime.replace(tzinfo=None, microsecond=0) for i in items]
    assert float(data.image.max()) > 0 and set(float(v) for v in data.udm2.fillna(0).values.ravel()) <= {0.0, 1.0}

    # A rerun writes nothing (same bytes, same times), adds nothing.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "stac").rglob("*.json")}
    again = deliver(site, str(out))
    assert again["skipped"] == again["files"] and again["catalog"] == report["catalog"]
    assert {p: p.stat().st_mtime_ns for p in (out / "stac").rglob("*.json")} == stamps


def test_udm2_can_be_left_out_and_the_items_say_so(site: Path, tmp_path: Path, stac_offline: None) -> None:
    import pystac

    out = tmp_path / "out"
    report = deliver(site, str(out), "--assets", "image")
    assert not list((out / FOLDER).glob("*_udm2.tif")) and list((out / FOLDER).glob("*.tiff"))
    items = list(pystac.Catalog.from_file(report["catalog"]).get_items(recursive=True))
    assert items and all(set(i.assets) == {"image"} for i in items)
    bad = run(site, "check-order-status", order_of(site).order_id, "--output", str(out), "--assets", "udm3")
    assert bad.exit_code == 2 and "unknown asset 'udm3'" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("downloader", ["threads", "fast"])
def test_an_s3_delivery_writes_the_same_catalog_with_s3_hrefs(site: Path, s3_bucket: S3Bucket, downloader: str,
                                                              stac_offline: None) -> None:
    import pystac

    report = deliver(site, f"s3://{s3_bucket.name}/river", "--downloader", downloader)
    assert report["catalog"] == f"s3://{s3_bucket.name}/river/stac/catalog.json"
    root = json.loads(s3_bucket.get("river/stac/catalog.json"))
    assert [link["href"] for link in root["links"] if link["rel"] == "child"] == [f"./{AOI}/collection.json"]
    collection = json.loads(s3_bucket.get(f"river/stac/{AOI}/collection.json"))
    pystac.validation.validate_dict(collection)
    links = [link["href"] for link in collection["links"] if link["rel"] == "item"]
    assert len(links) == order_of(site).scenes_selected
    for href in links:
        item = json.loads(s3_bucket.get(f"river/stac/{AOI}/items/{href.rsplit('/', 1)[-1]}"))
        pystac.validation.validate_dict(item)
        image = item["assets"]["image"]["href"]
        assert image.startswith(f"s3://{s3_bucket.name}/river/{FOLDER}/")
        key = image.split("/", 3)[3]
        assert item["assets"]["image"]["file:checksum"] == "1220" + hashlib.sha256(s3_bucket.get(key)).hexdigest()


def test_stac_command_relinks_what_is_there_and_refuses_a_missing_folder(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    deliver(site, str(out))
    collection = out / "stac" / AOI / "collection.json"
    before = collection.read_bytes()
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    (moved / "stac" / "catalog.json").unlink()
    (moved / "stac" / AOI / "collection.json").unlink()
    rebuilt = run(site, "stac", str(moved))
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (moved / "stac" / AOI / "collection.json").read_bytes() == before
    assert json.loads((moved / "stac" / "catalog.json").read_text())["id"] == "flowzero"
    missing = run(site, "stac", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "no folder" in missing.output and "Traceback" not in missing.output


def test_cloud_delivery_writes_the_catalog_into_the_bucket(request: pytest.FixtureRequest, stac_offline: None) -> None:
    import pystac

    site = request.getfixturevalue("cloud")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name in ("FLOWZERO_DELIVERY_ASSETS", "FLOWZERO_DELIVERY_CATALOG"):  # the defaults, not the old layout
        monkeypatch.delenv(name)
    order_id = submit_cloud(site)
    site.manifest(order_id)
    done = site.run("check-order-status", order_id, "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    bucket = site.bucket
    assert report["catalog"] == f"s3://{bucket.name}/stac/catalog.json"
    collection = json.loads(bucket.get(f"stac/{AOI}/collection.json"))
    pystac.validation.validate_dict(collection)
    hrefs = [link["href"].rsplit("/", 1)[-1] for link in collection["links"] if link["rel"] == "item"]
    assert hrefs
    for name in hrefs:
        item = json.loads(bucket.get(f"stac/{AOI}/items/{name}"))
        pystac.validation.validate_dict(item)
        assert item["properties"]["flowzero:order_id"] == order_id
        for kind in ("image", "udm2"):
            href = item["assets"][kind]["href"]
            assert href.startswith(f"s3://{bucket.name}/{FOLDER}/")
            assert hashlib.sha256(bucket.get(href.split("/", 3)[3])).hexdigest() == (
                item["assets"][kind]["file:checksum"][4:])
        assert "s3cr3t" not in json.dumps(item)


def _item(name: str, day: int) -> bytes:
    from flowzero.delivery.stac.catalog import dump

    return dump({"type": "Feature", "id": name, "bbox": [-121.6, 36.6, -121.5, 36.7],
                 "properties": {"datetime": f"2024-01-{day:02d}T18:00:00Z"}})


def test_a_writer_that_listed_too_early_relinks_what_another_added(tmp_path: Path) -> None:
    from flowzero.delivery.destination import Destination
    from flowzero.delivery.stac.catalog import collection_key, item_key, relink_collection
    from flowzero.delivery.stac.files import CatalogFiles

    destination = Destination("local", str(tmp_path))

    class Interleaved(CatalogFiles):
        """Writer A: right after its first listing, writer B adds an item and relinks, then A goes on."""

        listed = 0

        def keys(self, prefix: str) -> list[str]:
            found = super().keys(prefix)
            self.listed += 1
            if self.listed == 1:
                other = CatalogFiles(destination)
                other.write(item_key("G", "b"), _item("b", 2))
                assert relink_collection(other, "G") == 2
            return found  # A's stale view: only its own item

    first = Interleaved(destination)
    first.write(item_key("G", "a"), _item("a", 1))
    assert relink_collection(first, "G") == 2 and first.listed >= 2  # A re-checked and relinked
    links = [link["href"] for link in json.loads((tmp_path / collection_key("G")).read_text())["links"]
             if link["rel"] == "item"]
    assert links == ["./items/a.json", "./items/b.json"]


def test_eight_concurrent_writers_lose_no_item(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from flowzero.delivery.destination import Destination
    from flowzero.delivery.stac.catalog import collection_key, item_key, relink_collection, relink_root
    from flowzero.delivery.stac.files import CatalogFiles

    def writer(n: int) -> None:
        files = CatalogFiles(Destination("local", str(tmp_path)))
        files.write(item_key("G", f"i{n}"), _item(f"i{n}", n + 1))
        relink_collection(files, "G")
        relink_root(files)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    collection = json.loads((tmp_path / collection_key("G")).read_text())
    assert sorted(link["title"] for link in collection["links"] if link["rel"] == "item") == [f"i{n}" for n in range(8)]
    assert collection["extent"]["temporal"]["interval"] == [["2024-01-01T18:00:00Z", "2024-01-08T18:00:00Z"]]


def test_basemap_quads_are_items_of_their_aoi(site: Path, tmp_path: Path, stac_offline: None) -> None:
    import pystac

    placed = run(site, "order-basemap", "--mosaic-name", "global_monthly_2024_01_mosaic", "--geojson", str(AOI_FILE),
                 "--json")
    assert placed.exit_code == 0, placed.output
    [order] = json.loads(placed.stdout)["orders"]
    out = tmp_path / "out"
    done = run(site, "check-order-status", order["order_id"], "--wait", "--output", str(out), "--json")
    assert done.exit_code == 0, done.output
    catalog = pystac.Catalog.from_file(json.loads(done.stdout)["catalog"])
    catalog.validate_all()
    quads = [i for i in catalog.get_items(recursive=True) if i.properties["pl:item_type"] == "quad"]
    keys = sorted((out / "basemaps" / AOI / "2024_01").glob("*.tif"))
    assert quads and len(quads) == len(keys)
    for quad in quads:
        assert quad.id.startswith("global_monthly_2024_01_mosaic-L15-")
        assert quad.properties["flowzero:period"] == "2024-01"
        assert quad.properties["start_datetime"] == "2024-01-01T00:00:00Z"
        assert Path(quad.assets["image"].get_absolute_href()) in keys


def test_submit_records_its_search_and_the_calendar_shows_the_delivery(site: Path, tmp_path: Path) -> None:
    before = json.loads(run(site, "coverage", "--json").stdout)
    [row] = before["gages"]
    assert row["gage"] == AOI and {c["state"] for c in row["cells"]} <= {"ordered", "no-scenes", "not-selected"}
    deliver(site, str(tmp_path / "out"))
    after = json.loads(run(site, "coverage", "--json").stdout)
    assert after["cadence"] == "weekly" and after["counts"]["delivered"] == order_of(site).scenes_selected
    assert after["counts"]["ordered"] == 0 and after["counts"]["not-searched"] == 0
