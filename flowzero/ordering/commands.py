"""The bodies of the ordering commands: read the inputs, ask the provider, submit, and report.

Inputs are checked (AOI file, dates) before the Planet client is built, so a typo fails fast with one line.
Results go to stdout (tables, order lines, or JSON with ``--json``); status lines go to stderr.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from flowzero.cli.output import echo, emit_json, info, print_table, printable
from flowzero.errors import UsageError
from flowzero.ordering.submit import (
    ELSEWHERE,
    EXISTS,
    ORDERED,
    RECOVERED,
    WOULD_ORDER,
    SubmitResult,
    submit_orders,
)

if TYPE_CHECKING:
    from flowzero.aoi import AOI
    from flowzero.cli.context import AppContext
    from flowzero.models import Order
    from flowzero.ordering.batch import BatchReport, ChunkOutcome
    from flowzero.providers.base import SceneSearch


# -- inputs ----------------------------------------------------------------------------------------------


def parse_range(start_date: str, end_date: str) -> tuple[date, date]:
    """``--start-date`` / ``--end-date`` as dates; a bad or reversed date is a one-line UsageError."""
    from flowzero.chunking import parse_date

    start = parse_date(start_date, "--start-date")
    end = parse_date(end_date, "--end-date")
    if end < start:
        raise UsageError(f"--end-date {end.isoformat()} is before --start-date {start.isoformat()}",
                         hint="swap the two dates")
    return start, end


def _load_aoi(path: str, name: str | None) -> AOI:
    from flowzero.aoi import load_aoi

    return load_aoi(path, name)


def provider(app: AppContext, name: str) -> Any:
    """The provider registered as ``name``, bound to this run's Planet client and config."""
    from flowzero import plugins

    cls = plugins.get("providers", name)
    return cls(app.planet(), app.config)


def force_suffix() -> str:
    """A fresh suffix for a deliberate re-order (``--force``): the UTC time and a little randomness."""
    return "r" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + secrets.token_hex(2)


# -- presentation ----------------------------------------------------------------------------------------


def scene_rows(search: SceneSearch) -> list[dict[str, Any]]:
    """The selected scenes as rows (date, id, coverage %, cloud), for the table and ``--json`` alike."""
    from flowzero.selection import acquired_date

    return [{"date": acquired_date(s.acquired).isoformat(), "id": s.id, "acquired": s.acquired,
             "coverage_pct": round(s.coverage_pct, 2), "cloud_cover": s.cloud_cover} for s in search.selected]


def search_summary(search: SceneSearch) -> dict[str, Any]:
    """A search as JSON-able data: inputs, counts, quota and the selected scenes."""
    return {
        "aoi_name": search.aoi_name, "area_sqkm": round(search.area_sqkm, 4),
        "start": search.start.isoformat(), "end": search.end.isoformat(), "cadence": search.cadence,
        "num_bands": search.num_bands, "asset": search.asset, "product_bundle": search.product_bundle,
        "found": search.found, "eligible": search.eligible, "selected": len(search.selected),
        "quota_hectares": round(search.quota_hectares, 2), "scenes": scene_rows(search),
        "skipped_results": search.skipped,
    }


def skipped_lines(search: SceneSearch, label: str = "") -> list[str]:
    """What the search left out because Planet's answer could not be a scene (the first few, then a count)."""
    if not search.skipped:
        return []
    where = f"{label}: " if label else ""
    lines = [f"{where}skipped {len(search.skipped)} search result(s) that are no usable scene:"]
    lines += [f"  {reason}" for reason in search.skipped[:5]]
    if len(search.skipped) > 5:
        lines.append(f"  ... and {len(search.skipped) - 5} more")
    return lines


def _print_scenes(search: SceneSearch) -> None:
    rows = scene_rows(search)
    print_table(f"{search.aoi_name}: selected scenes ({search.cadence})",
                ["date", "id", "coverage %", "cloud"],
                [(r["date"], r["id"], f"{r['coverage_pct']:.2f}", f"{r['cloud_cover']:g}") for r in rows])


def _counts_line(search: SceneSearch, min_coverage: float) -> str:
    return (f"Found {search.found} scene(s), {search.eligible} covering >= {min_coverage:g}% of the AOI, "
            f"selected {len(search.selected)} ({search.cadence}); quota {search.quota_hectares:,.1f} ha")


def _search_header(aoi: AOI, start: date, end: date, extra: str = "") -> str:
    return (f"AOI {aoi.name} ({aoi.area_sqkm:,.2f} km²), {start.isoformat()} to {end.isoformat()}"
            + (f", {extra}" if extra else ""))


