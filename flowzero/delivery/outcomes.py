"""How an order's delivery ends: the settings asked for, the outcome of each order, and the conclusion once its
files are in (metadata.json, the STAC catalog, unverifiable files).

Shared by the orchestration (:mod:`flowzero.delivery.deliver`) and cloud delivery (:mod:`flowzero.delivery.cloud`),
so neither needs the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from flowzero.delivery.destination import Destination, write_document
from flowzero.delivery.jobs import DeliveryPlan, key_name, metadata_document
from flowzero.delivery.layout import DEFAULT_ASSETS
from flowzero.delivery.s3requests import S3Requests
from flowzero.delivery.stac import CATALOG_KEY, record_delivery
from flowzero.models import Order, TransferResult
from flowzero.redact import redact

# Categories an order ends in; these make the exit status 1. "unverified": every file arrived, but some could
# not be checked (no manifest entry or no digest); --allow-unverified accepts them as delivered.
FAILING = ("failed", "incomplete", "error", "unverified")
# "elsewhere": another run holds the order (flowzero.delivery.claims).
CATEGORIES = ("delivered", "partial", "ready", "pending", "cancelled", "skipped", "elsewhere", *FAILING)


@dataclass
class DeliverySettings:
    """What the user asked for: where to (None: report states only), how, and whether to wait."""

    destination: Destination | None = None
    downloader: str = "threads"
    assets: tuple[str, ...] = DEFAULT_ASSETS  # what of each PlanetScope item is kept (flowzero.delivery.layout)
    catalog: bool = True  # keep the destination's STAC catalog (flowzero.delivery.stac)
    overwrite: bool = False
    wait: bool = False
    wait_timeout: float | None = None
    show_progress: bool = False
    allow_unverified: bool = False


@dataclass
class OrderOutcome:
    """How one order ended in this run, as the summary and ``--json`` show it."""

    order_id: str
    aoi_name: str
    state: str
    category: str
    destination: str | None = None
    files: list[str] = field(default_factory=list)  # keys delivered or already present
    skipped: int = 0
    failed_files: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error_hints: list[str] = field(default_factory=list)
    message: str = ""
    bytes: int = 0
    catalog: str | None = None  # the destination's STAC root (flowzero.delivery.stac), once this order is in it
    status_code: int | None = None  # Planet's HTTP status when the order could not be checked

    @property
    def failing(self) -> bool:
        return self.category in FAILING

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id, "aoi_name": self.aoi_name, "state": self.state,
            "category": self.category, "destination": self.destination, "files": len(self.files),
            "downloaded": len(self.files) - self.skipped,
            "skipped": self.skipped, "bytes": self.bytes, "failed_files": self.failed_files,
            "missing": self.missing, "error_hints": self.error_hints, "message": self.message,
            "catalog": self.catalog,
        }


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def already_delivered(record: Order, destination: Destination | None) -> bool:
    """Delivered before (to this destination, when one is given)."""
    meta = record.metadata or {}
    if not meta.get("delivered_at"):
        return False
    return destination is None or meta.get("destination") == destination.describe()


def select_orders(records: Sequence[Order], destination: Destination | None,
                  force: bool) -> tuple[list[Order], list[OrderOutcome]]:
    """Which recorded orders to check; the rest (delivered, failed, cancelled) are outcomes right away."""
    to_check: list[Order] = []
    settled: list[OrderOutcome] = []
    for record in records:
        status = (record.status or "").lower()
        if status in ("failed", "cancelled"):
            hints = [str(h) for h in (record.metadata or {}).get("error_hints") or []]
            settled.append(OrderOutcome(record.order_id, record.aoi_name, status, status, error_hints=hints,
                                        message=f"recorded as {status}; not checked again"))
        elif not force and already_delivered(record, destination):
            meta = record.metadata or {}
            settled.append(OrderOutcome(
                record.order_id, record.aoi_name, status, "skipped", destination=meta.get("destination"),
                message=f"already delivered to {meta.get('destination')} at {meta.get('delivered_at')}"))
        else:
            to_check.append(record)
    return to_check, settled


def conclude_delivery(outcome: OrderOutcome, plan: DeliveryPlan, results: list[TransferResult],
                       order_json: dict[str, Any], destination: Destination,
                       s3: Callable[[], S3Requests], allow_unverified: bool = False) -> OrderOutcome:
    outcome.destination = destination.describe()
    outcome.missing = list(plan.missing)
    for result, key in zip(results, plan.keys):
        if result.ok:
            outcome.files.append(key)
            outcome.skipped += int(result.skipped)
            outcome.bytes += result.bytes
        else:
            outcome.failed_files.append({"file": key, "error": result.error or "failed"})
    outcome.failed_files.extend({"file": r.job.name, "error": r.error or "refused"} for r in plan.refused)
    if not plan.jobs and not plan.refused:
        outcome.failed_files.append({"file": "(none)", "error": "Planet listed no file to deliver"})
    if outcome.failed_files:
        outcome.category = "incomplete"
        return outcome
    try:
        requests = s3() if destination.is_s3 else None
        write_document(destination, plan.metadata_key, metadata_document(order_json), requests)
    except Exception as exc:
        return _incomplete(outcome, plan.metadata_key, exc)
    outcome.category = "delivered" if outcome.state == "success" else "partial"
    if plan.unverified:
        names = ", ".join(key_name(n) for n in plan.unverified[:3]) + (" ..." if len(plan.unverified) > 3 else "")
        unchecked = f"{len(plan.unverified)} file(s) not verified: Planet's manifest gives no digest for {names}"
        if allow_unverified:
            outcome.message = f"{unchecked} (accepted: --allow-unverified)"
        else:
            outcome.category = "unverified"
            outcome.message = f"{unchecked}; rerun with --allow-unverified to accept them"
    return outcome


def catalog_delivery(outcome: OrderOutcome, plan: DeliveryPlan, order_json: dict[str, Any], record: Order | None,
                     destination: Destination, s3: Callable[[], S3Requests],
                     settings: DeliverySettings) -> OrderOutcome:
    """Once an order is delivered, add its items to the destination's STAC catalog (:mod:`flowzero.delivery.stac`)."""
    if not settings.catalog or outcome.category not in ("delivered", "partial"):
        return outcome

    try:
        outcome.catalog = record_delivery(destination, plan, order_json, record, s3 if destination.is_s3 else None).root
    except Exception as exc:
        return _incomplete(outcome, CATALOG_KEY, exc)
    return outcome


def _incomplete(outcome: OrderOutcome, key: str, exc: Exception) -> OrderOutcome:
    """The order's files are verified but ``key`` could not be written: a rerun (files skipped) completes it."""
    outcome.failed_files.append({"file": key, "error": redact(f"{type(exc).__name__}: {exc}")})
    outcome.category = "incomplete"
    return outcome


