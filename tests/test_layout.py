"""The delivery layout: folders users' pipelines read, unsafe names refused, jobs from an order."""

from __future__ import annotations

import json

import pytest

from flowzero.config import Config
from flowzero.delivery.destination import Destination, parse_output
from flowzero.delivery.jobs import metadata_document, plan_delivery
from flowzero.delivery.layout import (
    UnsafeNameError,
    bands_folder,
    basemap_key,
    item_id_from_filename,
    mosaic_period,
    psscope_key,
    scene_file_name,
    split_result_name,
)
from flowzero.delivery.manifest import manifest_link, parse_manifest
from flowzero.errors import ConfigError
from flowzero.models import Order

ITEM = "20240105_181001_00_2262"


def test_scene_names_follow_the_old_tool() -> None:
    assert scene_file_name(ITEM) == "2024_01_05_181001_00_2262.tiff"
    assert scene_file_name("20231231_235959_1057") == "2023_12_31_235959_1057.tiff"
    assert item_id_from_filename(f"{ITEM}_3B_AnalyticMS_SR_clip.tif") == ITEM
    assert item_id_from_filename(f"{ITEM}_3B_AnalyticMS_SR_8b_clip.tif") == ITEM
    assert item_id_from_filename("quad_1234.tif") is None


def test_psscope_keys_copy_only_the_analytic_image() -> None:
    def key(name: str, bands: str | None = "four_bands") -> str | None:
        return psscope_key("SalinasRiver", bands, f"order-1/PSScene/{name}")

    assert key(f"{ITEM}_3B_AnalyticMS_SR_clip.tif") == (
        "planetscope analytic/four_bands/SalinasRiver/2024_01_05_181001_00_2262.tiff")
    assert key(f"{ITEM}_3B_AnalyticMS_SR_8b_clip.tif", None) == (
        "planetscope analytic/eight_bands/SalinasRiver/2024_01_05_181001_00_2262.tiff")
    sidecars = (f"{ITEM}_3B_udm2_clip.tif", f"{ITEM}_3B_AnalyticMS_metadata_clip.xml",
                f"{ITEM}_metadata.json")
    for sidecar in sidecars:
        assert key(sidecar) is None
    # the manifest's item id wins over the file name
    assert psscope_key("A", "4", "x/PSScene/odd_AnalyticMS.tif", item_id="20200101_000000_00_0000") == (
        "planetscope analytic/four_bands/A/2020_01_01_000000_00_0000.tiff")


def test_band_folder_names() -> None:
    assert bands_folder("four_bands") == "four_bands"
    assert bands_folder("8") == "eight_bands"
    assert bands_folder(None, "x_8b_clip.tif") == "eight_bands"
    assert bands_folder(None, "x_clip.tif") == "four_bands"


def test_basemap_keys_use_the_mosaic_month() -> None:
    assert mosaic_period("global_monthly_2024_01_mosaic") == "2024_01"
    assert mosaic_period("planet_medres_normalized_analytic_2023-06_mosaic") == "unknown_date"
    assert basemap_key("Salinas", "global_monthly_2024_01_mosaic", "o/quads/L15-0345E-1234N.tif") == (
        "basemaps/Salinas/2024_01/L15-0345E-1234N.tif")
    assert basemap_key("Salinas", "global_monthly_2024_01_mosaic", "o/manifest.json") is None


@pytest.mark.parametrize("name", [
    "../etc/passwd", "o/../../x.tif", "/abs/x.tif", "o\\..\\x.tif", "o/x\x00.tif", "C:/x.tif", "o//x.tif",
    "o/./x.tif", "o/" + "a" * 256 + ".tif", "",
])
def test_unsafe_result_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        split_result_name(name)
    with pytest.raises(UnsafeNameError):
        basemap_key("A", "global_monthly_2024_01_mosaic", name)


def test_unsafe_aoi_names_are_refused() -> None:
    with pytest.raises(UnsafeNameError):
        psscope_key("../up", "four_bands", f"o/PSScene/{ITEM}_3B_AnalyticMS_SR_clip.tif")