def result_line(result: SubmitResult) -> str:
    """One line per order: placed, already there, recovered, or what a dry run would place."""
    planned, order = result.planned, result.order
    size = ""
    if planned.order.scenes_selected is not None:
        size = f" ({planned.order.scenes_selected} scenes, {planned.order.quota_hectares or 0:,.1f} ha)"
    if result.outcome == ORDERED and order is not None:
        return f"ordered: {order.order_id} {planned.name}{size}"
    if result.outcome == EXISTS and order is not None:
        return f"already ordered: {order.order_id} ({order.status})"
    if result.outcome == RECOVERED and order is not None:
        return f"already ordered: {order.order_id} ({order.status}); Planet had it, recorded now"
    if result.outcome == ELSEWHERE:
        return (f"not ordered: {planned.name} is being ordered by another run ({result.holder}); "
                "nothing placed here")
    return f"would order: {planned.name}{size}"


def result_data(result: SubmitResult) -> dict[str, Any]:
    order = result.order
    delivery = result.planned.order.metadata.get("delivery") or {}
    return {
        "delivery": delivery.get("mode", "download"), "outcome": result.outcome, "order_name": result.planned.name,
        "held_by": result.holder,
        "order_id": order.order_id if order else None, "status": order.status if order else None,
        "aoi_name": result.planned.order.aoi_name, "start_date": result.planned.order.start_date,
        "end_date": result.planned.order.end_date, "product_bundle": result.planned.order.product_bundle,
        "mosaic_name": result.planned.order.mosaic_name,
        "scenes": result.planned.order.scenes_selected, "quota_hectares": result.planned.order.quota_hectares,
    }


def _recovered_line(order: Order) -> str:
    return (f"recorded {order.order_id} ({order.status}): {order.order_name} was placed by an earlier run "
            "that stopped before recording it")


def _submit_and_report(app: AppContext, planned: list[Any], *, force: bool, dry_run: bool,
                       as_json: bool) -> list[SubmitResult]:
    quiet = app.quiet or as_json
    store = app.store()
    client = None if dry_run else app.planet()

    def on_result(result: SubmitResult) -> None:
        if not as_json:
            echo(result_line(result))

    def on_recovered(order: Order) -> None:
        info(_recovered_line(order), quiet)

    results = submit_orders(planned, store, client, force=force, dry_run=dry_run, on_result=on_result,
                            on_recovered=on_recovered)
    if any(r.outcome in (EXISTS, RECOVERED) for r in results):
        info("Nothing new was ordered for what is already recorded; --force orders it again.", quiet)
    return results


def _fail_if_elsewhere(results: list[SubmitResult]) -> None:
    """Exit status 1 when another run was still placing an order: this run cannot confirm it was placed."""
    if any(r.outcome == ELSEWHERE for r in results):
        raise click.exceptions.Exit(1)


# -- search-scenes / submit ------------------------------------------------------------------------------


def _search(app: AppContext, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
            cadence: str, num_bands: str, bundle: str | None, quiet: bool) -> SceneSearch:
    start, end = parse_range(start_date, end_date)
    aoi = _load_aoi(aoi_path, aoi_name)
    scenes = provider(app, "psscope")
    info(_search_header(aoi, start, end, f"cadence {cadence}, {num_bands}") + ": searching...", quiet)
    search = scenes.search(aoi, start, end, cadence=cadence, num_bands=num_bands, bundle=bundle)
    for line in skipped_lines(search):
        info(line, quiet)
    return search


def run_search_scenes(app: AppContext, *, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
                      cadence: str, num_bands: str, bundle: str | None, as_json: bool) -> None:
    search = _search(app, aoi_path, aoi_name, start_date, end_date, cadence, num_bands, bundle,
                     app.quiet or as_json)
    if as_json:
        emit_json(search_summary(search))
        return
    if search.selected:
        _print_scenes(search)
    echo(_counts_line(search, app.config.downloads.min_coverage_pct)
         + f"; bundle {search.product_bundle}")


def _no_scenes_line(search: SceneSearch, min_coverage: float) -> str:
    return (f"No scenes cover at least {min_coverage:g}% of {search.aoi_name} between "
            f"{search.start.isoformat()} and {search.end.isoformat()} (found {search.found}); "
            "nothing ordered.")


def cloud_target(app: AppContext, option: str | None, quiet: bool) -> Any:
    """The checked cloud delivery (None: download), resolved before anything is searched or ordered."""
    from flowzero.ordering.delivery import resolve_delivery

    def lookup(ref: str) -> dict[str, Any] | None:
        from flowzero.planet.destinations import DestinationsClient

        return DestinationsClient(app.planet()).find(ref)

    target = resolve_delivery(option, app.config, lookup)
    if target is not None:
        info(f"Cloud delivery: {target.describe()}", quiet)
    return target


