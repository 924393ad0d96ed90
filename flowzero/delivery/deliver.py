"""Orchestration: Planet's order states -> transfer jobs -> one downloader run -> outcomes -> order store.

Orders are checked concurrently (bounded), the jobs of every deliverable order go to ONE downloader run (one
progress bar, one s5cmd invocation), then each order gets its outcome and its row in the store is updated.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from flowzero.delivery.cloud import deliver_cloud_orders, is_cloud_order
from flowzero.delivery.destination import Destination, write_document
from flowzero.delivery.jobs import UNKNOWN_AOI, DeliveryPlan, metadata_document, plan_delivery
from flowzero.delivery.leftovers import DeliveryLock
from flowzero.delivery.manifest import Manifest, manifest_link, parse_manifest
from flowzero.delivery.progress import TransferProgress
from flowzero.delivery.s3requests import S3Requests, s3_requests
from flowzero.downloaders.verify import EXPIRED_MARK
from flowzero.errors import FlowzeroError
from flowzero.models import FINAL_STATES, ORDER_STATES, Order, TransferJob, TransferResult
from flowzero.redact import redact

MAX_CONCURRENT_CHECKS = 8
# Categories an order ends in; the first three make the exit status 1.
FAILING = ("failed", "incomplete", "error")
# "elsewhere": another run holds the order (flowzero.delivery.claims).
CATEGORIES = ("delivered", "partial", "ready", "pending", "cancelled", "skipped", "elsewhere", *FAILING)

Say = Callable[[str], None]


@dataclass
class DeliverySettings:
    """What the user asked for: where to (None: report states only), how, and whether to wait."""

    destination: Destination | None = None
    downloader: str = "threads"
    overwrite: bool = False
    wait: bool = False
    wait_timeout: float | None = None
    show_progress: bool = False


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
        }


@dataclass
class _Checked:
    order_id: str
    record: Order | None
    order_json: dict[str, Any] | None = None
    plan: DeliveryPlan | None = None
    manifest: Manifest | None = None
    error: str | None = None


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


def check_orders(targets: Sequence[tuple[str, Order | None]], planet: Any, store: Any, config: Any,
                 settings: DeliverySettings, say: Say) -> list[OrderOutcome]:
    """Check each order at Planet, deliver the finished ones, update the store; one outcome per target."""
    if not targets:
        return []
    workers = max(1, min(MAX_CONCURRENT_CHECKS, len(targets)))
    pool = ThreadPoolExecutor(workers)
    try:
        checked = list(pool.map(lambda t: _check_one(t[0], t[1], planet, settings, say), targets))
    except KeyboardInterrupt:
        # Wake the threads polling Planet (--wait) so Ctrl-C ends the run now, not when the orders finish.
        cancel = getattr(planet, "cancel", None)
        if cancel is not None:
            cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    s3 = functools.cache(lambda: s3_requests(config, settings.downloader))  # made once, only if needed
    results = _transfer_all(checked, planet, config, settings, s3, say)
    outcomes = [_conclude(c, results.get(c.order_id, []), settings, s3) for c in checked]
    outcomes = deliver_cloud_orders(checked, outcomes, planet, config, settings, say)
    for outcome, item in zip(outcomes, checked):
        _record(store, item, outcome)
    return outcomes


def _check_one(order_id: str, record: Order | None, planet: Any, settings: DeliverySettings,
               say: Say) -> _Checked:
    item = _Checked(order_id, record)
    try:
        if settings.wait:
            def on_state(order: dict[str, Any]) -> None:
                say(f"order {order_id}: {order.get('state')}")

            order_json = planet.wait_order(order_id, timeout=settings.wait_timeout, on_state=on_state)
        else:
            order_json = planet.get_order(order_id)
        item.order_json = order_json
        state = str(order_json.get("state", ""))
        if state in ("success", "partial") and settings.destination is not None \
                and not is_cloud_order(record, order_json):  # cloud orders: see flowzero.delivery.cloud
            link = manifest_link(order_json)
            item.manifest = parse_manifest(planet.get_json(link["location"])) if link else None
            if item.manifest is None:
                say(f"order {order_id}: no manifest.json; files cannot be checked against Planet's digests")
            item.plan = plan_delivery(order_json, record, item.manifest, settings.destination)
            if record is None:
                say(f"order {order_id}: its AOI is unknown here; files go under '{UNKNOWN_AOI}'")
    except FlowzeroError as exc:
        item.error = redact(exc.message)
    except Exception as exc:  # one order's surprise must not sink the batch
        item.error = redact(f"{type(exc).__name__}: {exc}")
    return item


def make_downloader(name: str, config: Any, overwrite: bool, progress: Any) -> Any:
    """The downloader plugin ``name`` with options from the config."""
    from flowzero import plugins
    from flowzero.downloaders.base import DownloadOptions

    cls = plugins.get("downloaders", name)
    options = DownloadOptions(
        max_workers=config.downloads.max_workers, overwrite=overwrite, s3_region=config.s3.region,
        s3_endpoint_url=config.s3.endpoint_url, part_size=config.downloads.part_size_mib * 1024 * 1024,
        timeout=config.planet.timeout, max_retries=config.planet.max_retries, progress=progress,
        s3_profile=config.s3.profile,
    )
    return cls(options)


def _transfer_all(checked: Sequence[_Checked], planet: Any, config: Any, settings: DeliverySettings,
                  s3: Callable[[], S3Requests], say: Say) -> dict[str, list[TransferResult]]:
    """Every deliverable order's jobs in ONE downloader run, then one more for files whose links expired."""
    plans = [c.plan for c in checked if c.plan is not None and c.plan.jobs]
    jobs = [job for plan in plans for job in plan.jobs]
    if not jobs:
        return {}
    where = settings.destination.describe() if settings.destination else "?"
    say(f"delivering {len(jobs)} file(s) of {len(plans)} order(s) to {where} with '{settings.downloader}'")
    with DeliveryLock(settings.destination, [p.folder for p in plans], s3, say), \
            TransferProgress(settings.show_progress) as progress:  # the lock also cleans killed runs' leftovers
        progress.add(sum(job.size or 0 for job in jobs), len(jobs))
        results = _run_downloader(jobs, config, settings, progress)
        by_order: dict[str, list[TransferResult]] = {}
        start = 0
        for plan in plans:
            by_order[plan.order_id] = results[start:start + len(plan.jobs)]
            start += len(plan.jobs)
        _retry_expired(checked, by_order, planet, config, settings, progress, say)
    return by_order


