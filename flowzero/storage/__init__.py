"""The order store: every order flowzero placed, and the intents that keep it from ordering twice.

Backends are plugins (``register_storage_backends``); ``storage.backend`` picks one, ``sqlite`` by default.
:func:`flowzero.storage.opening.open_store` is the only way the rest of flowzero gets a store, so it never names
a backend class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Protocol, runtime_checkable

from flowzero.models import NOT_REORDERABLE_STATES, PENDING_STATES, REORDERABLE_STATES, Order, SearchRecord

if TYPE_CHECKING:
    from flowzero.config import Config


@dataclass
class CopyCounts:
    """What a copy between stores did with one kind of record (:meth:`OrderStore.import_records`)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class IntentClaim:
    """What :meth:`OrderStore.claim_intent` found.

    ``taken``: the caller now owns the intent and may place the order. Else ``holder`` (``host:pid:random``)
    owns it until ``expires_at`` and nothing may be placed for it. ``orphan``: the intent was left pending by a
    run that is gone (no owner, or its lease ran out): that run may have placed the order, so ask Planet for it
    by name before placing it; ``details`` are what that run recorded.
    """

    taken: bool
    holder: Optional[str] = None
    expires_at: Optional[str] = None
    orphan: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class OrderStore(Protocol):
    """What a storage backend provides: built as ``cls(config)``; ``storage.backend`` selects its ``name``.

    Every method is safe to call from several processes on the same store; writes are never lost.
    ``tests/test_storage_contract.py`` is the executable form of this contract: a new backend passes it.
    A backend may declare ``url_schemes`` (e.g. ``("postgresql",)``) so ``flowzero db copy --to URL`` finds it.
    """

    name: ClassVar[str]
    location: str  # where the data lives, as it may be shown (a path, or a URL with its password masked)

    def __init__(self, config: Config) -> None:
        """Open (and migrate) the store ``config`` describes."""

    def save_order(self, order: Order) -> None:
        """Insert or replace the order (upsert by ``order_id``); ``created_at`` of an existing row is kept."""

    def get_order(self, order_id: str) -> Optional[Order]:
        """The order, or None."""

    def order_exists(self, order_id: str) -> bool:
        """Whether an order with this id is recorded."""

    def find_existing_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str],
                            product_bundle: Optional[str] = None,
                            order_type: Optional[str] = None) -> Optional[Order]:
        """The newest order for this AOI and date range in a NOT_REORDERABLE_STATES state, or None."""

    def has_completed_order(self, aoi_name: str, start_date: Optional[str], end_date: Optional[str]) -> bool:
        """Whether an order for this AOI and date range finished with status ``success``."""

    def get_batch_orders(self, batch_id: str) -> list[Order]:
        """The orders of one batch, by start date."""

    def update_order_status(self, order_id: str, status: str,
                            metadata: Optional[dict[str, Any]] = None) -> bool:
        """Set the status (and ``updated_at``), merging ``metadata`` keys into the stored metadata.

        Returns False when no such order is recorded.
        """

    def get_orders_by_status(self, status: str) -> list[Order]:
        """Orders in one state, oldest first."""

    def get_stats(self) -> dict[str, Any]:
        """Totals: orders by status and by order type, quota hectares, scenes, batches, AOIs."""

    def list_orders(self, status: Optional[str] = None, batch_id: Optional[str] = None,
                    aoi_name: Optional[str] = None) -> list[Order]:
        """Orders matching every given filter, oldest first."""

    def list_batches(self) -> list[dict[str, Any]]:
        """One summary dict per batch id: AOIs, order count, date span, statuses, quota, scenes."""

    def record_intent(self, order_name: str, details: dict[str, Any]) -> None:
        """Note that an order named ``order_name`` is about to be placed (call before POSTing it).

        Recording a name again makes it pending again with the new details.
        """

    def pending_intents(self) -> list[dict[str, Any]]:
        """Unresolved intents, oldest first: ``{"order_name", "details", "created_at", "owner",
        "lease_expires_at"}`` (owner and lease None when nobody holds it)."""

    def claim_intent(self, order_name: str, details: dict[str, Any], owner: str, lease_seconds: float,
                     pending_only: bool = False) -> IntentClaim:
        """Take the intent to place the order ``order_name`` for ``owner`` until ``lease_seconds`` from now,
        atomically (one write transaction; of several owners claiming at once, exactly one takes it).

        Taken if there is no pending intent of that name (recorded pending with ``details``, as
        :meth:`record_intent` does), if ``owner`` holds it already (lease renewed), or if it is an orphan
        (no owner, or the lease ran out: taken over, its details kept). Not taken while another owner's lease
        runs. ``pending_only`` (reconciling what others left) takes only an intent that is pending already: an
        absent or resolved one is not taken and stays as it is.
        """

    def renew_intent(self, order_name: str, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease on a pending intent; False if ``owner`` does not hold it (any more)."""

    def release_intent(self, order_name: str, owner: str) -> bool:
        """Let go of a pending intent without resolving it (it becomes an orphan); only its owner can."""

    def resolve_intent(self, order_name: str, order_id: Optional[str]) -> bool:
        """Mark an intent done with the order Planet created (or None if none was); False if unknown."""

    def list_intents(self) -> list[dict[str, Any]]:
        """Every intent, resolved or not, oldest first: ``{"order_name", "details", "created_at", "order_id",
        "resolved_at"}`` (the last two None while pending)."""

    def record_search(self, search: SearchRecord) -> str:
        """Keep one search (a new ``search_id`` when it has none; ``searched_at`` defaults to now); its id."""

    def list_searches(self, aoi_name: Optional[str] = None, batch_id: Optional[str] = None) -> list[SearchRecord]:
        """Searches matching every given filter, oldest first (by ``searched_at``)."""

    def claim(self, order_id: str, worker: str, lease_seconds: float, destination: Optional[str] = None) -> bool:
        """Take the order for ``worker`` until ``lease_seconds`` from now, atomically; ``destination`` notes where
        the holder delivers it (shown to other runs by :meth:`get_claim`).

        True if it was free, its lease had expired, or ``worker`` already held it (the lease is then renewed:
        a long delivery keeps its claim by claiming again). False if another worker's lease is running, or no
        such order is recorded. Of several workers claiming a free order at once, exactly one gets True.
        Claims never change the order's other columns or ``updated_at``.
        """

    def release(self, order_id: str, worker: str) -> bool:
        """Give the order up; only its holder can (False if ``worker`` did not hold it)."""

    def get_claim(self, order_id: str) -> Optional[dict[str, Any]]:
        """``{"worker", "expires_at", "destination"}`` while a lease on the order runs, else None."""

    def import_records(self, orders: Sequence[Order],
                       intents: Sequence[Mapping[str, Any]]) -> dict[str, CopyCounts]:
        """Copy orders and intents in (``flowzero db copy``), in one transaction, timestamps as given.

        Absent ones are added; present ones are replaced only if the given one is newer (``updated_at``;
        for intents the later of ``resolved_at``/``created_at``); so a rerun adds nothing.
        Returns ``{"orders": CopyCounts, "intents": CopyCounts}``.
        """

    def check_integrity(self) -> None:
        """Raise StorageError if the stored data is damaged. Called before an order is placed, so it must be
        cheap after the first call (a backend checks once per store, or has nothing to check)."""

    def close(self) -> None:
        """Release the connection."""


__all__ = ["NOT_REORDERABLE_STATES", "PENDING_STATES", "REORDERABLE_STATES", "CopyCounts", "IntentClaim",
           "OrderStore"]