def run_submit(app: AppContext, *, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
               cadence: str, num_bands: str, bundle: str | None, dry_run: bool, force: bool,
               as_json: bool, delivery: str | None = None) -> None:
    from flowzero.ordering.delivery import apply_delivery

    quiet = app.quiet or as_json
    target = cloud_target(app, delivery, quiet)
    search = _search(app, aoi_path, aoi_name, start_date, end_date, cadence, num_bands, bundle, quiet)
    if not dry_run:  # what was asked and found, for the coverage calendar ("no imagery" vs "never asked")
        app.store().record_search(search.record())
    min_coverage = app.config.downloads.min_coverage_pct
    if not search.selected:
        if as_json:
            emit_json({"search": search_summary(search), "dry_run": dry_run, "orders": []})
        else:
            echo(_no_scenes_line(search, min_coverage))
        return
    if not quiet:
        _print_scenes(search)
    info(_counts_line(search, min_coverage) + f"; bundle {search.product_bundle}", quiet)
    planned = provider(app, "psscope").plan(search, suffix=force_suffix() if force else None)
    apply_delivery(planned, target)
    if dry_run:
        info("Dry run: nothing is ordered or recorded.", quiet)
    results = _submit_and_report(app, planned, force=force, dry_run=dry_run, as_json=as_json)
    if as_json:
        emit_json({"search": search_summary(search), "dry_run": dry_run,
                   "orders": [result_data(r) for r in results]})
    _fail_if_elsewhere(results)


