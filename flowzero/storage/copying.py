"""Copying one order store into another (``flowzero db copy``), so a team can move its history between backends.

A copy is idempotent: an order or intent the target lacks is added as it was (timestamps kept), one the source
holds in a newer state replaces the target's, anything else is left alone; a rerun adds nothing. Deciding which
is which is pure logic here; each backend only writes the rows inside one transaction
(``OrderStore.import_records``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from flowzero.storage import CopyCounts, OrderStore

if TYPE_CHECKING:
    from flowzero.models import Order

_ABSENT = object()
T = TypeVar("T")


def _newer_wins(records: Sequence[T], key_of: Callable[[T], str], stamp_of: Callable[[T], str],
                existing: Mapping[str, Optional[str]]) -> tuple[list[T], CopyCounts]:
    """The records to write, given the target's ``key -> stamp``: absent ones, and those with a later stamp."""
    writes: list[T] = []
    counts = CopyCounts()
    seen: set[str] = set()
    for record in records:
        key = key_of(record)
        if key in seen:
            continue
        seen.add(key)
        have = existing.get(key, _ABSENT)
        if have is _ABSENT:
            counts.added += 1
        elif stamp_of(record) > (have or ""):  # type: ignore[operator]
            counts.updated += 1
        else:
            counts.unchanged += 1
            continue
        writes.append(record)
    return writes, counts


def plan_orders(orders: Sequence[Order], existing: Mapping[str, Optional[str]]) -> tuple[list[Order], CopyCounts]:
    """The orders to write, given the target's ``order_id -> updated_at``; newer ``updated_at`` wins."""
    return _newer_wins(orders, lambda o: o.order_id, lambda o: o.updated_at or "", existing)


def intent_stamp(intent: Mapping[str, Any]) -> str:
    """When an intent last changed: resolved, else recorded."""
    return str(intent.get("resolved_at") or intent.get("created_at") or "")


def plan_intents(intents: Sequence[Mapping[str, Any]],
                 existing: Mapping[str, str]) -> tuple[list[Mapping[str, Any]], CopyCounts]:
    """The intents to write, given the target's ``order_name -> intent_stamp``; the later change wins."""
    return _newer_wins(intents, lambda i: str(i["order_name"]), intent_stamp, existing)


def copy_store(source: OrderStore, target: OrderStore) -> dict[str, CopyCounts]:
    """Every order and intent of ``source`` into ``target``: ``{"orders": counts, "intents": counts}``."""
    return target.import_records(source.list_orders(), source.list_intents())
