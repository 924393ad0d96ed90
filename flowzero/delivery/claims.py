"""Work sharing: several ``batch-check-status`` runs, on one machine or many, working the same batch at once.

Each order is claimed in the order store (``OrderStore.claim``) before it is checked and delivered, and released
once its outcome is known. A run holds a few orders at a time (:data:`CLAIM_CHUNK`, claimed again as each one is
done), so runs started together split a batch instead of one run taking all of it; a run whose orders are all
still pending at Planet doubles what it holds, so a lone run ends up polling the whole batch (within the key's
rate). While a run works on its orders, a heartbeat renews their leases; a run that dies stops renewing, its leases
run out, and another run takes those orders over. After claiming, the order is read again: one that another run
delivered or checked in the meantime is not fetched a second time. Orders held by another live run are reported
"in progress elsewhere"; they are tried once more at the end of the run, so an order whose holder died during this
run is not left behind. A holder on this machine whose process is gone (killed, crashed) is taken over at once,
without waiting for its lease to run out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from flowzero import leases
from flowzero.delivery.outcomes import OrderOutcome, select_orders
from flowzero.errors import FlowzeroError
from flowzero.leases import holder_is_gone, worker_id

if TYPE_CHECKING:
    from flowzero.delivery.destination import Destination
    from flowzero.models import Order

DEFAULT_LEASE_SECONDS = 120.0
CLAIM_CHUNK = 8  # orders a run holds at first (and claims again as each one is done)
ELSEWHERE = "elsewhere"

Say = Callable[[str], None]


def supports_claims(store: Any) -> bool:
    return all(callable(getattr(store, name, None)) for name in ("claim", "release", "get_claim"))


class LeaseKeeper(leases.LeaseKeeper):
    """Renews the claims on the orders in hand (see :class:`flowzero.leases.LeaseKeeper`)."""

    def __init__(self, store: Any, worker: str, lease_seconds: float, order_ids: Sequence[str], say: Say,
                 destination: str | None = None) -> None:
        super().__init__(lambda order_id: bool(store.claim(order_id, worker, lease_seconds, destination)),
                         lease_seconds, order_ids, say, "order")


def _elsewhere(record: Order, message: str, destination: str | None = None) -> OrderOutcome:
    return OrderOutcome(record.order_id, record.aoi_name, record.status or "unknown", ELSEWHERE,
                        destination=destination, message=message)


def _held(record: Order, holder: dict[str, Any] | None, mine: str | None) -> OrderOutcome:
    """The outcome of an order another run holds: in progress elsewhere when that run delivers it where this one
    would (the work is shared), else held for another destination, so nothing was delivered to this one."""
    worker = holder["worker"] if holder else "another run"
    theirs = holder.get("destination") if holder else None
    if theirs is None or theirs == mine:
        return _elsewhere(record, f"in progress elsewhere ({worker})", theirs)
    return _elsewhere(record, f"held by another run ({worker}) delivering to {theirs}; nothing delivered here",
                      theirs)


def delivered_elsewhere_only(outcome: OrderOutcome, destination: Destination | None) -> bool:
    """Whether the outcome is an order another run holds for another destination: nothing arrived at this one.

    Decision (issue #19 item 23): claims stay one per order; a run that finds the order held for another
    destination says so and fails (exit status 1) rather than report success with nothing delivered.
    """
    mine = destination.describe() if destination is not None else None
    return outcome.category == ELSEWHERE and outcome.destination is not None and outcome.destination != mine


def _release_all(store: Any, order_ids: Sequence[str], worker: str, say: Say) -> None:
    for order_id in order_ids:
        try:
            store.release(order_id, worker)
        except FlowzeroError as exc:  # the lease runs out by itself
            say(f"could not release order {order_id}: {exc.message}")


class ClaimGate:
    """What :func:`flowzero.delivery.deliver.check_orders` asks before it checks an order: may this run take it?

    Used as a context manager: the leases of the orders taken are renewed until each is :meth:`done`, and every
    claim still held is given back at the end."""

    def __init__(self, store: Any, destination: Destination | None, force: bool, say: Say,
                 worker: str | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.store, self.destination, self.force, self.say = store, destination, force, say
        self.where = destination.describe() if destination is not None else None
        self.worker = worker or worker_id()
        self.lease = lease_seconds
        self.chunk = CLAIM_CHUNK
        self._keeper = LeaseKeeper(store, self.worker, lease_seconds, [], say, self.where)
        self._held: set[str] = set()

    def __enter__(self) -> ClaimGate:
        self._keeper.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._keeper.__exit__(*exc)
        _release_all(self.store, sorted(self._held), self.worker, self.say)
        self._held.clear()

    def take(self, record: Order) -> tuple[str, Order | OrderOutcome]:
        """("work", fresh record) once claimed and still to do; ("held", outcome) if another run holds it;
        ("done", outcome) if it turned out to need no work (the claim is given back at once)."""
        if not self._claim(record.order_id):
            return "held", _held(record, self.store.get_claim(record.order_id), self.where)
        fresh = self.store.get_order(record.order_id) or record
        _, settled = select_orders([fresh], self.destination, self.force)
        if settled:
            outcome = settled[0]
        elif fresh.updated_at != record.updated_at:
            outcome = _elsewhere(fresh, f"checked by another run meanwhile (now {fresh.status}); not checked twice")
        else:
            self._held.add(record.order_id)
            self._keeper.add(record.order_id)
            return "work", fresh
        _release_all(self.store, [record.order_id], self.worker, self.say)
        return "done", outcome

    def done(self, order_id: str) -> None:
        """The order's outcome is recorded: give it back."""
        if order_id in self._held:
            self._held.discard(order_id)
            self._keeper.discard(order_id)
            _release_all(self.store, [order_id], self.worker, self.say)

    def _claim(self, order_id: str) -> bool:
        if self.store.claim(order_id, self.worker, self.lease, self.where):
            return True
        holder = self.store.get_claim(order_id)
        if holder is None or not holder_is_gone(holder["worker"]):
            return False
        self.say(f"order {order_id} was held by a run that is gone ({holder['worker']}); taking it over")
        self.store.release(order_id, holder["worker"])
        return bool(self.store.claim(order_id, self.worker, self.lease, self.where))
