"""The ordering commands as a library: read the inputs, ask the provider, submit; results back, nothing printed.

Inputs are checked (AOI file, dates) before the Planet client is built, so a typo fails fast with one line. What a
person should hear while it runs (the AOI searched, the cloud delivery, a dry run) goes to ``say``; each order as
soon as it is settled to ``on_result``; the CLI (:mod:`flowzero.cli.ordering`) and the demo present the results.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from flowzero import plugins
from flowzero.aoi import AOI, read_gages
from flowzero.aoi import load_aoi as read_aoi
from flowzero.chunking import parse_date
from flowzero.delivery.cloud.block import CloudDelivery, resolve_delivery
from flowzero.errors import UsageError
from flowzero.ordering.batch import BatchReport, ChunkOutcome, plan_chunks, run_batch
from flowzero.ordering.plan import apply_delivery
from flowzero.ordering.providers import MOSAICS, SCENES, SceneSearch
from flowzero.ordering.submit import ELSEWHERE, EXISTS, RECOVERED, SubmitResult, submit_orders
from flowzero.planet.destinations import DestinationsClient

if TYPE_CHECKING:
    from flowzero.config import Config
    from flowzero.models import Order
    from flowzero.planet.client import PlanetClient
    from flowzero.storage import OrderStore

Say = Callable[[str], None]
OnResult = Callable[[SubmitResult], None]


class Services(Protocol):
    """What the ordering workflow needs from its caller: the configuration, the order store, a Planet client."""

    @property
    def config(self) -> Config: ...

    def store(self) -> OrderStore: ...

    def planet(self) -> PlanetClient: ...


@dataclass
class SubmitReport:
    """One submit (or order-basemap): the search it planned from (None for basemaps) and each order's outcome."""

    search: Optional[SceneSearch]
    results: list[SubmitResult] = field(default_factory=list)
    target: Optional[CloudDelivery] = None

    @property
    def any_existing(self) -> bool:
        return any(r.outcome in (EXISTS, RECOVERED) for r in self.results)

    @property
    def held_elsewhere(self) -> bool:
        """Another run was still placing an order: this run cannot confirm it was placed."""
        return any(r.outcome == ELSEWHERE for r in self.results)


def parse_range(start_date: str, end_date: str) -> tuple[date, date]:
    """``--start-date`` / ``--end-date`` as dates; a bad or reversed date is a one-line UsageError."""
    start = parse_date(start_date, "--start-date")
    end = parse_date(end_date, "--end-date")
    if end < start:
        raise UsageError(f"--end-date {end.isoformat()} is before --start-date {start.isoformat()}",
                         hint="swap the two dates")
    return start, end


def load_aoi(path: str, name: Optional[str]) -> AOI:
    return read_aoi(path, name)


def provider(services: Services, kind: str, name: Optional[str] = None) -> Any:
    """The provider of ``kind`` (the one ``--provider`` names, else the one installed), bound to this run's
    Planet client and config."""
    cls = plugins.provider_for(kind, name)
    return cls(services.planet(), services.config)


def force_suffix() -> str:
    """A fresh suffix for a deliberate re-order (``--force``): the UTC time and a little randomness."""
    return "r" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + secrets.token_hex(2)


def cloud_target(services: Services, option: Optional[str], say: Say) -> Optional[CloudDelivery]:
    """The checked cloud delivery (None: download), resolved before anything is searched or ordered."""
    def lookup(ref: str) -> Optional[dict[str, Any]]:
        return DestinationsClient(services.planet()).find(ref)

    target = resolve_delivery(option, services.config, lookup)
    if target is not None:
        say(f"Cloud delivery: {target.describe()}")
    return target


def _aoi_line(aoi: AOI, start: date, end: date, extra: str) -> str:
    return f"AOI {aoi.name} ({aoi.area_sqkm:,.2f} km²), {start.isoformat()} to {end.isoformat()}, {extra}"


def search_scenes(services: Services, *, aoi_path: str, aoi_name: Optional[str], start_date: str, end_date: str,
                  cadence: str, num_bands: str, bundle: Optional[str], say: Say,
                  provider_name: Optional[str] = None) -> SceneSearch:
    """The best scenes per cadence for an AOI and range (orders nothing)."""
    start, end = parse_range(start_date, end_date)
    aoi = load_aoi(aoi_path, aoi_name)
    scenes = provider(services, SCENES, provider_name)
    say(_aoi_line(aoi, start, end, f"cadence {cadence}, {num_bands}") + ": searching...")
    return scenes.search(aoi, start, end, cadence=cadence, num_bands=num_bands, bundle=bundle)


