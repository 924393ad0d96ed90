"""How an :class:`~flowzero.models.Order` becomes a row and back, shared by every SQL backend.

The ``orders`` columns are exactly the dataclass fields, in the same order; booleans are stored as 0/1 and
``metadata`` as JSON text. JSON written to the database passes through :func:`flowzero.redact.redact`, so a
download URL with its token or a key that slipped into metadata never reaches the file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from flowzero.errors import StorageError
from flowzero.models import Order
from flowzero.redact import redact

ORDER_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Order))
_BOOL_COLUMNS = frozenset({"clipped", "batch_order"})


def utc_now() -> str:
    """The current time as stored: UTC, millisecond precision, sortable as text."""
    return format_timestamp(datetime.now(timezone.utc))


def format_timestamp(moment: datetime) -> str:
    """``2024-11-05T14:32:10.123Z``; a naive datetime is taken as local time, as ``datetime.now()`` gives."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def dump_json(value: dict[str, Any]) -> str:
    """JSON text for the database, with secrets and URL tokens redacted."""
    text = json.dumps(value, sort_keys=True, default=str)
    return redact(text)


def load_json(text: str | None) -> dict[str, Any]:
    """A JSON object column back as a dict; anything unreadable is kept, not lost, under ``_raw``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


def order_to_row(order: Order, now: str, keep_timestamps: bool = False) -> tuple[Any, ...]:
    """Column values in :data:`ORDER_COLUMNS` order; timestamps default to ``now``.

    ``updated_at`` becomes ``now`` (this is a write), unless ``keep_timestamps``: a copy between stores keeps
    the history as it was.
    """
    if not isinstance(order.order_id, str) or not order.order_id.strip():
        raise StorageError("cannot save an order without an order_id")
    if not isinstance(order.aoi_name, str) or not order.aoi_name.strip():
        raise StorageError(f"cannot save order {order.order_id}: it has no aoi_name")
    values: list[Any] = []
    for name in ORDER_COLUMNS:
        value = getattr(order, name)
        if name in _BOOL_COLUMNS:
            value = int(bool(value))
        elif name == "metadata":
            value = dump_json(value or {})
        elif name == "created_at":
            value = value or now
        elif name == "updated_at":
            value = (value or now) if keep_timestamps else now
        values.append(value)
    return tuple(values)


def row_to_order(row: Sequence[Any]) -> Order:
    """An :class:`Order` from a row selected as :data:`ORDER_COLUMNS`."""
    data = dict(zip(ORDER_COLUMNS, row))
    for name in _BOOL_COLUMNS:
        data[name] = bool(data[name])
    data["metadata"] = load_json(data["metadata"])
    return Order(**data)


def order_to_dict(order: Order) -> dict[str, Any]:
    """A plain dict for JSON output."""
    return dataclasses.asdict(order)


def intent_row(intent: Mapping[str, Any], now: str) -> tuple[Any, ...]:
    """An intent as stored: (order_name, details JSON, created_at, order_id, resolved_at)."""
    return (str(intent["order_name"]), dump_json(dict(intent.get("details") or {})),
            intent.get("created_at") or now, intent.get("order_id"), intent.get("resolved_at"))


def check_claim_args(worker: str, lease_seconds: float) -> None:
    """A claim needs a worker id and a positive lease, whatever the backend."""
    if not isinstance(worker, str) or not worker.strip():
        raise ValueError("a claim needs a non-empty worker id")
    if not lease_seconds > 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
