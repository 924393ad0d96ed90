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

import os
import socket
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from flowzero.delivery.deliver import OrderOutcome, select_orders
from flowzero.errors import FlowzeroError

if TYPE_CHECKING:
    from flowzero.delivery.destination import Destination
    from flowzero.models import Order

DEFAULT_LEASE_SECONDS = 120.0
CLAIM_CHUNK = 8  # orders a run holds at first (and claims again as each one is done)
ELSEWHERE = "elsewhere"

Say = Callable[[str], None]


def worker_id() -> str:
    """``host:pid:random``: unique per run, and tells a person where the holder of an order runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_is_gone(worker: str) -> bool:
    """Whether a claim's holder was a run on this machine whose process no longer exists (killed, crashed).

    Its claim need not run out first: a rerun right after a crash takes the order at once. Holders on other
    machines, or whose process may still run, keep their lease.
    """
    from flowzero.delivery.leftovers import process_alive

    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


def supports_claims(store: Any) -> bool:
    return all(callable(getattr(store, name, None)) for name in ("claim", "release", "get_claim"))


class LeaseKeeper:
    """Renews the leases of the orders in hand every third of a lease, from a background thread."""

    def __init__(self, store: Any, worker: str, lease_seconds: float, order_ids: Sequence[str], say: Say) -> None:
        self._store = store
        self._worker = worker
        self._lease = lease_seconds
        self._ids = set(order_ids)
        self._ids_lock = threading.Lock()
        self._say = say
        self._stop = threading.Event()
        self._lost: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="flowzero-lease", daemon=True)

    def add(self, order_id: str) -> None:
        with self._ids_lock:
            self._ids.add(order_id)

    def discard(self, order_id: str) -> None:
        with self._ids_lock:
            self._ids.discard(order_id)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            with self._ids_lock:
                in_hand = sorted(self._ids)
            for order_id in in_hand:
                if order_id in self._lost:
                    continue
                try:
                    kept = self._store.claim(order_id, self._worker, self._lease)
                except FlowzeroError as exc:
                    self._say(f"could not renew the claim on order {order_id}: {exc.message}")
                    continue
                if not kept:
                    self._lost.add(order_id)
                    self._say(f"lost the claim on order {order_id} (its lease ran out); another run may take it")


def _elsewhere(record: Order, message: str) -> OrderOutcome:
    return OrderOutcome(record.order_id, record.aoi_name, record.status or "unknown", ELSEWHERE, message=message)


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
        self.worker = worker or worker_id()
        self.lease = lease_seconds
        self.chunk = CLAIM_CHUNK
        self._keeper = LeaseKeeper(store, self.worker, lease_seconds, [], say)
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
            holder = self.store.get_claim(record.order_id)
            who = holder["worker"] if holder else "another run"
            return "held", _elsewhere(record, f"in progress elsewhere ({who})")
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
        if self.store.claim(order_id, self.worker, self.lease):
            return True
        holder = self.store.get_claim(order_id)
        if holder is None or not holder_is_gone(holder["worker"]):
            return False
        self.say(f"order {order_id} was held by a run that is gone ({holder['worker']}); taking it over")
        self.store.release(order_id, holder["worker"])
        return bool(self.store.claim(order_id, self.worker, self.lease))