def _place(services: Services, planned: Sequence[Any], *, force: bool, dry_run: bool, on_result: OnResult,
           on_recovered: Callable[[Order], None]) -> list[SubmitResult]:
    client = None if dry_run else services.planet()
    return submit_orders(planned, services.store(), client, force=force, dry_run=dry_run, on_result=on_result,
                         on_recovered=on_recovered)


def submit(services: Services, *, aoi_path: str, aoi_name: Optional[str], start_date: str, end_date: str,
           cadence: str, num_bands: str, bundle: Optional[str], dry_run: bool, force: bool,
           delivery: Optional[str], say: Say, on_search: Callable[[SceneSearch], None],
           on_result: OnResult, on_recovered: Callable[[Order], None],
           provider_name: Optional[str] = None) -> SubmitReport:
    """Search, then order the selection clipped to the AOI, never twice. ``on_search`` hears of the search
    before anything is ordered; no selected scene: nothing is planned."""
    target = cloud_target(services, delivery, say)
    search = search_scenes(services, aoi_path=aoi_path, aoi_name=aoi_name, start_date=start_date,
                           end_date=end_date, cadence=cadence, num_bands=num_bands, bundle=bundle, say=say,
                           provider_name=provider_name)
    if not dry_run:  # what was asked and found, for the coverage calendar ("no imagery" vs "never asked")
        services.store().record_search(search.record())
    report = SubmitReport(search, target=target)
    on_search(search)
    if not search.selected:
        return report
    planned = provider(services, SCENES, provider_name).plan(search, suffix=force_suffix() if force else None)
    apply_delivery(planned, target)
    if dry_run:
        say("Dry run: nothing is ordered or recorded.")
    report.results = _place(services, planned, force=force, dry_run=dry_run, on_result=on_result,
                            on_recovered=on_recovered)
    return report


def batch_submit(services: Services, *, shp_path: str, gage_id_col: str, start_date_col: str, end_date_col: str,
                 cadence: str, num_bands: str, bundle: Optional[str], max_months: int, dry_run: bool, force: bool,
                 delivery: Optional[str], say: Say, on_start: Callable[[str, int, int], None],
                 on_chunk: Callable[[ChunkOutcome], None], provider_name: Optional[str] = None) -> BatchReport:
    """Every gage of a shapefile, its range in chunks of at most ``max_months``, one order per chunk with scenes.

    ``on_start(batch_id, gages, chunks)`` comes before the first search; ``on_chunk`` in the shapefile's order."""
    target = cloud_target(services, delivery, say)
    gages = read_gages(shp_path, gage_id_col, start_date_col, end_date_col)
    if not gages:
        raise UsageError(f"{shp_path}: the shapefile has no records")
    chunks = plan_chunks(gages, max_months)
    scenes = provider(services, SCENES, provider_name)
    batch_id = str(uuid.uuid4())
    on_start(batch_id, len(gages), len(chunks))
    return run_batch(chunks, scenes, services.store(), None if dry_run else services.planet(), batch_id=batch_id,
                     cadence=cadence, num_bands=num_bands, bundle=bundle, force=force, dry_run=dry_run,
                     suffix=force_suffix() if force else None, on_chunk=on_chunk, delivery=target)


def list_basemaps(services: Services, *, start_date: str, end_date: str, name_contains: Optional[str],
                  provider_name: Optional[str] = None) -> tuple[date, date, list[dict[str, Any]]]:
    """The range asked for and the mosaics first acquired within it (name, id, dates, interval)."""
    start, end = parse_range(start_date, end_date)
    mosaics = provider(services, MOSAICS, provider_name).list_mosaics(start, end, name_contains)
    rows = [{key: m.get(key) for key in ("name", "id", "first_acquired", "last_acquired", "interval")}
            for m in mosaics]
    return start, end, rows


def order_basemap(services: Services, *, mosaic_name: str, aoi_path: str, aoi_name: Optional[str], dry_run: bool,
                  force: bool, delivery: Optional[str], say: Say, on_result: OnResult,
                  on_recovered: Callable[[Order], None], provider_name: Optional[str] = None) -> SubmitReport:
    """The mosaic's quads over the AOI, clipped to it, never twice."""
    target = cloud_target(services, delivery, say)
    aoi = load_aoi(aoi_path, aoi_name)
    say(f"AOI {aoi.name} ({aoi.area_sqkm:,.2f} km²), mosaic {mosaic_name}")
    planned = provider(services, MOSAICS, provider_name).plan(aoi, mosaic_name,
                                                            suffix=force_suffix() if force else None)
    apply_delivery(planned, target)
    if dry_run:
        say("Dry run: nothing is ordered or recorded.")
    results = _place(services, planned, force=force, dry_run=dry_run, on_result=on_result,
                     on_recovered=on_recovered)
    return SubmitReport(None, results, target)
