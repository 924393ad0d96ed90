"""Import the old tool's ``orders.json`` log, so its history counts for "never order twice".

The old log is a JSON list of records whose keys vary (older records lack batch_id, scenes_selected, ...;
basemap records carry a mosaic_name and "N/A" dates). Each record becomes an :class:`Order`; keys the store
has no column for are kept in ``metadata``. Re-running an import skips the ids already present, so it is safe
to repeat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from flowzero.aoi.naming import sanitize_name
from flowzero.errors import AOIError, UsageError
from flowzero.models import ORDER_STATES, Order
from flowzero.redact import redact
from flowzero.storage.records import format_timestamp

if TYPE_CHECKING:
    from flowzero.storage import OrderStore

_MISSING = frozenset({"", "n/a", "na", "none", "null", "-"})
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
# Keys of the old tool that have a column; everything else goes to metadata.
_KNOWN_KEYS = frozenset({
    "order_id", "aoi_name", "order_type", "start_date", "end_date", "num_bands", "product_bundle", "clipped",
    "aoi_area_sqkm", "scenes_selected", "scenes_found", "quota_hectares", "batch_id", "batch_order",
    "mosaic_name", "order_name", "timestamp", "status",
})


class InvalidRecord(ValueError):
    """A record that cannot become an order; the message says why."""


@dataclass
class ImportReport:
    """What an import did, for the CLI's summary line and ``--json``."""

    path: str
    total: int = 0
    imported: int = 0
    already_present: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "total": self.total, "imported": self.imported,
                "already_present": self.already_present, "invalid": self.invalid, "problems": self.problems}


def read_legacy_file(path: Path) -> list[Any]:
    """The records of an ``orders.json``; a missing, malformed or non-list file is a one-line UsageError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"cannot import {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot import {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"cannot import {path}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
    except RecursionError:
        raise UsageError(f"cannot import {path}: JSON nested too deeply to be an order log") from None
    if not isinstance(data, list):
        raise UsageError(f"cannot import {path}: expected a JSON list of order records, "
                         f"got {type(data).__name__ if not isinstance(data, dict) else 'an object'}",
                         hint="pass the old tool's orders.json")
    return data


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _MISSING)


def _text(value: Any, key: str) -> Optional[str]:
    if _blank(value):
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip()
    raise InvalidRecord(f"{key} should be text, got {type(value).__name__}")


def _date(value: Any, key: str) -> Optional[str]:
    if _blank(value):
        return None
    if isinstance(value, str):
        head = value.strip()[:10]
        try:
            return date.fromisoformat(head).isoformat()
        except ValueError:
            pass
    raise InvalidRecord(f"{key} {value!r} is not a date (YYYY-MM-DD or N/A)")


def _number(value: Any, key: str, kind: Callable[[Any], Any]) -> Any:
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise InvalidRecord(f"{key} should be a number, got {value!r}")
    try:
        number = float(value.replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise InvalidRecord(f"{key} should be a number, got {value!r}") from None
    if kind is int:
        if not number.is_integer():
            raise InvalidRecord(f"{key} should be a whole number, got {value!r}")
        return int(number)
    return number


def _flag(value: Any, key: str, default: bool) -> bool:
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRecord(f"{key} should be true or false, got {value!r}")


def _timestamp(value: Any) -> Optional[str]:
    if not isinstance(value, str) or _blank(value):
        return None
    try:
        return format_timestamp(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def _status(value: Any) -> tuple[str, Optional[str]]:
    """Planet's state, or "unknown" plus the original text when the old tool recorded none or something else.

    "unknown" still blocks ordering that range again (see flowzero.storage.NOT_REORDERABLE_STATES).
    """
    text = _text(value, "status")
    if text is not None and text.lower() in ORDER_STATES:
        return text.lower(), None
    return "unknown", text


def _aoi_name(value: Any, order_id: str) -> str:
    """The record's AOI name under the rules every AOI name follows (:func:`flowzero.aoi.sanitize_name`): it names
    delivery folders and S3 keys, so one that climbs out (``../``), holds control characters or is too long makes
    the record invalid; odd characters become ``_``, as for names taken from file names."""
    try:
        text = _text(value, "aoi_name")
    except InvalidRecord as exc:
        raise InvalidRecord(f"order {order_id}: {exc}") from None
    if not text:
        raise InvalidRecord(f"order {order_id}: missing aoi_name")
    try:
        return sanitize_name(text)
    except AOIError as exc:
        raise InvalidRecord(f"order {order_id}: {exc.message}") from None


def legacy_record_to_order(record: Any, source: str = "orders.json") -> Order:
    """One old-tool record as an :class:`Order`; raises :class:`InvalidRecord` saying what is wrong."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"expected an object, got {type(record).__name__}")
    order_id = _text(record.get("order_id"), "order_id")
    if not order_id:
        raise InvalidRecord("missing order_id")
    aoi_name = _aoi_name(record.get("aoi_name"), order_id)
    try:
        batch_id = _text(record.get("batch_id"), "batch_id")
        created_at = _timestamp(record.get("timestamp"))
        metadata = {key: value for key, value in record.items() if key not in _KNOWN_KEYS}
        metadata["imported_from"] = source
        if created_at is None and not _blank(record.get("timestamp")):
            metadata["legacy_timestamp"] = record["timestamp"]
        status, odd_status = _status(record.get("status"))
        if odd_status is not None:
            metadata["legacy_status"] = odd_status
        return Order(
            order_id=order_id,
            aoi_name=aoi_name,
            order_type=_text(record.get("order_type"), "order_type") or "PSScope",
            batch_id=batch_id,
            start_date=_date(record.get("start_date"), "start_date"),
            end_date=_date(record.get("end_date"), "end_date"),
            status=status,
            num_bands=_text(record.get("num_bands"), "num_bands"),
            product_bundle=_text(record.get("product_bundle"), "product_bundle"),
            clipped=_flag(record.get("clipped"), "clipped", default=True),
            aoi_area_sqkm=_number(record.get("aoi_area_sqkm"), "aoi_area_sqkm", float),
            scenes_selected=_number(record.get("scenes_selected"), "scenes_selected", int),
            scenes_found=_number(record.get("scenes_found"), "scenes_found", int),
            quota_hectares=_number(record.get("quota_hectares"), "quota_hectares", float),
            batch_order=_flag(record.get("batch_order"), "batch_order", default=batch_id is not None),
            mosaic_name=_text(record.get("mosaic_name"), "mosaic_name"),
            order_name=_text(record.get("order_name"), "order_name"),
            metadata=metadata,
            created_at=created_at,
        )
    except InvalidRecord as exc:
        raise InvalidRecord(f"order {order_id}: {exc}") from None


def import_orders_json(store: OrderStore, path: Path) -> ImportReport:
    """Import every valid record not already in ``store``; the report counts each outcome."""
    records = read_legacy_file(path)
    report = ImportReport(path=str(path), total=len(records))
    for index, record in enumerate(records, start=1):
        try:
            order = legacy_record_to_order(record, source=path.name)
        except InvalidRecord as exc:
            report.invalid += 1
            report.problems.append(redact(f"record {index}: {exc}"))
            continue
        if store.order_exists(order.order_id):
            report.already_present += 1
            continue
        store.save_order(order)
        report.imported += 1
    return report
