"""Placing orders: pure planning (request bodies, deterministic names) apart from the idempotent submit."""

from __future__ import annotations

from flowzero.ordering.plan import MAX_ITEMS_PER_ORDER, PlannedOrder, order_name

__all__ = ["MAX_ITEMS_PER_ORDER", "PlannedOrder", "order_name"]
