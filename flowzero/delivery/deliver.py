"""Orchestration: Planet's order states -> transfer jobs -> downloader runs -> outcomes -> order store.

Orders are polled within Planet's order-GET rate, oldest first (:mod:`flowzero.delivery.polling`). As orders
finish they are delivered in waves while the others are still being polled: the jobs of every order finished by
then go to ONE downloader run (one progress bar, one s5cmd invocation), each order gets its outcome, and its row in
the store is updated at once. Download links about to expire are renewed (by fetching the order again) before
they are used, and files whose links were refused are tried once more with fresh ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from flowzero import plugins
from flowzero.delivery.cloud import deliver_cloud_orders, is_cloud_order
from flowzero.delivery.jobs import UNKNOWN_AOI, DeliveryPlan, plan_delivery
from flowzero.delivery.leftovers import DeliveryLock
from flowzero.delivery.manifest import Manifest, manifest_link, order_results, parse_manifest
from flowzero.delivery.outcomes import (
    CATEGORIES,
    FAILING,
    DeliverySettings,
    OrderOutcome,
    catalog_delivery,
    conclude_delivery,
    select_orders,
    utc_now,
)
from flowzero.delivery.polling import Polled, Poller
from flowzero.delivery.progress import TransferProgress
from flowzero.delivery.s3requests import S3Requests, s3_requests
from flowzero.downloaders.base import DownloadOptions
from flowzero.errors import FlowzeroError
from flowzero.models import FINAL_STATES, ORDER_STATES, FailureReason, Order, TransferJob, TransferResult
from flowzero.redact import redact

__all__ = ["CATEGORIES", "FAILING", "DeliverySettings", "OrderOutcome", "check_orders", "make_downloader",
           "select_orders"]

LINK_MARGIN = 60.0  # seconds: a download link expiring sooner than this is renewed before it is used
Say = Callable[[str], None]


@dataclass
class _Checked:
    order_id: str
    record: Order | None
    order_json: dict[str, Any] | None = None
    plan: DeliveryPlan | None = None
    manifest: Manifest | None = None
    error: str | None = None
    status_code: int | None = None


class Gate(Protocol):
    """Work sharing between runs (:class:`flowzero.delivery.claims.ClaimGate`): may this run take the order?"""

    chunk: int

    def take(self, record: Order) -> tuple[str, Order | OrderOutcome]: ...

    def done(self, order_id: str) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...


def check_orders(targets: Sequence[tuple[str, Order | None]], planet: Any, store: Any, config: Any,
                 settings: DeliverySettings, say: Say, gate: Gate | None = None) -> list[OrderOutcome]:
    """Check each order at Planet, deliver the finished ones, update the store; one outcome per target.

    Polling runs in background threads; deliveries run here, in the main thread, where Ctrl-C reaches the
    downloader (the Rust core notices it only there). With a ``gate``, an order is claimed before it is checked,
    a few at a time (more as each is done, or when all in hand are still pending); those another run holds are
    asked about once more at the end."""
    if not targets:
        return []
    run = _Run(planet, store, config, settings, say, gate)
    try:
        with gate if gate is not None else contextlib.nullcontext():
            held = run.work(list(targets), last_try=False)
            if held:
                run.work(held, last_try=True)  # their holders may have finished, or died, meanwhile
    except KeyboardInterrupt:
        # Wake the threads polling Planet (--wait) so Ctrl-C ends the run now, not when the orders finish.
        cancel = getattr(planet, "cancel", None)
        if cancel is not None:
            cancel()
        raise
    return [run.outcomes[order_id] for order_id, _ in targets if order_id in run.outcomes]


class _Run:
    """One check_orders call: takes orders (through the gate), polls them, delivers waves, keeps outcomes."""

    def __init__(self, planet: Any, store: Any, config: Any, settings: DeliverySettings, say: Say,
                 gate: Gate | None) -> None:
        self.planet, self.store, self.config, self.settings, self.say, self.gate = \
            planet, store, config, settings, say, gate
        self.s3 = functools.cache(lambda: s3_requests(config, settings.downloader))  # made once, only if needed
        self.outcomes: dict[str, OrderOutcome] = {}

    def work(self, queue: list[tuple[str, Order | None]], last_try: bool) -> list[tuple[str, Order | None]]:
        """Poll and deliver the orders of ``queue`` this run may take; returns those another run held."""
        held: list[tuple[str, Order | None]] = []
        def prepare(polled: Polled) -> _Checked:  # in a polling thread: manifests are fetched while files move
            return _prepare(_checked(polled, self.settings), self.planet, self.settings, self.say)

        poller = Poller(self.planet, wait=self.settings.wait, timeout=self.settings.wait_timeout, say=self.say,
                        sealed=False, prepare=prepare)

        def take(count: int) -> None:
            taken: list[tuple[str, Order | None]] = []
            while queue and len(taken) < count:
                order_id, record = queue.pop(0)
                verdict, found = ("work", record) if self.gate is None or record is None \
                    else self.gate.take(record)
                if isinstance(found, OrderOutcome):
                    self.outcomes[order_id] = found
                    if verdict == "held" and not last_try:
                        held.append((order_id, record))
                else:
                    taken.append((order_id, found))
            poller.add(taken)
            if not queue:
                poller.seal()

        window = len(queue) if self.gate is None else self.gate.chunk
        take(window)
        with poller:
            for batch in poller.finished():
                if not batch:  # every order in hand is still pending at Planet: take on as many again
                    take(window)
                    window *= 2
                    continue
                self.deliver(batch)
                take(len(batch))
        return held

    def deliver(self, wave: list[_Checked]) -> None:
        """Deliver the orders finished by now (one downloader run), record each outcome, give back the claims."""
        for item, outcome in zip(wave, _deliver_wave(wave, self.planet, self.config, self.settings, self.s3,
                                                     self.say)):
            _record(self.store, item, outcome)
            self.outcomes[item.order_id] = outcome
            if self.gate is not None:
                self.gate.done(item.order_id)


def _checked(polled: Polled, settings: DeliverySettings) -> _Checked:
    item = _Checked(polled.order_id, polled.record, polled.order_json, error=polled.error,
                    status_code=polled.status_code)
    if polled.timed_out:
        state = str((polled.order_json or {}).get("state") or "pending")
        item.error = (f"order {polled.order_id} is still {redact(state)} after {settings.wait_timeout:g} s "
                      "(it keeps running at Planet; check it again later)")
    elif item.error is None and not isinstance(item.order_json, dict):
        item.error = "Planet's answer is not an order"
    return item


def _prepare(item: _Checked, planet: Any, settings: DeliverySettings, say: Say) -> _Checked:
    """A finished order to download as a delivery needs it: fresh links, its manifest and its plan."""
    order_json = item.order_json
    if item.error is not None or not isinstance(order_json, dict):
        return item
    state = str(order_json.get("state", ""))
    record = item.record
    if state not in ("success", "partial") or settings.destination is None or is_cloud_order(record, order_json):
        return item  # cloud orders: see flowzero.delivery.cloud
    try:
        if links_expiring(order_json):
            item.order_json = order_json = planet.get_order(item.order_id)
        link = manifest_link(order_json)
        item.manifest = parse_manifest(planet.get_json(link["location"])) if link else None
        if item.manifest is None:
            say(f"order {item.order_id}: no manifest.json; files cannot be checked against Planet's digests")
        item.plan = plan_delivery(order_json, record, item.manifest, settings.destination, settings.assets)
        if record is None:
            say(f"order {item.order_id}: its AOI is unknown here; files go under '{UNKNOWN_AOI}'")
    except FlowzeroError as exc:
        item.error = redact(exc.message)
        item.status_code = getattr(exc, "status_code", None)
    except Exception as exc:  # one order's surprise must not sink the batch
        item.error = redact(f"{type(exc).__name__}: {exc}")
    return item


def links_expiring(order_json: dict[str, Any], margin: float = LINK_MARGIN) -> bool:
    """Whether any download link of the order has expired or will within ``margin`` seconds."""
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=margin)
    for result in order_results(order_json):
        expires = _parse_time(result.get("expires_at"))
        if expires is not None and expires <= soon:
            return True
    return False


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _deliver_wave(checked: list[_Checked], planet: Any, config: Any, settings: DeliverySettings,
                  s3: Callable[[], S3Requests], say: Say) -> list[OrderOutcome]:
    """Deliver the orders finished by now (one downloader run) and conclude each of them."""
    results = _transfer_all(checked, planet, config, settings, s3, say)
    outcomes = [_conclude(c, results.get(c.order_id, []), settings, s3) for c in checked]
    return deliver_cloud_orders(checked, outcomes, planet, config, settings, say, _run_downloader)


def make_downloader(name: str, config: Any, overwrite: bool, progress: Any, planet: Any = None) -> Any:
    """The downloader plugin ``name`` with options from the config, paced with ``planet``'s download pacer."""
    cls = plugins.get("downloaders", name)
    pacer = planet.limiter.pacer("downloads") if planet is not None and hasattr(planet, "limiter") else None
    options = DownloadOptions(
        max_workers=config.downloads.max_workers, overwrite=overwrite, s3_region=config.s3.region,
        s3_endpoint_url=config.s3.endpoint_url, part_size=config.downloads.part_size_mib * 1024 * 1024,
        timeout=config.planet.timeout, max_retries=config.planet.max_retries, progress=progress,
        download_rate=pacer.rate if pacer is not None else None,
        rate_file=str(pacer.path) if pacer is not None and pacer.path is not None else None,
        throttle_budget=config.planet.throttle_budget,
        max_unknown_size=config.downloads.max_unknown_size_mib * 1024 * 1024,
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
        results = _run_downloader(jobs, config, settings, progress, planet)
        by_order: dict[str, list[TransferResult]] = {}
        start = 0
        for plan in plans:
            by_order[plan.order_id] = results[start:start + len(plan.jobs)]
            start += len(plan.jobs)
        _retry_expired(checked, by_order, planet, config, settings, progress, say)
    return by_order


def _run_downloader(jobs: list[TransferJob], config: Any, settings: DeliverySettings,
                    progress: TransferProgress, planet: Any = None) -> list[TransferResult]:
    downloader = make_downloader(settings.downloader, config, settings.overwrite, progress, planet)
    try:
        results = list(downloader.transfer(jobs))
    except Exception as exc:  # a downloader plugin broke its contract: every file of the run failed
        text = exc.message if isinstance(exc, FlowzeroError) else f"{type(exc).__name__}: {exc}"
        reason = getattr(exc, "reason", FailureReason.OTHER)
        results = [TransferResult(job, ok=False, error=redact(text), reason=reason) for job in jobs]
    if len(results) != len(jobs):
        results = [TransferResult(job, ok=False, error="downloader returned no result", reason=FailureReason.OTHER)
                   for job in jobs]
    progress.finish(results)
    return results


def _retry_expired(checked: Sequence[_Checked], by_order: dict[str, list[TransferResult]], planet: Any,
                   config: Any, settings: DeliverySettings, progress: TransferProgress, say: Say) -> None:
    """Download links expire: files refused for that get one more try with the order's fresh links."""
    retries: list[tuple[_Checked, list[int], list[TransferJob]]] = []
    for item in checked:
        results = by_order.get(item.order_id) or []
        stale = [i for i, r in enumerate(results) if not r.ok and r.reason == FailureReason.EXPIRED_LINK]
        if not stale or item.plan is None or settings.destination is None:
            continue
        try:
            fresh_json = planet.get_order(item.order_id)
            fresh = plan_delivery(fresh_json, item.record, item.manifest, settings.destination, settings.assets)
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
    renewed = iter(_run_downloader(jobs, config, settings, progress, planet))
    for item, positions, _ in retries:
        for i in positions:
            by_order[item.order_id][i] = next(renewed)


def _conclude(item: _Checked, results: list[TransferResult], settings: DeliverySettings,
              s3: Callable[[], S3Requests]) -> OrderOutcome:
    aoi = item.record.aoi_name if item.record else UNKNOWN_AOI
    if item.error is not None or item.order_json is None:
        return OrderOutcome(item.order_id, aoi, "unknown", "error", message=item.error or "no answer",
                            status_code=item.status_code)
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
    outcome = conclude_delivery(outcome, item.plan, results, order_json, settings.destination, s3,
                                 settings.allow_unverified)
    return catalog_delivery(outcome, item.plan, order_json, item.record, settings.destination, s3, settings)


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
