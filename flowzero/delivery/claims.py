"""Work sharing: several ``batch-check-status`` runs, on one machine or many, working the same batch at once.

Each order is claimed in the order store (``OrderStore.claim``) before it is checked and delivered, and released
afterwards. Orders are claimed a few at a time (:data:`CLAIM_CHUNK`), so runs started together split a batch
instead of one run taking all of it. While a run works on its orders, a heartbeat renews their leases; a run that
dies stops renewing, its leases run out, and another run takes those orders over. After claiming, the order is
read again: one that another run delivered or checked in the meantime is not fetched a second time. Orders held
by another live run are reported "in progress elsewhere"; they are tried once more at the end of the run, so an
order whose holder died during this run is not left behind. A holder on this machine whose process is gone
(killed, crashed) is taken over at once, without waiting for its lease to run out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from flowzero import leases
from flowzero.delivery.deliver import OrderOutcome, select_orders
from flowzero.errors import FlowzeroError
from flowzero.leases import holder_is_gone, worker_id

if TYPE_CHECKING:
    from flowzero.delivery.destination import Destination
    from flowzero.models import Order

DEFAULT_LEASE_SECONDS = 120.0
CLAIM_CHUNK = 8  # orders in hand at once: checked concurrently and delivered in one downloader run
ELSEWHERE = "elsewhere"

Process = Callable[[list["Order"]], list[OrderOutcome]]
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


class _Sharing:
    """One run's walk over a batch: claim a few, re-read, process, release; remember what others hold."""

    def __init__(self, store: Any, destination: Destination | None, force: bool, process: Process, say: Say,
                 worker: str, lease_seconds: float, chunk: int) -> None:
        self.store, self.destination, self.force = store, destination, force
        self.process, self.say = process, say
        self.worker, self.lease, self.chunk = worker, lease_seconds, max(1, chunk)
        self.where = destination.describe() if destination is not None else None
        self.outcomes: dict[str, OrderOutcome] = {}

    def walk(self, records: Sequence[Order], last_try: bool) -> list[Order]:
        """Work through ``records``; returns those another run held (to try again later)."""
        held_elsewhere: list[Order] = []
        queue = list(records)
        while queue:
            in_hand: list[Order] = []
            while queue and len(in_hand) < self.chunk:
                record = queue.pop(0)
                verdict, fresh = self._take(record)
                if verdict == "work":
                    in_hand.append(fresh)
                elif verdict == "held" and not last_try:
                    held_elsewhere.append(record)
            if in_hand:
                self._work(in_hand)
        return held_elsewhere

    def _take(self, record: Order) -> tuple[str, Order]:
        """("work", fresh record) once claimed and still to do; ("held", _) if another run holds it;
        ("done", _) if it turned out to need no work (its outcome is recorded)."""
        if not self._claim(record.order_id):
            self.outcomes[record.order_id] = _held(record, self.store.get_claim(record.order_id), self.where)
            return "held", record
        fresh = self.store.get_order(record.order_id) or record
        _, settled = select_orders([fresh], self.destination, self.force)
        if settled:
            self.outcomes[record.order_id] = settled[0]
        elif fresh.updated_at != record.updated_at:
            self.outcomes[record.order_id] = _elsewhere(
                fresh, f"checked by another run meanwhile (now {fresh.status}); not checked twice")
        else:
            return "work", fresh
        _release_all(self.store, [record.order_id], self.worker, self.say)
        return "done", fresh

    def _claim(self, order_id: str) -> bool:
        if self.store.claim(order_id, self.worker, self.lease, self.where):
            return True
        holder = self.store.get_claim(order_id)
        if holder is None or not holder_is_gone(holder["worker"]):
            return False
        self.say(f"order {order_id} was held by a run that is gone ({holder['worker']}); taking it over")
        self.store.release(order_id, holder["worker"])
        return bool(self.store.claim(order_id, self.worker, self.lease, self.where))

    def _work(self, in_hand: list[Order]) -> None:
        ids = [r.order_id for r in in_hand]
        try:
            with LeaseKeeper(self.store, self.worker, self.lease, ids, self.say, self.where):
                for outcome in self.process(in_hand):
                    self.outcomes[outcome.order_id] = outcome
        finally:
            _release_all(self.store, ids, self.worker, self.say)


def check_shared(records: Sequence[Order], store: Any, destination: Destination | None, force: bool,
                 process: Process, say: Say, worker: str | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS, chunk: int = CLAIM_CHUNK) -> list[OrderOutcome]:
    """Check (and deliver) the orders of ``records`` that need it, sharing the work with other runs.

    ``process`` checks and delivers a few claimed orders (``check_orders``). One outcome per record that needed
    work or turned out to be settled, in no particular order.
    """
    sharing = _Sharing(store, destination, force, process, say, worker or worker_id(), lease_seconds, chunk)
    held = sharing.walk(records, last_try=False)
    if held:
        sharing.walk(held, last_try=True)  # their holders may have finished, or died, meanwhile
    return list(sharing.outcomes.values())