# -- batch-submit ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _gage_progress(total: int, enabled: bool) -> Iterator[Any]:
    """A rich progress bar over gages on stderr, or nothing (not a terminal, --quiet, --json)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(file=sys.stderr), transient=True, redirect_stdout=False,
                  redirect_stderr=False) as progress:
        yield (progress, progress.add_task("gages", total=total))


def _chunk_line(outcome: ChunkOutcome) -> list[str]:
    label = outcome.chunk.label
    if outcome.error is not None:
        return [f"{label}: failed: {outcome.error}"]
    search = outcome.search
    lines = skipped_lines(search, label) if search is not None else []
    if search is None or not search.selected:
        return [*lines, f"{label}: no valid scenes (found {search.found if search else 0})"]
    counts = f"found {search.found}, selected {len(search.selected)}"
    for result in outcome.results:
        hectares = result.planned.order.quota_hectares or 0.0
        order = result.order
        if result.outcome == ORDERED and order is not None:
            lines.append(f"{label}: ordered {order.order_id} ({counts}, {hectares:,.1f} ha)")
        elif result.outcome == WOULD_ORDER:
            lines.append(f"{label}: would order {result.planned.name} ({counts}, {hectares:,.1f} ha)")
        else:
            lines.append(f"{label}: {result_line(result)}")
    return lines


def batch_data(report: BatchReport) -> dict[str, Any]:
    return {
        "batch_id": report.batch_id,
        "orders": [result_data(r) for o in report.outcomes for r in o.results],
        "no_valid_scenes": [{"gage_id": o.chunk.gage.gage_id, "start_date": o.chunk.start.isoformat(),
                             "end_date": o.chunk.end.isoformat()} for o in report.no_scenes],
        "failed": [{"gage_id": o.chunk.gage.gage_id, "start_date": o.chunk.start.isoformat(),
                    "end_date": o.chunk.end.isoformat(), "error": o.error} for o in report.failed],
        "found": report.found, "selected": report.selected, "quota_hectares": round(report.hectares, 2),
        "earlier_batches": report.earlier_batches,
    }


def _print_summary(report: BatchReport, dry_run: bool) -> None:
    placed = len(report.would_order) if dry_run else len(report.placed)
    verb = "would be ordered" if dry_run else "ordered"
    elsewhere = f"{len(report.elsewhere)} being ordered by another run, " if report.elsewhere else ""
    echo(f"Batch {report.batch_id}: {placed} order(s) {verb}, {len(report.existing)} already ordered, "
         f"{elsewhere}{len(report.no_scenes)} chunk(s) without valid scenes, {len(report.failed)} failed")
    placed_quota = "would be used" if dry_run else "used by the new orders"
    echo(f"Scenes found {report.found}, selected {report.selected}; quota {placed_quota}: "
         f"{report.hectares:,.1f} ha")
    for batch, count in report.earlier_batches.items():
        echo(f"  {count} already ordered in batch {batch}: flowzero batch-check-status {batch}")
    if report.earlier_batches and not placed:
        echo(f"  batch {report.batch_id} holds no orders; check the ones above with their own batch id")
    for outcome in report.no_scenes:
        echo(f"  no valid scenes: {outcome.chunk.label}")
    for outcome in report.failed:
        echo(f"  failed: {outcome.chunk.label}: {outcome.error}")


def run_batch_submit(app: AppContext, *, shp_path: str, gage_id_col: str, start_date_col: str,
                     end_date_col: str, cadence: str, num_bands: str, bundle: str | None, max_months: int,
                     dry_run: bool, force: bool, as_json: bool, delivery: str | None = None) -> None:
    from flowzero.aoi import read_gages
    from flowzero.ordering.batch import plan_chunks, run_batch

    quiet = app.quiet or as_json
    target = cloud_target(app, delivery, quiet)
    gages = read_gages(shp_path, gage_id_col, start_date_col, end_date_col)
    if not gages:
        raise UsageError(f"{shp_path}: the shapefile has no records")
    chunks = plan_chunks(gages, max_months)
    scenes = provider(app, "psscope")
    batch_id = str(uuid.uuid4())
    if not as_json:
        echo(f"Batch ID: {batch_id}")
    info(f"{len(gages)} gage(s), {len(chunks)} chunk(s) of at most {max_months} month(s)"
         + ("; dry run: nothing is ordered or recorded" if dry_run else ""), quiet)
    last_chunk = {}
    for chunk in chunks:
        last_chunk[chunk.gage.gage_id] = chunk
    show_progress = not quiet and sys.stderr.isatty()
    with _gage_progress(len(gages), show_progress) as bar:
        def on_chunk(outcome: ChunkOutcome) -> None:
            if not as_json:
                for line in _chunk_line(outcome):
                    if bar is not None and sys.stdout.isatty():  # same terminal: print above the bar
                        bar[0].console.print(printable(line), markup=False, highlight=False, soft_wrap=True)
                    else:
                        echo(line)
            if bar is not None and last_chunk.get(outcome.chunk.gage.gage_id) is outcome.chunk:
                progress, task = bar
                progress.advance(task)

        report = run_batch(chunks, scenes, app.store(), None if dry_run else app.planet(), batch_id=batch_id,
                           cadence=cadence, num_bands=num_bands, bundle=bundle, force=force, dry_run=dry_run,
                           suffix=force_suffix() if force else None, on_chunk=on_chunk, delivery=target)
    if as_json:
        emit_json({**batch_data(report), "dry_run": dry_run})
    else:
        _print_summary(report, dry_run)
    if report.failed or report.elsewhere:
        raise click.exceptions.Exit(1)


# -- basemaps --------------------------------------------------------------------------------------------


def run_list_basemaps(app: AppContext, *, start_date: str, end_date: str, name_contains: str | None,
                      as_json: bool) -> None:
    start, end = parse_range(start_date, end_date)
    mosaics = provider(app, "basemap").list_mosaics(start, end, name_contains)
    rows = [{key: m.get(key) for key in ("name", "id", "first_acquired", "last_acquired", "interval")}
            for m in mosaics]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        echo(f"No basemaps first acquired between {start.isoformat()} and {end.isoformat()}.")
        return
    print_table(f"Basemaps first acquired {start.isoformat()} to {end.isoformat()}",
                ["name", "id", "first acquired", "last acquired", "interval"],
                [tuple(r.values()) for r in rows])
    echo(f"Found {len(rows)} basemap(s).")


def run_order_basemap(app: AppContext, *, mosaic_name: str, aoi_path: str, aoi_name: str | None,
                      dry_run: bool, force: bool, as_json: bool, delivery: str | None = None) -> None:
    from flowzero.ordering.delivery import apply_delivery

    quiet = app.quiet or as_json
    target = cloud_target(app, delivery, quiet)
    aoi = _load_aoi(aoi_path, aoi_name)
    info(f"AOI {aoi.name} ({aoi.area_sqkm:,.2f} km²), mosaic {mosaic_name}", quiet)
    planned = provider(app, "basemap").plan(aoi, mosaic_name, suffix=force_suffix() if force else None)
    apply_delivery(planned, target)
    if dry_run:
        info("Dry run: nothing is ordered or recorded.", quiet)
    results = _submit_and_report(app, planned, force=force, dry_run=dry_run, as_json=as_json)
    if as_json:
        emit_json({"dry_run": dry_run, "orders": [result_data(r) for r in results]})
    _fail_if_elsewhere(results)
