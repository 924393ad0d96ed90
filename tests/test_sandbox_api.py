"""The sandbox over real HTTP on 127.0.0.1: searches, orders, basemaps, auth and persistence."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest

from flowzero.sandbox import Sandbox
from tests.fixtures.sandbox import (
    SANDBOX_AOI,
    SANDBOX_FILE_SIZE,
    order_request,
    orderable_item_ids,
    search_request,
    wait_final,
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(auth=("any-key", ""), timeout=20) as c:
        yield c


def _all_pages(client: httpx.Client, first: httpx.Response) -> list[list[dict]]:
    pages = [first.json()]
    while pages[-1]["_links"].get("_next"):
        response = client.get(pages[-1]["_links"]["_next"])
        assert response.status_code == 200
        pages.append(response.json())
    return [page["features"] for page in pages]


# -- Data API --


def test_search_pages_follow_next_until_absent(sandbox: Sandbox, client: httpx.Client) -> None:
    body = search_request("2024-01-01", "2024-03-31")
    whole = client.post(f"{sandbox.api_url}/quick-search", json=body)
    assert whole.status_code == 200 and whole.json()["type"] == "FeatureCollection"
    everything = whole.json()["features"]
    assert "_next" not in whole.json()["_links"] and len(everything) > 40
    paged = _all_pages(client, client.post(f"{sandbox.api_url}/quick-search?_page_size=7", json=body))
    assert len(paged) == math.ceil(len(everything) / 7)
    assert all(len(page) == 7 for page in paged[:-1]) and 1 <= len(paged[-1]) <= 7
    assert [f["id"] for page in paged for f in page] == [f["id"] for f in everything]
    published = [f["properties"]["published"] for f in everything]
    assert published == sorted(published, reverse=True)  # Planet's default sort: published desc
    ascending = client.post(
        f"{sandbox.api_url}/quick-search", params={"_sort": "acquired asc"}, json=body
    ).json()
    acquired = [f["properties"]["acquired"] for f in ascending["features"]]
    assert acquired == sorted(acquired)


def test_search_applies_every_filter_server_side(sandbox: Sandbox, client: httpx.Client) -> None:
    unfiltered = client.post(
        f"{sandbox.api_url}/quick-search", json=search_request("2024-01-01", "2024-06-30")
    )
    filters = (
        {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": 0.1}},
        {"type": "AssetFilter", "config": ["ortho_analytic_4b_sr"]},
        {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]},
        {"type": "PermissionFilter", "config": ["assets:download"]},
    )
    body = search_request("2024-02-01", "2024-05-31", None, *filters)
    found = client.post(f"{sandbox.api_url}/quick-search", json=body).json()["features"]
    everything = unfiltered.json()["features"]
    expected = [
        f
        for f in everything
        if "2024-02-01" <= f["properties"]["acquired"][:10] <= "2024-05-31"
        and f["properties"]["cloud_cover"] <= 0.1
        and "ortho_analytic_4b_sr" in f["assets"]
        and f["properties"]["quality_category"] == "standard"
    ]
    assert found and sorted(f["id"] for f in found) == sorted(f["id"] for f in expected)
    assert len(found) < len(everything)


def test_search_only_returns_scenes_touching_the_geometry(sandbox: Sandbox, client: httpx.Client) -> None:
    corner = {
        "type": "Polygon",
        "coordinates": [
            [[-121.50, 38.50], [-121.499, 38.50], [-121.499, 38.501], [-121.50, 38.501], [-121.50, 38.50]]
        ],
    }
    whole = client.post(f"{sandbox.api_url}/quick-search", json=search_request()).json()["features"]
    geometry_only = search_request()
    geometry_only["filter"]["config"].append(
        {"type": "GeometryFilter", "field_name": "geometry", "config": corner}
    )
    found = client.post(f"{sandbox.api_url}/quick-search", json=geometry_only).json()["features"]
    assert 0 < len(found) < len(whole)  # partial footprints miss the south-west corner


@pytest.mark.parametrize(
    ("body", "query", "fragment"),
    [
        (b"{not json", "", "not valid JSON"),
        (json.dumps({"filter": {"type": "AndFilter", "config": []}}).encode(), "", "item_types"),
        (json.dumps(search_request()).encode(), "?_page_size=251", "_page_size"),
        (
            json.dumps({"item_types": ["PSScene"], "filter": {"type": "AndFilter", "config": []}}).encode(),
            "",
            "GeometryFilter",
        ),
        (
            json.dumps({"item_types": ["PSScene"], "filter": {"type": "Nope"}}).encode(),
            "",
            "unknown filter type",
        ),
    ],
)
def test_bad_searches_get_planets_400(
    sandbox: Sandbox, client: httpx.Client, body: bytes, query: str, fragment: str
) -> None:
    response = client.post(
        f"{sandbox.api_url}/quick-search{query}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert fragment in response.json()["general"][0]["message"]
    assert "field" in response.json()


def test_searched_items_can_be_fetched(sandbox: Sandbox, client: httpx.Client) -> None:
    feature = client.post(f"{sandbox.api_url}/quick-search", json=search_request()).json()["features"][0]
    response = client.get(feature["_links"]["_self"])
    assert response.status_code == 200 and response.json() == feature
    assert (
        client.get(f"{sandbox.api_url}/item-types/PSScene/items/20240101_000000_00_0000").status_code == 404
    )


def test_api_key_auth_like_planet(sandbox: Sandbox) -> None:
    url = f"{sandbox.api_url}/quick-search"
    body = search_request()
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json() == {"message": "Please enter your API key, or email and password.", "errors": []}
    assert httpx.post(url, json=body, auth=("invalid-key", "")).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "api-key invalid-key"}).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "api-key good"}).status_code == 200
    assert httpx.post(url, json=body, auth=("good", "")).status_code == 200
    assert httpx.get(sandbox.orders_url).status_code == 401
    assert httpx.get(sandbox.basemaps_url).status_code == 401


def test_unknown_paths_and_methods(sandbox: Sandbox, client: httpx.Client) -> None:
    assert client.get(f"{sandbox.url}/nothing/here").status_code == 404
    wrong = client.delete(f"{sandbox.orders_url}")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]


# -- Orders API --


def _download(client: httpx.Client, result: dict) -> bytes:
    response = client.get(result["location"])
    assert response.status_code == 200, result["name"]
    assert int(response.headers["Content-Length"]) == len(response.content)
    return response.content


def test_order_moves_queued_running_success_and_delivers_verified_files(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    items = orderable_item_ids(client, sandbox, 2)
    created = client.post(sandbox.orders_url, json=order_request(items, name="lifecycle"))
    assert created.status_code == 202
    order = created.json()
    assert order["state"] == "queued" and order["name"] == "lifecycle" and "results" not in order["_links"]
    assert order["_links"]["_self"] == f"{sandbox.orders_url}/{order['id']}"
    assert order["products"][0]["item_ids"] == items and order["tools"][0]["clip"]["aoi"] == SANDBOX_AOI
    running = client.get(f"{sandbox.orders_url}/{order['id']}").json()
    assert running["state"] == "running" and "results" not in running["_links"]
    done = client.get(f"{sandbox.orders_url}/{order['id']}").json()
    assert done["state"] == "success" and done["last_message"] == "Manifest delivery completed"
    assert done["error_hints"] == []
    results = done["_links"]["results"]
    names = sorted(r["name"] for r in results)
    expected = sorted(
        [f"{order['id']}/manifest.json"]
        + [
            f"{order['id']}/PSScene/{item}{suffix}"
            for item in items
            for suffix in (
                "_3B_AnalyticMS_SR_clip.tif",
                "_3B_udm2_clip.tif",
                "_3B_AnalyticMS_metadata_clip.xml",
                "_metadata.json",
            )
        ]
    )
    assert names == expected
    now = datetime.now(timezone.utc)
    for result in results:
        assert result["delivery"] == "success" and "token=" in result["location"]
        assert datetime.fromisoformat(result["expires_at"].replace("Z", "+00:00")) > now
    manifest_result = next(r for r in results if r["name"].endswith("manifest.json"))
    manifest = json.loads(_download(client, manifest_result))
    assert len(manifest["files"]) == len(results) - 1
    by_path = {entry["path"]: entry for entry in manifest["files"]}
    for result in results:
        if result is manifest_result:
            continue
        data = _download(client, result)
        entry = by_path[result["name"].split("/", 1)[1]]
        assert entry["size"] == len(data)
        assert entry["digests"] == {
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        assert entry["annotations"]["planet/item_id"] in items
        assert entry["annotations"]["planet/bundle_type"] == "analytic_sr_udm2"
        if entry["path"].endswith("AnalyticMS_SR_clip.tif"):
            assert entry["annotations"]["planet/asset_type"] == "ortho_analytic_4b_sr"
            assert entry["media_type"] == "image/tiff"
            assert data[:4] == b"II*\x00" and len(data) == SANDBOX_FILE_SIZE
            assert len(set(data[8:4096])) > 200  # pseudo-random, not padding
        if entry["path"].endswith("_metadata.json"):
            assert json.loads(data)["id"] == entry["annotations"]["planet/item_id"]


def test_same_item_same_bytes_different_items_different_bytes(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 2)
    first = wait_final(
        client, sandbox, client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    )
    again = wait_final(
        client, sandbox, client.post(sandbox.orders_url, json=order_request(items[:1])).json()["id"]
    )

    def analytic(order: dict, item: str) -> bytes:
        return _download(
            client,
            next(
                r
                for r in order["_links"]["results"]
                if r["name"].endswith(f"{item}_3B_AnalyticMS_SR_clip.tif")
            ),
        )

    assert analytic(first, items[0]) == analytic(again, items[0])
    assert analytic(first, items[0]) != analytic(first, items[1])


def test_eight_band_and_unclipped_naming(sandbox: Sandbox, client: httpx.Client) -> None:
    item = orderable_item_ids(client, sandbox, 1, asset="ortho_analytic_8b_sr")[0]
    request = order_request([item], bundle="analytic_8b_sr_udm2", clip=False)
    order = wait_final(client, sandbox, client.post(sandbox.orders_url, json=request).json()["id"])
    names = {r["name"].split("/", 1)[1] for r in order["_links"]["results"]}
    assert f"PSScene/{item}_3B_AnalyticMS_SR_8b.tif" in names
    assert f"PSScene/{item}_3B_AnalyticMS_8b_metadata.xml" in names


def test_partial_failed_and_cancelled_outcomes(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 4)
    sandbox.set_next_order_outcome("partial")
    assert client.post(f"{sandbox.url}/_sandbox/next-order", json={"outcome": "failed"}).status_code == 200
    sandbox.set_next_order_outcome("cancelled")
    ids = [client.post(sandbox.orders_url, json=order_request(items)).json()["id"] for _ in range(4)]
    partial, failed, cancelled, success = (wait_final(client, sandbox, i) for i in ids)

    assert partial["state"] == "partial" and "could not be delivered" in partial["last_message"]
    assert len(partial["error_hints"]) == 2
    delivered = {
        r["name"].split("/")[-1].split("_3B_")[0].replace("_metadata.json", "")
        for r in partial["_links"]["results"]
        if not r["name"].endswith("manifest.json")
    }
    assert delivered == set(items[:2])
    manifest = json.loads(
        _download(
            client, next(r for r in partial["_links"]["results"] if r["name"].endswith("manifest.json"))
        )
    )
    assert len(manifest["files"]) == len(partial["_links"]["results"]) - 1 == 8

    assert failed["state"] == "failed" and failed["error_hints"] and "results" not in failed["_links"]
    assert cancelled["state"] == "cancelled" and "results" not in cancelled["_links"]
    assert success["state"] == "success" and len(success["_links"]["results"]) == 17


def test_cancel_while_queued_then_conflict_and_unknown_ids(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 1)
    order_id = client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    cancelled = client.put(f"{sandbox.orders_url}/{order_id}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert client.get(f"{sandbox.orders_url}/{order_id}").json()["state"] == "cancelled"
    again = client.put(f"{sandbox.orders_url}/{order_id}")
    assert again.status_code == 409 and again.json()["general"][0]["message"]
    running_id = client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    assert client.get(f"{sandbox.orders_url}/{running_id}").json()["state"] == "running"
    assert client.put(f"{sandbox.orders_url}/{running_id}").json()["state"] == "cancelled"
    missing = client.get(f"{sandbox.orders_url}/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and "not found" in missing.json()["general"][0]["message"]
    assert client.put(f"{sandbox.orders_url}/00000000-0000-0000-0000-000000000000").status_code == 404


def _circle(vertices: int) -> dict:
    ring = [
        [
            -121.45 + 0.04 * math.cos(2 * math.pi * i / vertices),
            38.54 + 0.03 * math.sin(2 * math.pi * i / vertices),
        ]
        for i in range(vertices)
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def test_orders_are_validated_like_planet(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 1)

    def refused(request: object, fragment: str) -> None:
        response = client.post(sandbox.orders_url, json=request)
        assert response.status_code == 400, response.text
        body = response.json()
        assert fragment in json.dumps(body)
        assert body["general"][0]["message"]

    many = [
        f"2024{m:02d}{d:02d}_{h}0000_00_2262" for m in range(1, 13) for d in range(1, 29) for h in (10, 11)
    ]
    assert len(many[:501]) == 501
    many = many[:501]
    refused(order_request(many), "at most 500 items")
    fine_clip = order_request(items)
    fine_clip["tools"] = [{"clip": {"aoi": _circle(500)}}]
    assert client.post(sandbox.orders_url, json=fine_clip).status_code == 202
    big_clip = order_request(items)
    big_clip["tools"] = [{"clip": {"aoi": _circle(501)}}]
    refused(big_clip, "501 vertices")
    bow_tie = order_request(items)
    bow_tie["tools"] = [
        {"clip": {"aoi": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}}
    ]
    refused(bow_tie, "not valid")
    refused(order_request(items, bundle="everything"), "unknown product_bundle")
    refused(order_request(["not-an-item"]), "no access to assets: PSScene/not-an-item")
    refused(order_request(["20190601_101010_00_1003"], bundle="analytic_8b_sr_udm2"), "no access to assets")
    refused({"products": order_request(items)["products"]}, "name is required")
    refused({"name": "x", "products": []}, "products")
    response = client.post(sandbox.orders_url, content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert [e["method"] for e in sandbox.requests() if e["path"] == "/compute/ops/orders/v2"].count(
        "POST"
    ) == 10


def test_list_orders_filters_by_name_and_paginates_with_next(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 1)
    created = [
        client.post(sandbox.orders_url, json=order_request(items, name=f"batch-{i % 2}")).json()["id"]
        for i in range(45)
    ]
    pages = [client.get(sandbox.orders_url, params={"name": "batch-0"}).json()]
    while pages[-1]["_links"].get("next"):
        pages.append(client.get(pages[-1]["_links"]["next"]).json())
    listed = [order["id"] for page in pages for order in page["orders"]]
    assert len(pages) == 2 and len(listed) == 23
    assert listed == [order_id for i, order_id in enumerate(created) if i % 2 == 0][::-1]  # newest first
    contains = client.get(sandbox.orders_url, params={"name__contains": "batch"}).json()
    assert len(contains["orders"]) == 20 and "next" in contains["_links"]
    assert client.get(sandbox.orders_url, params={"state": "success"}).json()["orders"] == []


def test_order_state_steps_are_configurable(sandbox: Sandbox, client: httpx.Client) -> None:
    items = orderable_item_ids(client, sandbox, 1)
    sandbox.set_faults(order_polls_per_state=0)
    instant = client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    assert client.get(f"{sandbox.orders_url}/{instant}").json()["state"] == "success"
    sandbox.set_faults(order_polls_per_state=2)
    slow = client.post(sandbox.orders_url, json=order_request(items)).json()["id"]
    states = [client.get(f"{sandbox.orders_url}/{slow}").json()["state"] for _ in range(4)]
    assert states == ["queued", "running", "running", "success"]


def test_orders_survive_a_restart(tmp_path, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    with Sandbox(tmp_path, file_size=4096) as first:
        items = orderable_item_ids(client, first, 1)
        done_id = client.post(first.orders_url, json=order_request(items, name="kept")).json()["id"]
        done = wait_final(client, first, done_id)
        pending_id = client.post(first.orders_url, json=order_request(items, name="pending")).json()["id"]
        data = _download(client, done["_links"]["results"][0])
    with Sandbox(tmp_path, file_size=4096) as second:
        again = client.get(f"{second.orders_url}/{done_id}").json()
        assert again["state"] == "success" and again["name"] == "kept"
        assert len(again["_links"]["results"]) == len(done["_links"]["results"])
        old_location = done["_links"]["results"][0]["location"]
        token = old_location.split("token=")[1]
        result = next(
            r for r in again["_links"]["results"] if r["name"] == done["_links"]["results"][0]["name"]
        )
        assert result["location"].endswith(f"token={token}")  # links are kept across the restart
        assert _download(client, result) == data
        assert wait_final(client, second, pending_id)["state"] == "success"
        names = [o["name"] for o in client.get(second.orders_url).json()["orders"]]
        assert names == ["pending", "kept"]



def test_a_poll_rewrites_only_its_own_order(tmp_path, client: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """Each order has its own file: a GET rewrites that file alone, so polls cost the same with many orders."""
    with Sandbox(tmp_path, file_size=4096) as sandbox:
        items = orderable_item_ids(client, sandbox, 1)
        ids = [client.post(sandbox.orders_url, json=order_request(items, name=f"o{i}")).json()["id"]
               for i in range(3)]
        folder = tmp_path / "orders"
        assert sorted(p.stem for p in folder.glob("*.json")) == sorted(ids)
        before = {p.stem: p.stat().st_mtime_ns for p in folder.glob("*.json")}
        time.sleep(0.01)
        client.get(f"{sandbox.orders_url}/{ids[1]}")
        after = {p.stem: p.stat().st_mtime_ns for p in folder.glob("*.json")}
        assert [i for i in ids if after[i] != before[i]] == [ids[1]]
        assert not (tmp_path / "orders.json").exists()


def test_a_sandbox_folder_of_the_one_file_layout_is_read_and_split(  # type: ignore[no-untyped-def]
        tmp_path, client: httpx.Client) -> None:
    with Sandbox(tmp_path, file_size=4096) as first:
        items = orderable_item_ids(client, first, 1)
        order_id = client.post(first.orders_url, json=order_request(items, name="old")).json()["id"]
    record = json.loads((tmp_path / "orders" / f"{order_id}.json").read_text())
    (tmp_path / "orders.json").write_text(json.dumps({"version": 1, "orders": [record]}))
    (tmp_path / "orders" / f"{order_id}.json").unlink()
    with Sandbox(tmp_path, file_size=4096) as second:
        assert client.get(f"{second.orders_url}/{order_id}").json()["name"] == "old"
    assert (tmp_path / "orders" / f"{order_id}.json").is_file() and not (tmp_path / "orders.json").exists()


# -- Basemaps API --


def test_mosaics_list_filter_paginate_and_get(sandbox: Sandbox, client: httpx.Client) -> None:
    params = {
        "name__contains": "global_monthly_2024",
        "acquired__gt": "2024-03-01T00:00:00Z",
        "acquired__lt": "2024-07-01T00:00:00Z",
        "_page_size": "2",
    }
    pages = [client.get(sandbox.basemaps_url, params=params).json()]
    while pages[-1]["_links"].get("_next"):
        pages.append(client.get(pages[-1]["_links"]["_next"]).json())
    names = [m["name"] for page in pages for m in page["mosaics"]]
    assert names == [f"global_monthly_2024_{m:02d}_mosaic" for m in (3, 4, 5, 6)] and len(pages) == 2
    exact = client.get(sandbox.basemaps_url, params={"name__is": "global_quarterly_2023q2_mosaic"}).json()
    mosaic = exact["mosaics"][0]
    assert len(exact["mosaics"]) == 1 and mosaic["interval"] == "3 mons"
    for key in (
        "id",
        "first_acquired",
        "last_acquired",
        "product_type",
        "level",
        "bbox",
        "coordinate_system",
        "quad_download",
    ):
        assert key in mosaic
    assert client.get(f"{sandbox.basemaps_url}/{mosaic['id']}").json() == mosaic
    assert client.get(f"{sandbox.basemaps_url}/not-a-mosaic").status_code == 404


def test_quads_for_a_bbox_and_a_basemap_order(sandbox: Sandbox, client: httpx.Client) -> None:
    mosaic = client.get(sandbox.basemaps_url, params={"name__is": "global_monthly_2024_01_mosaic"}).json()[
        "mosaics"
    ][0]
    quads_url = f"{sandbox.basemaps_url}/{mosaic['id']}/quads"
    pages = [client.get(quads_url, params={"bbox": "-121.5,38.5,-121.4,38.58", "_page_size": "1"}).json()]
    while pages[-1]["_links"].get("_next"):
        pages.append(client.get(pages[-1]["_links"]["_next"]).json())
    quads = [q for page in pages for q in page["items"]]
    assert len(quads) >= 2 and all(q["id"].startswith("L15-") and q["_links"]["download"] for q in quads)
    quad_file = client.get(quads[0]["_links"]["download"])
    assert quad_file.status_code == 200 and quad_file.content[:4] == b"II*\x00"
    assert client.get(quads_url).status_code == 400  # bbox is required
    request = {
        "name": "basemap",
        "source_type": "basemaps",
        "tools": [{"clip": {}}],
        "products": [{"mosaic_name": mosaic["name"], "geometry": SANDBOX_AOI}],
    }
    order = wait_final(client, sandbox, client.post(sandbox.orders_url, json=request).json()["id"])
    assert order["state"] == "success" and order["source_type"] == "basemaps"
    names = sorted(r["name"].split("/", 1)[1] for r in order["_links"]["results"])
    assert names == sorted([f"{mosaic['name']}/{q['id']}.tif" for q in quads] + ["manifest.json"])
    manifest = json.loads(
        _download(client, next(r for r in order["_links"]["results"] if r["name"].endswith("manifest.json")))
    )
    for entry in manifest["files"]:
        data = _download(
            client, next(r for r in order["_links"]["results"] if r["name"].endswith(entry["path"]))
        )
        assert hashlib.sha256(data).hexdigest() == entry["digests"]["sha256"] and len(data) == entry["size"]
    unknown = dict(
        request, products=[{"mosaic_name": "global_monthly_1999_01_mosaic", "geometry": SANDBOX_AOI}]
    )
    assert client.post(sandbox.orders_url, json=unknown).status_code == 400


# -- lifecycle --


def test_closing_is_prompt_with_idle_keep_alive_connections(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    sandbox = Sandbox(tmp_path).start()
    url = sandbox.basemaps_url
    with httpx.Client(auth=("k", "")) as idle:
        assert idle.get(url, params={"_page_size": "1"}).status_code == 200  # the connection stays open
        started = time.monotonic()
        sandbox.close()
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.TransportError):
            idle.get(url)
    foreground = Sandbox(tmp_path).bind()
    thread = threading.Thread(target=foreground.serve_forever)
    thread.start()
    assert httpx.get(f"{foreground.url}/_sandbox/health").json()["status"] == "ok"
    foreground.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
