"""Never order twice: the submit flow with a scripted Orders client and a real SQLite order store in tmp."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowzero.errors import AuthError, PlanetError
from flowzero.models import Order
from flowzero.ordering.plan import PlannedOrder, plan_basemap_order, plan_scene_orders
from flowzero.ordering.submit import (
    EXISTS,
    ORDERED,
    RECOVERED,
    WOULD_ORDER,
    reconcile_intents,
    submit_orders,
)
from flowzero.planet.errors import OrderSubmissionUncertain
from flowzero.storage.sqlite import SqliteOrderStore

CLIP = {"type": "Polygon", "coordinates": [[[-120.9, 35.6], [-120.6, 35.6], [-120.6, 36.0], [-120.9, 35.6]]]}


class FakePlanet:
    """Orders v2 in memory. ``fail_next`` scripts the next POST: 'uncertain-created' (Planet keeps the order
    but the answer is lost), 'uncertain-lost' (the request never got through), 'reject' (HTTP 400), 'auth'."""

    def __init__(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.fail_next: str | None = None

    def add(self, name: str, state: str = "queued") -> dict[str, Any]:
        order = {"id": str(uuid.uuid4()), "name": name, "state": state,
                 "created_on": f"2025-01-01T00:00:{len(self.orders):02d}Z"}
        self.orders.append(order)
        return order

    def create_order(self, request: dict[str, Any]) -> dict[str, Any]:
        self.posts.append(request)
        mode, self.fail_next = self.fail_next, None
        if mode == "uncertain-created":
            self.add(request["name"])
            raise OrderSubmissionUncertain(request["name"], "read timeout")
        if mode == "uncertain-lost":
            raise OrderSubmissionUncertain(request["name"], "read timeout")
        if mode == "reject":
            raise PlanetError("POST orders -> HTTP 400: bad item", status_code=400)
        if mode == "auth":
            raise AuthError("Planet rejected the API key (HTTP 401)", status_code=401)
        return dict(self.add(request["name"]))

    def list_orders(self, name: str | None = None) -> Iterator[dict[str, Any]]:
        return iter([dict(o) for o in self.orders if name is None or o["name"] == name])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOrderStore]:
    db = SqliteOrderStore(tmp_path / "orders.db")
    yield db
    db.close()


@pytest.fixture
def planet() -> FakePlanet:
    return FakePlanet()


def scene_plan(ids: list[str] | None = None, *, suffix: str | None = None, max_items: int = 500,
               **changes: Any) -> list[PlannedOrder]:
    base = Order(order_id="", aoi_name="SalinasRiver", start_date="2024-01-01", end_date="2024-03-31",
                 num_bands="four_bands", product_bundle="analytic_sr_udm2", aoi_area_sqkm=27.25,
                 scenes_found=40)
    ids = ids if ids is not None else ["20240105_181010_00_24a3", "20240212_181010_00_24a3"]
    return plan_scene_orders(dataclasses.replace(base, **changes), ids, CLIP, suffix=suffix,
                             max_items=max_items)


def test_first_run_orders_and_records_everything(store: SqliteOrderStore, planet: FakePlanet) -> None:
    planned = scene_plan()
    [result] = submit_orders(planned, store, planet)
    assert result.outcome == ORDERED
    assert planet.posts == [planned[0].request]
    recorded = store.get_order(planet.orders[0]["id"])
    assert recorded is not None and result.order == dataclasses.replace(
        recorded, created_at=None, updated_at=None)
    assert recorded.order_name == planned[0].name and recorded.aoi_name == "SalinasRiver"
    assert recorded.start_date == "2024-01-01" and recorded.end_date == "2024-03-31"
    assert recorded.product_bundle == "analytic_sr_udm2" and recorded.scenes_selected == 2
    assert recorded.metadata["item_ids"] == planned[0].item_ids
    assert store.pending_intents() == []


def test_second_run_orders_nothing(store: SqliteOrderStore, planet: FakePlanet) -> None:
    submit_orders(scene_plan(), store, planet)
    [again] = submit_orders(scene_plan(), store, planet)
    assert again.outcome == EXISTS and again.order is not None
    assert again.order.order_id == planet.orders[0]["id"]
    assert len(planet.posts) == 1 and len(planet.orders) == 1


def test_a_different_selection_for_the_same_aoi_dates_and_bundle_is_not_ordered(
        store: SqliteOrderStore, planet: FakePlanet) -> None:
    submit_orders(scene_plan(), store, planet)
    [again] = submit_orders(scene_plan(["20240301_000000_00_24a3"]), store, planet)
    assert again.outcome == EXISTS
    assert len(planet.posts) == 1


def test_another_bundle_or_range_is_a_new_order(store: SqliteOrderStore, planet: FakePlanet) -> None:
    submit_orders(scene_plan(), store, planet)
    results = submit_orders(scene_plan(product_bundle="analytic_8b_sr_udm2"), store, planet)
    results += submit_orders(scene_plan(end_date="2024-04-30"), store, planet)
    assert [r.outcome for r in results] == [ORDERED, ORDERED]
    assert len(planet.orders) == 3


def test_killed_after_planet_accepted_is_recorded_not_reordered(store: SqliteOrderStore,
                                                                planet: FakePlanet) -> None:
    [planned] = scene_plan()
    store.record_intent(planned.name, planned.intent_details())  # the killed run got this far...
    placed = planet.add(planned.name)  # ...and Planet accepted its POST
    recovered: list[Order] = []
    [result] = submit_orders(scene_plan(), store, planet, on_recovered=recovered.append)
    assert result.outcome == EXISTS and result.order is not None
    assert result.order.order_id == placed["id"]
    assert [o.order_id for o in recovered] == [placed["id"]]
    assert planet.posts == [] and len(planet.orders) == 1
    assert store.get_order(placed["id"]).order_name == planned.name  # type: ignore[union-attr]
    assert store.pending_intents() == []


def test_killed_before_the_post_reached_planet_orders_once(store: SqliteOrderStore,
                                                           planet: FakePlanet) -> None:
    [planned] = scene_plan()
    store.record_intent(planned.name, planned.intent_details())
    [result] = submit_orders(scene_plan(), store, planet)
    assert result.outcome == ORDERED and len(planet.orders) == 1
    assert store.pending_intents() == []


def test_uncertain_post_that_planet_accepted_is_adopted(store: SqliteOrderStore, planet: FakePlanet) -> None:
    planet.fail_next = "uncertain-created"
    [result] = submit_orders(scene_plan(), store, planet)
    assert result.outcome == RECOVERED and result.order is not None
    assert len(planet.posts) == 1 and len(planet.orders) == 1  # never re-sent
    assert store.get_order(planet.orders[0]["id"]) is not None
    assert store.pending_intents() == []


def test_uncertain_post_not_listed_stays_pending_then_reconciles(store: SqliteOrderStore,
                                                                 planet: FakePlanet) -> None:
    planet.fail_next = "uncertain-lost"
    with pytest.raises(PlanetError, match="does not list it yet"):
        submit_orders(scene_plan(), store, planet)
    assert len(planet.posts) == 1 and planet.orders == []
    assert store.list_orders() == []
    assert [i["order_name"] for i in store.pending_intents()] == [scene_plan()[0].name]
    [result] = submit_orders(scene_plan(), store, planet)  # the rerun: Planet never got it, so order now
    assert result.outcome == ORDERED and len(planet.orders) == 1
    assert store.pending_intents() == []


def test_uncertain_post_that_appears_later_is_recorded_on_rerun(store: SqliteOrderStore,
                                                                planet: FakePlanet) -> None:
    planet.fail_next = "uncertain-lost"
    with pytest.raises(PlanetError):
        submit_orders(scene_plan(), store, planet)
    late = planet.add(scene_plan()[0].name)  # Planet's listing catches up after the run gave up
    [result] = submit_orders(scene_plan(), store, planet)
    assert result.outcome == EXISTS and result.order is not None and result.order.order_id == late["id"]
    assert len(planet.posts) == 1


@pytest.mark.parametrize("mode", ["reject", "auth"])
def test_rejected_order_records_nothing(store: SqliteOrderStore, planet: FakePlanet, mode: str) -> None:
    planet.fail_next = mode
    with pytest.raises(PlanetError):
        submit_orders(scene_plan(), store, planet)
    assert store.list_orders() == [] and store.pending_intents() == []


def test_force_orders_again_under_a_new_name(store: SqliteOrderStore, planet: FakePlanet) -> None:
    [first] = submit_orders(scene_plan(), store, planet)
    [forced] = submit_orders(scene_plan(suffix="r1"), store, planet, force=True)
    assert forced.outcome == ORDERED and forced.planned.name == f"{first.planned.name}-r1"
    assert len(planet.orders) == 2 and len(store.list_orders()) == 2


def test_dry_run_posts_and_writes_nothing(store: SqliteOrderStore, planet: FakePlanet) -> None:
    [would] = submit_orders(scene_plan(), store, None, dry_run=True)
    assert would.outcome == WOULD_ORDER and would.order is None
    assert store.list_orders() == [] and store.pending_intents() == []
    submit_orders(scene_plan(), store, planet)
    [exists] = submit_orders(scene_plan(), store, None, dry_run=True)
    assert exists.outcome == EXISTS and len(planet.posts) == 1


def test_interrupted_split_plan_places_only_the_missing_parts(store: SqliteOrderStore,
                                                              planet: FakePlanet) -> None:
    ids = [f"202401{d:02d}_000000_00_24a3" for d in range(1, 8)]
    planned = scene_plan(ids, max_items=3)
    assert len(planned) == 3
    submit_orders(planned[:1], store, planet)  # the first run died after part 1
    results = submit_orders(scene_plan(ids, max_items=3), store, planet)
    assert [r.outcome for r in results] == [EXISTS, ORDERED, ORDERED]
    assert sorted(o["name"] for o in planet.orders) == sorted(p.name for p in planned)
    assert [r.outcome for r in submit_orders(planned, store, planet)] == [EXISTS] * 3
    assert len(planet.posts) == 3


def test_a_failed_order_may_be_placed_again(store: SqliteOrderStore, planet: FakePlanet) -> None:
    [first] = submit_orders(scene_plan(), store, planet)
    assert first.order is not None
    store.update_order_status(first.order.order_id, "failed")
    planet.orders[0]["state"] = "failed"
    [second] = submit_orders(scene_plan(), store, planet)
    assert second.outcome == ORDERED and second.order is not None
    assert second.order.order_id != first.order.order_id
    # an intent for the same name must adopt the new order, never the recorded failed one
    store.record_intent(first.planned.name, first.planned.intent_details())
    assert reconcile_intents(store, planet) == []
    assert store.pending_intents() == []


def test_basemap_orders_are_told_apart_by_mosaic(store: SqliteOrderStore, planet: FakePlanet) -> None:
    base = Order(order_id="", aoi_name="ScottRiver", order_type="Basemap (Composite)",
                 mosaic_name="global_monthly_2024_01_mosaic", start_date="2024-01-01", end_date="2024-02-01")
    january = plan_basemap_order(base, CLIP)
    same_dates = plan_basemap_order(dataclasses.replace(base, mosaic_name="other_2024_01_mosaic"), CLIP)
    assert submit_orders([january], store, planet)[0].outcome == ORDERED
    assert submit_orders([same_dates], store, planet)[0].outcome == ORDERED
    assert submit_orders([plan_basemap_order(base, CLIP)], store, planet)[0].outcome == EXISTS
    assert store.get_order(planet.orders[0]["id"]).mosaic_name == "global_monthly_2024_01_mosaic"  # type: ignore[union-attr]