def _run_downloader(jobs: list[TransferJob], config: Any, settings: DeliverySettings,
                    progress: TransferProgress) -> list[TransferResult]:
    downloader = make_downloader(settings.downloader, config, settings.overwrite, progress)
    try:
        results = list(downloader.transfer(jobs))
    except Exception as exc:  # a downloader plugin broke its contract: every file of the run failed
        text = exc.message if isinstance(exc, FlowzeroError) else f"{type(exc).__name__}: {exc}"
        results = [TransferResult(job, ok=False, error=redact(text)) for job in jobs]
    if len(results) != len(jobs):
        results = [TransferResult(job, ok=False, error="downloader returned no result") for job in jobs]
    progress.finish(results)
    return results


def _retry_expired(checked: Sequence[_Checked], by_order: dict[str, list[TransferResult]], planet: Any,
                   config: Any, settings: DeliverySettings, progress: TransferProgress, say: Say) -> None:
    """Download links expire: files refused for that get one more try with the order's fresh links."""
    retries: list[tuple[_Checked, list[int], list[TransferJob]]] = []
    for item in checked:
        results = by_order.get(item.order_id) or []
        stale = [i for i, r in enumerate(results) if not r.ok and EXPIRED_MARK in (r.error or "")]
        if not stale or item.plan is None or settings.destination is None:
            continue
        try:
            fresh_json = planet.get_order(item.order_id)
            fresh = plan_delivery(fresh_json, item.record, item.manifest, settings.destination)
        except FlowzeroError:
            continue
        fresh_jobs = dict(zip(fresh.keys, fresh.jobs))
        usable = [i for i in stale if item.plan.keys[i] in fresh_jobs]
        if usable:
            item.order_json = fresh_json
            retries.append((item, usable, [fresh_jobs[item.plan.keys[i]] for i in usable]))
    jobs = [job for _, _, order_jobs in retries for job in order_jobs]
    if not jobs:
        return
    say(f"{len(jobs)} download link(s) expired; trying again with fresh links")
    results = iter(_run_downloader(jobs, config, settings, progress))
    for item, positions, _ in retries:
        for i in positions:
            by_order[item.order_id][i] = next(results)


def _conclude(item: _Checked, results: list[TransferResult], settings: DeliverySettings,
              s3: Callable[[], S3Requests]) -> OrderOutcome:
    aoi = item.record.aoi_name if item.record else UNKNOWN_AOI
    if item.error is not None or item.order_json is None:
        return OrderOutcome(item.order_id, aoi, "unknown", "error", message=item.error or "no answer")
    order_json = item.order_json
    state = str(order_json.get("state", "unknown"))
    hints = [redact(str(h)) for h in order_json.get("error_hints") or []]
    outcome = OrderOutcome(item.order_id, aoi, state, "pending", error_hints=hints,
                           message=redact(str(order_json.get("last_message") or "")))
    if state in ("queued", "running"):
        return outcome
    if state in ("failed", "cancelled"):
        outcome.category = state
        return outcome
    if state not in FINAL_STATES:
        outcome.category = "error"
        outcome.message = f"unknown order state '{state}' (expected one of {', '.join(ORDER_STATES)})"
        return outcome
    if settings.destination is None or item.plan is None:
        outcome.category = "ready" if state == "success" else "partial"
        if item.plan is None and settings.destination is None:
            outcome.message = "finished; use --output to download it"
        return outcome
    return _conclude_delivery(outcome, item.plan, results, order_json, settings.destination, s3)


def _conclude_delivery(outcome: OrderOutcome, plan: DeliveryPlan, results: list[TransferResult],
                       order_json: dict[str, Any], destination: Destination,
                       s3: Callable[[], S3Requests]) -> OrderOutcome:
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
        error = redact(f"{type(exc).__name__}: {exc}")
        outcome.failed_files.append({"file": plan.metadata_key, "error": error})
        outcome.category = "incomplete"
        return outcome
    outcome.category = "delivered" if outcome.state == "success" else "partial"
    return outcome


def _record(store: Any, item: _Checked, outcome: OrderOutcome) -> None:
    """Write what this run learnt to the order store (orders it does not know are left alone)."""
    if outcome.category == "error" or store is None:
        return
    metadata: dict[str, Any] = {}
    if outcome.error_hints:
        metadata["error_hints"] = outcome.error_hints
    if outcome.category in ("delivered", "partial") and outcome.destination:
        metadata.update(delivered_at=utc_now(), destination=outcome.destination, files=outcome.files,
                        missing=outcome.missing, delivery_failed_files=[])
    elif outcome.category == "incomplete":
        metadata["delivery_failed_files"] = [f["file"] for f in outcome.failed_files]
    store.update_order_status(item.order_id, outcome.state, metadata or None)
