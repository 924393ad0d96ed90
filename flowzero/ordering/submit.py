"""Place planned orders exactly once, even across crashes, timeouts and reruns.

The sequence for each order: skip it if the store already records it; record an *intent* under the
order's deterministic name; POST; record the order and resolve the intent. A run that died after Planet
accepted an order but before it was recorded leaves the intent pending, and every later run first asks Planet
for orders of that name (:func:`reconcile_intents`) and records what it finds instead of ordering again. When
the POST itself ends in doubt (a read timeout after the request was sent), the name is looked up at once;
nothing is ever re-sent blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from flowzero.errors import AuthError, PlanetError
from flowzero.models import Order
from flowzero.ordering.plan import PlannedOrder, recorded_order

log = logging.getLogger(__name__)

# As for the order store's find_existing_order: an order in these states may be placed again.
REORDERABLE_STATES = ("failed", "cancelled")

# What happened to one planned order.
ORDERED = "ordered"  # Planet accepted it now and it is recorded
EXISTS = "exists"  # already recorded: not ordered again
RECOVERED = "recovered"  # Planet had it (an earlier run or a doubtful POST): recorded, not ordered again
WOULD_ORDER = "would-order"  # --dry-run


class OrdersClient(Protocol):
    """The part of :class:`flowzero.planet.client.PlanetClient` that placing orders needs."""

    def create_order(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def list_orders(self, name: str | None = None) -> Iterator[dict[str, Any]]: ...


class IntentStore(Protocol):
    """The part of the order store (:func:`flowzero.storage.open_store`) that placing orders needs."""

    def save_order(self, order: Order) -> None: ...

    def order_exists(self, order_id: str) -> bool: ...

    def find_existing_order(self, aoi_name: str, start_date: str | None, end_date: str | None,
                            product_bundle: str | None = None,
                            order_type: str | None = None) -> Order | None: ...

    def list_orders(self, status: str | None = None, batch_id: str | None = None,
                    aoi_name: str | None = None) -> list[Order]: ...

    def record_intent(self, order_name: str, details: dict[str, Any]) -> None: ...

    def pending_intents(self) -> list[dict[str, Any]]: ...

    def resolve_intent(self, order_name: str, order_id: str | None) -> None: ...


@dataclass
class SubmitResult:
    """One planned order and what became of it (``order`` is the recorded one, when there is one)."""

    planned: PlannedOrder
    outcome: str
    order: Optional[Order] = None


def _is_uncertain(exc: BaseException) -> bool:
    """Did the POST reach Planet with no answer back (the client's "submission uncertain" error)?"""
    from flowzero.planet.errors import OrderSubmissionUncertain

    return isinstance(exc, OrderSubmissionUncertain)


def _is_rejection(exc: BaseException) -> bool:
    """A definite "no" from Planet: the order was not created, so the intent can be dropped."""
    if isinstance(exc, AuthError):
        return True
    status = getattr(exc, "status_code", None)
    if not isinstance(exc, PlanetError) or status is None:
        return False
    return 400 <= status < 500 and status not in (408, 429)


def find_on_planet(client: OrdersClient, store: IntentStore, name: str) -> dict[str, Any] | None:
    """The order Planet holds under exactly ``name`` that the store does not record yet, if any.

    Orders already recorded are left out: after a failed order is placed again under the same name, the
    pending intent is about the new one. Of several unrecorded ones, the live one, then the oldest, is taken.
    """
    matches = [o for o in client.list_orders(name=name)
               if o.get("name") == name and o.get("id") and not store.order_exists(str(o["id"]))]
    if not matches:
        return None
    if len(matches) > 1:
        log.warning("Planet holds %d unrecorded orders named %s; recording the oldest live one",
                    len(matches), name)
    matches.sort(key=lambda o: (o.get("state") in REORDERABLE_STATES, str(o.get("created_on") or "")))
    return matches[0]


def _record(store: IntentStore, name: str, details: dict[str, Any], found: dict[str, Any]) -> Order:
    order = recorded_order(details, str(found["id"]), found.get("state"))
    if not store.order_exists(order.order_id):
        store.save_order(order)
    store.resolve_intent(name, order.order_id)
    return order


def _intent_name(intent: dict[str, Any]) -> str:
    return str(intent.get("order_name") or intent.get("name"))


def reconcile_intents(store: IntentStore, client: OrdersClient) -> list[Order]:
    """Record every order Planet accepted under a pending intent; drop the intents Planet never received."""
    recovered = []
    for intent in store.pending_intents():
        name = _intent_name(intent)
        found = find_on_planet(client, store, name)
        if found is None:
            log.info("intent %s: Planet has no such order; it was never placed", name)
            store.resolve_intent(name, None)
            continue
        recovered.append(_record(store, name, dict(intent.get("details") or {}), found))
    return recovered


def _same_product(recorded: Order, wanted: Order) -> bool:
    """Does ``recorded`` (still live) order what ``wanted`` would: same type, dates, bundle and mosaic?"""
    return (recorded.status not in REORDERABLE_STATES
            and recorded.order_type == wanted.order_type
            and recorded.start_date == wanted.start_date
            and recorded.end_date == wanted.end_date
            and recorded.product_bundle == wanted.product_bundle
            and recorded.mosaic_name == wanted.mosaic_name)


def already_ordered(store: IntentStore, planned: PlannedOrder) -> Order | None:
    """The recorded order that makes placing ``planned`` a duplicate, if any.

    Same AOI, dates, order type and product (bundle or mosaic) counts as the same order, whatever scenes a
    new search picked; failed and cancelled orders do not count (as for the store). The one exception: the
    missing parts of a split plan whose other parts are recorded (a run interrupted between parts) are still
    placed, each part being found by its own name.
    """
    want = planned.order
    found = store.find_existing_order(want.aoi_name, want.start_date, want.end_date,
                                      product_bundle=want.product_bundle, order_type=want.order_type)
    if found is None or not _same_product(found, want):
        found = next((o for o in store.list_orders(aoi_name=want.aoi_name) if _same_product(o, want)), None)
    if found is None:
        return None
    if planned.parts > 1 and (found.order_name or "").startswith(f"{planned.group}-part"):
        siblings = store.list_orders(aoi_name=want.aoi_name)
        return next((o for o in siblings if o.order_name == planned.name and _same_product(o, want)), None)
    return found


def place(store: IntentStore, client: OrdersClient, planned: PlannedOrder) -> SubmitResult:
    """POST one order under an intent and record it; a doubtful POST is settled by name, never re-sent."""
    details = planned.intent_details()
    store.record_intent(planned.name, details)
    try:
        response = client.create_order(planned.request)
    except Exception as exc:
        if _is_rejection(exc):
            store.resolve_intent(planned.name, None)
            raise
        try:
            found = find_on_planet(client, store, planned.name)
        except Exception:
            found = None
        if found is not None:
            return SubmitResult(planned, RECOVERED, _record(store, planned.name, details, found))
        if _is_uncertain(exc):
            raise PlanetError(
                f"Planet did not confirm order {planned.name} and does not list it yet",
                hint="rerun the same command later: flowzero looks it up by name and never orders twice",
            ) from None
        raise
    order_id = response.get("id") if isinstance(response, dict) else None
    if not order_id:
        raise PlanetError(f"Planet accepted order {planned.name} but returned no order id",
                          hint="rerun the same command: flowzero will look the order up by name")
    order = planned.recorded(str(order_id), response.get("state"))
    store.save_order(order)
    store.resolve_intent(planned.name, order.order_id)
    return SubmitResult(planned, ORDERED, order)


def submit_orders(
    planned: Sequence[PlannedOrder],
    store: IntentStore,
    client: OrdersClient | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    reconcile: bool = True,
    on_result: Callable[[SubmitResult], None] | None = None,
    on_recovered: Callable[[Order], None] | None = None,
) -> list[SubmitResult]:
    """Place each planned order unless it is already recorded (``force`` orders anyway).

    Pending intents of earlier runs are reconciled first (unless the caller already did), so an order Planet
    accepted but a killed run never recorded is recorded now and counts as existing. ``dry_run`` neither
    writes nor posts. ``on_result`` hears of each order as soon as it is settled, so an error in a later part
    of a split plan does not hide the parts already placed.
    """
    if not dry_run and planned:
        if client is None:
            raise ValueError("placing orders needs a client")
        if reconcile:
            for order in reconcile_intents(store, client):
                if on_recovered is not None:
                    on_recovered(order)
    results = []
    for item in planned:
        existing = None if force else already_ordered(store, item)
        if existing is not None:
            result = SubmitResult(item, EXISTS, existing)
        elif dry_run:
            result = SubmitResult(item, WOULD_ORDER)
        else:
            result = place(store, client, item)  # type: ignore[arg-type]
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summarize(results: Iterable[SubmitResult]) -> dict[str, int]:
    """How many orders ended in each outcome."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return counts
