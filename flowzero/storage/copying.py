"""Copying one order store into another (``flowzero db copy``), so a team can move its history between backends.

A copy is idempotent: an order or intent the target lacks is added as it was (timestamps kept), one the source
holds in a newer state replaces the target's, anything else is left alone; a rerun adds nothing. Deciding which
is which is pure logic here; each backend only writes the rows inside one transaction
(``OrderStore.import_records``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from flowzero.models import Order
    from flowzero.storage import OrderStore

_ABSENT = object()


@dataclass
class CopyCounts:
    """What a copy did with one kind of record."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def plan_orders(orders: Sequence[Order], existing: Mapping[str, Optional[str]]) -> tuple[list[Order], CopyCounts]:
    """The orders to write, given the target's ``order_id -> updated_at``; newer ``updated_at`` wins."""
    writes: list[Order] = []
    counts = CopyCounts()
    seen: set[str] = set()
    for order in orders:
        if order.order_id in seen:
            continue
        seen.add(order.order_id)
        have = existing.get(order.order_id, _ABSENT)
        if have is _ABSENT:
            counts.added += 1
        elif (order.updated_at or "") > (have or ""):  # type: ignore[operator]
            counts.updated += 1
        else:
            counts.unchanged += 1
            continue
        writes.append(order)
    return writes, counts


def intent_stamp(intent: Mapping[str, Any]) -> str:
    """When an intent last changed: resolved, else recorded."""
    return str(intent.get("resolved_at") or intent.get("created_at") or "")


def plan_intents(intents: Sequence[Mapping[str, Any]],
                 existing: Mapping[str, str]) -> tuple[list[Mapping[str, Any]], CopyCounts]:
    """The intents to write, given the target's ``order_name -> intent_stamp``; the later change wins."""
    writes: list[Mapping[str, Any]] = []
    counts = CopyCounts()
    seen: set[str] = set()
    for intent in intents:
        name = str(intent["order_name"])
        if name in seen:
            continue
        seen.add(name)
        have = existing.get(name)
        if have is None:
            counts.added += 1
        elif intent_stamp(intent) > have:
            counts.updated += 1
        else:
            counts.unchanged += 1
            continue
        writes.append(intent)
    return writes, counts


def copy_store(source: OrderStore, target: OrderStore) -> dict[str, CopyCounts]:
    """Every order and intent of ``source`` into ``target``: ``{"orders": counts, "intents": counts}``."""
    return target.import_records(source.list_orders(), source.list_intents())