def test_output_parsing() -> None:
    config = Config()
    with pytest.raises(ConfigError, match=r"s3\.bucket_name"):
        parse_output("s3", config)
    config.s3.bucket_name = "rivers"
    assert parse_output("s3", config) == Destination("s3", "rivers", "")
    dest = parse_output("s3://other/some/prefix/", config)
    assert dest == Destination("s3", "other", "some/prefix")
    assert dest.target("basemaps/A/2024_01/q.tif") == "s3://other/some/prefix/basemaps/A/2024_01/q.tif"
    assert dest.describe() == "s3://other/some/prefix/"
    local = parse_output("out", config)
    assert local.kind == "local" and local.root.endswith("/out")
    assert local.target("a b/c.tif") == f"{local.root}/a b/c.tif"
    with pytest.raises(UnsafeNameError):
        local.target("../c.tif")


def _order(results: list[tuple[str, str]], items: list[str], state: str = "success") -> dict:
    return {
        "id": "order-1", "state": state, "name": "x",
        "products": [{"item_ids": items, "item_type": "PSScene", "product_bundle": "analytic_sr_udm2"}],
        "_links": {"results": [
            {"name": name, "location": f"http://127.0.0.1:1/download/{name}?token=SECRET",
             "delivery": delivery, "expires_at": "2030-01-01T00:00:00Z"}
            for name, delivery in results
        ]},
    }


def test_plan_delivery_from_an_order_and_its_manifest() -> None:
    second = "20240112_180000_11_2475"
    names = [f"order-1/PSScene/{ITEM}_3B_AnalyticMS_SR_clip.tif", f"order-1/PSScene/{ITEM}_3B_udm2_clip.tif",
             f"order-1/PSScene/{ITEM}_metadata.json", "order-1/PSScene/../../evil_3B_AnalyticMS_SR_clip.tif",
             "order-1/manifest.json"]
    order = _order([(n, "success") for n in names], [ITEM, second, "20240120_000000_00_0000"], "partial")
    manifest = parse_manifest({"files": [
        {"path": f"PSScene/{ITEM}_3B_AnalyticMS_SR_clip.tif", "size": 1234, "media_type": "image/tiff",
         "digests": {"md5": "AB" * 16, "sha256": "cd" * 32}, "annotations": {"planet/item_id": ITEM}},
        {"path": "broken"},
    ]})
    record = Order(order_id="order-1", aoi_name="Salinas", num_bands="four_bands")

    plan = plan_delivery(order, record, manifest, Destination("s3", "b", "p"))

    assert plan.keys == [f"planetscope analytic/four_bands/Salinas/{scene_file_name(ITEM)}"]
    [job] = plan.jobs
    assert job.destination == f"s3://b/p/{plan.keys[0]}"
    assert (job.size, job.md5, job.sha256) == (1234, "ab" * 16, "cd" * 32)
    assert job.url.endswith("?token=SECRET")
    assert len(plan.refused) == 1 and "SECRET" not in (plan.refused[0].error or "")
    assert plan.missing == [second, "20240120_000000_00_0000"]
    assert plan.metadata_key == "planetscope analytic/four_bands/Salinas/metadata.json"
    assert manifest_link(order)["name"] == "order-1/manifest.json"


def test_metadata_document_has_no_tokens() -> None:
    order = _order([("order-1/PSScene/a.tif", "success")], [])
    text = metadata_document(order).decode()
    assert "SECRET" not in text
    assert json.loads(text)["id"] == "order-1"


def test_basemap_plan_uses_the_recorded_mosaic() -> None:
    order = _order([("order-2/quads/L15-1.tif", "success"), ("order-2/quads/L15-2.tif", "failed")], [])
    order["source_type"] = "basemaps"
    record = Order(order_id="order-2", aoi_name="Salinas", order_type="Basemap (Composite)",
                   mosaic_name="global_monthly_2024_03_mosaic")

    plan = plan_delivery(order, record, None, Destination("local", "/data"))

    assert plan.keys == ["basemaps/Salinas/2024_03/L15-1.tif"]
    assert plan.jobs[0].destination == "/data/basemaps/Salinas/2024_03/L15-1.tif"
    assert plan.unverified == ["order-2/quads/L15-1.tif"]
    assert plan.missing == ["L15-2.tif (delivery failed)"]
