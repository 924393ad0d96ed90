"""Pure order planning: request bodies, deterministic names, splitting at Planet's 500-item limit, quota."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flowzero.models import Order
from flowzero.ordering.plan import (
    MAX_ITEMS_PER_ORDER,
    basemap_request,
    content_hash,
    order_name,
    plan_basemap_order,
    plan_scene_orders,
    psscene_request,
    recorded_order,
)

CLIP = {"type": "Polygon", "coordinates": [[[-120.9, 35.6], [-120.6, 35.6], [-120.6, 36.0], [-120.9, 35.6]]]}


def scene_ids(count: int, day: int = 1) -> list[str]:
    return [f"2024{(i % 12) + 1:02d}{day:02d}_{i:06d}_00_24a3" for i in range(count)]


def template(**changes: object) -> Order:
    base = Order(order_id="", aoi_name="SalinasRiver", start_date="2024-01-01", end_date="2024-12-31",
                 num_bands="four_bands", product_bundle="analytic_sr_udm2", aoi_area_sqkm=27.25,
                 scenes_found=900, metadata={"cadence": "daily"})
    return dataclasses.replace(base, **changes)


def test_psscene_request_matches_the_orders_v2_body() -> None:
    body = psscene_request("n1", ["a", "b"], "analytic_8b_sr_udm2", CLIP)
    assert body == {
        "name": "n1",
        "products": [{"item_ids": ["a", "b"], "item_type": "PSScene",
                      "product_bundle": "analytic_8b_sr_udm2"}],
        "tools": [{"clip": {"aoi": CLIP}}],
    }
    assert "tools" not in psscene_request("n1", ["a"], "analytic_sr_udm2", None)


def test_basemap_request_matches_the_old_tool() -> None:
    body = basemap_request("n2", "global_monthly_2024_01_mosaic", CLIP)
    assert body == {"name": "n2", "source_type": "basemaps",
                    "products": [{"mosaic_name": "global_monthly_2024_01_mosaic", "geometry": CLIP}],
                    "tools": [{"clip": {}}]}


def test_order_name_is_deterministic_and_readable() -> None:
    digest = content_hash(sorted(["b", "a"]), CLIP)
    assert digest == content_hash(["a", "b"], json.loads(json.dumps(CLIP)))
    assert len(digest) == 10
    name = order_name("Salinas River", "2024-01-01", "2024-01-31", "analytic_sr_udm2", digest)
    assert name == f"flowzero-Salinas_River-2024-01-01-2024-01-31-analytic_sr_udm2-{digest}"
    assert order_name("x", "a", "b", "p", digest, "r1").endswith(f"{digest}-r1")


def test_scene_order_name_depends_on_items_and_clip_but_not_their_order() -> None:
    ids = scene_ids(5)
    first = plan_scene_orders(template(), ids, CLIP)[0].name
    assert plan_scene_orders(template(), list(reversed(ids)) + ids[:2], CLIP)[0].name == first
    assert plan_scene_orders(template(), ids[:4], CLIP)[0].name != first
    other_clip = {**CLIP, "coordinates": [[[-121.0, 35.6], [-120.6, 35.6], [-120.6, 36.0], [-121.0, 35.6]]]}
    assert plan_scene_orders(template(), ids, other_clip)[0].name != first
    assert plan_scene_orders(template(), ids, CLIP, suffix="r2")[0].name == f"{first}-r2"


def test_small_plan_is_one_clipped_order_with_its_record() -> None:
    ids = scene_ids(3)
    [planned] = plan_scene_orders(template(), ids, CLIP)
    assert planned.parts == 1 and planned.group == planned.name
    assert planned.request == psscene_request(planned.name, sorted(ids), "analytic_sr_udm2", CLIP)
    order = planned.order
    assert order.order_name == planned.name and order.order_id == ""
    assert order.scenes_selected == 3 and order.scenes_found == 900 and order.clipped
    assert order.quota_hectares == pytest.approx(27.25 * 3 * 100)
    assert order.metadata == {"cadence": "daily", "item_ids": sorted(ids)}
    assert planned.item_ids == sorted(ids)


def test_plan_over_500_items_is_split_into_named_parts() -> None:
    ids = scene_ids(1201)
    planned = plan_scene_orders(template(), ids, CLIP)
    assert [p.parts for p in planned] == [3, 3, 3]
    assert [len(p.item_ids) for p in planned] == [MAX_ITEMS_PER_ORDER, MAX_ITEMS_PER_ORDER, 201]
    group = planned[0].group
    assert [p.name for p in planned] == [f"{group}-part1", f"{group}-part2", f"{group}-part3"]
    every = [i for p in planned for i in p.request["products"][0]["item_ids"]]
    assert sorted(every) == sorted(ids) and len(set(every)) == len(ids)
    for p in planned:
        assert p.request["name"] == p.name == p.order.order_name
        assert len(p.request["products"][0]["item_ids"]) <= MAX_ITEMS_PER_ORDER
        assert p.order.quota_hectares == pytest.approx(27.25 * len(p.item_ids) * 100)
        assert p.order.metadata["part"] == f"{p.part}/3"
    assert sum(p.order.quota_hectares or 0 for p in planned) == pytest.approx(27.25 * 1201 * 100)


def test_exactly_500_items_stay_one_order() -> None:
    assert len(plan_scene_orders(template(), scene_ids(500), CLIP)) == 1
    assert len(plan_scene_orders(template(), scene_ids(501), CLIP)) == 2


def test_scene_plan_needs_dates_and_bundle() -> None:
    with pytest.raises(ValueError):
        plan_scene_orders(template(product_bundle=None), scene_ids(1), CLIP)


def test_intent_details_survive_json_and_rebuild_the_record() -> None:
    [planned] = plan_scene_orders(template(batch_id="b-1", batch_order=True), scene_ids(2), CLIP)
    details = json.loads(json.dumps(planned.intent_details()))
    rebuilt = recorded_order(details, "order-123", "running")
    assert rebuilt == dataclasses.replace(planned.order, order_id="order-123", status="running")
    assert planned.recorded("order-9").status == "queued"


def test_basemap_plan_names_the_mosaic() -> None:
    base = Order(order_id="", aoi_name="ScottRiver", order_type="Basemap (Composite)",
                 mosaic_name="global_monthly_2024_01_mosaic", start_date="2024-01-01", end_date="2024-02-01")
    planned = plan_basemap_order(base, CLIP)
    assert planned.name.startswith("flowzero-ScottRiver-2024-01-01-2024-02-01-global_monthly_2024_01_mosaic-")
    assert planned.request == basemap_request(planned.name, "global_monthly_2024_01_mosaic", CLIP)
    assert planned.order.order_name == planned.name and planned.order.clipped
    other = plan_basemap_order(dataclasses.replace(base, mosaic_name="global_monthly_2024_02_mosaic"), CLIP)
    assert other.name != planned.name
    with pytest.raises(ValueError):
        plan_basemap_order(dataclasses.replace(base, mosaic_name=None), CLIP)
