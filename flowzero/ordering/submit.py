"""Place planned orders exactly once, even across crashes, timeouts and reruns.

The sequence for each order: skip it if the store already records it; *claim* the intent under the order's
deterministic name; POST; record the order and resolve the intent. A run that died after Planet accepted an
order but before it was recorded leaves the intent pending, and every later run first asks Planet for orders of
that name (:func:`reconcile_intents`) and records what it finds instead of ordering again. When the POST itself
ends in doubt (a read timeout after the request was sent), the name is looked up at once; nothing is ever
re-sent blindly.

An intent is a claim (:meth:`flowzero.storage.OrderStore.claim_intent`): its owner (``host:pid:random``) holds it
under a lease renewed while the POST is in flight. Another run never resolves or places an intent whose owner
is alive or whose lease runs: Planet may not list an order it is still creating, so "not found by name" proves
nothing while the POST is in flight. Such a run waits a little (:data:`INTENT_WAIT_SECONDS`) for the owner to
finish, then finds the order recorded; if the owner takes longer it reports the order as being placed elsewhere
and places nothing for it. Only an orphan (its owner's process on this machine is gone, or its lease ran out) is
reconciled by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from flowzero.errors import AuthError, PlanetError
from flowzero.leases import LeaseKeeper, holder_is_gone, worker_id
from flowzero.models import REORDERABLE_STATES, Order
from flowzero.ordering.plan import PlannedOrder, recorded_order
from flowzero.planet.errors import OrderSubmissionUncertain

if TYPE_CHECKING:
    from flowzero.storage import IntentClaim

log = logging.getLogger(__name__)


# What happened to one planned order.
ORDERED = "ordered"  # Planet accepted it now and it is recorded
EXISTS = "exists"  # already recorded: not ordered again
RECOVERED = "recovered"  # Planet had it (an earlier run or a doubtful POST): recorded, not ordered again
WOULD_ORDER = "would-order"  # --dry-run
ELSEWHERE = "elsewhere"  # another live run is placing it right now: nothing placed here

INTENT_LEASE_SECONDS = 120.0  # an intent's lease, renewed every third of it while the POST is in flight
INTENT_WAIT_SECONDS = 30.0  # how long to wait for another run placing the same order before reporting it


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

    def pending_intents(self) -> list[dict[str, Any]]: ...

    def claim_intent(self, order_name: str, details: dict[str, Any], owner: str, lease_seconds: float,
                     pending_only: bool = False) -> IntentClaim: ...

    def renew_intent(self, order_name: str, owner: str, lease_seconds: float) -> bool: ...

    def release_intent(self, order_name: str, owner: str) -> bool: ...

    def resolve_intent(self, order_name: str, order_id: str | None) -> bool: ...


@dataclass(frozen=True)
class Owner:
    """This run as the owner of the intents it claims: its id, its lease, and how long it waits for another run."""

    id: str = field(default_factory=worker_id)
    lease_seconds: float = field(default_factory=lambda: INTENT_LEASE_SECONDS)  # read when made: tests shorten
    wait_seconds: float = field(default_factory=lambda: INTENT_WAIT_SECONDS)


@dataclass
class SubmitResult:
    """One planned order and what became of it (``order`` is the recorded one, when there is one; ``holder``
    the run placing it when the outcome is ELSEWHERE)."""

    planned: PlannedOrder
    outcome: str
    order: Optional[Order] = None
    holder: Optional[str] = None


def _is_uncertain(exc: BaseException) -> bool:
    """Did the POST reach Planet with no answer back (the client's "submission uncertain" error)?"""
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


def take_intent(store: IntentStore, name: str, details: dict[str, Any], owner: Owner, wait_seconds: float,
                pending_only: bool = False) -> IntentClaim:
    """Claim the intent ``name`` for ``owner``: a holder on this machine whose process is gone is taken over at
    once; a live holder is waited for up to ``wait_seconds`` (it finishes, or its lease runs out)."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        got = store.claim_intent(name, details, owner.id, owner.lease_seconds, pending_only=pending_only)
        if got.taken or got.holder is None:
            return got
        if holder_is_gone(got.holder):
            log.info("intent %s was held by a run that is gone (%s); taking it over", name, got.holder)
            store.release_intent(name, got.holder)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return got
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)


def reconcile_intents(store: IntentStore, client: OrdersClient, owner: Owner | None = None) -> list[Order]:
    """Record every order Planet accepted under an orphaned intent; drop the orphans Planet never received.

    Intents a live run holds are left to it: its POST may still be in flight.
    """
    owner = owner or Owner()
    recovered = []
    for intent in store.pending_intents():
        name = _intent_name(intent)
        got = take_intent(store, name, dict(intent.get("details") or {}), owner, 0.0, pending_only=True)
        if not got.taken:
            if got.holder is not None:
                log.info("intent %s is being placed by another run (%s); left to it", name, got.holder)
            continue
        try:
            found = find_on_planet(client, store, name)
        except BaseException:
            store.release_intent(name, owner.id)
            raise
        if found is None:
            log.info("intent %s: Planet has no such order; it was never placed", name)
            store.resolve_intent(name, None)
            continue
        recovered.append(_record(store, name, got.details, found))
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


def place(store: IntentStore, client: OrdersClient, planned: PlannedOrder, owner: Owner | None = None,
          force: bool = False) -> SubmitResult:
    """POST one order under a claimed intent and record it; a doubtful POST is settled by name, never re-sent.

    Nothing is posted while another live run holds the intent (ELSEWHERE), for an orphan Planet already has
    (RECOVERED), or when, once the claim is ours, the store shows the order placed meanwhile (EXISTS).
    """
    owner = owner or Owner()
    check = getattr(store, "check_integrity", None)
    if check is not None:  # a damaged store could not record what Planet accepts: find out before the POST
        check()
    details = planned.intent_details()
    got = take_intent(store, planned.name, details, owner, owner.wait_seconds)
    if not got.taken:
        return SubmitResult(planned, ELSEWHERE, holder=got.holder)
    if got.orphan:
        try:
            found = find_on_planet(client, store, planned.name)
        except BaseException:
            store.release_intent(planned.name, owner.id)  # still an orphan for the next run to settle
            raise
        if found is not None:
            return SubmitResult(planned, RECOVERED, _record(store, planned.name, got.details or details, found))
    existing = None if force else already_ordered(store, planned)
    if existing is not None:  # placed by another run while this one waited for the claim
        store.resolve_intent(planned.name, existing.order_id)
        return SubmitResult(planned, EXISTS, existing)
    return _post(store, client, planned, details, owner)


def _post(store: IntentStore, client: OrdersClient, planned: PlannedOrder, details: dict[str, Any],
          owner: Owner) -> SubmitResult:
    """The POST itself, the intent's lease renewed while it is in flight.

    Once the POST has come back without an order id (in doubt, or an error), the intent is released: no longer
    in flight, it is an orphan the next run settles by name.
    """
    keeper = LeaseKeeper(lambda name: store.renew_intent(name, owner.id, owner.lease_seconds),
                         owner.lease_seconds, [planned.name], log.warning, "order intent")
    try:
        with keeper:
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
        store.release_intent(planned.name, owner.id)
        if _is_uncertain(exc):
            raise PlanetError(
                f"Planet did not confirm order {planned.name} and does not list it yet",
                hint="rerun the same command later: flowzero looks it up by name and never orders twice",
            ) from None
        raise
    order_id = response.get("id") if isinstance(response, dict) else None
    if not order_id:
        store.release_intent(planned.name, owner.id)
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
    owner: Owner | None = None,
) -> list[SubmitResult]:
    """Place each planned order unless it is already recorded (``force`` orders anyway).

    Pending intents of earlier runs are reconciled first (unless the caller already did), so an order Planet
    accepted but a killed run never recorded is recorded now and counts as existing. ``dry_run`` neither
    writes nor posts. ``on_result`` hears of each order as soon as it is settled, so an error in a later part
    of a split plan does not hide the parts already placed. ``owner`` is this run (a batch passes one for all
    its chunks).
    """
    owner = owner or Owner()
    if not dry_run and planned:
        if client is None:
            raise ValueError("placing orders needs a client")
        if reconcile:
            for order in reconcile_intents(store, client, owner):
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
            result = place(store, client, item, owner, force)  # type: ignore[arg-type]
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
