"""How the ordering commands show their results: tables and lines for people, JSON for scripts, from the same rows."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flowzero.cli.output import echo, print_table
from flowzero.ordering.submit import ELSEWHERE, EXISTS, ORDERED, RECOVERED, WOULD_ORDER, SubmitResult
from flowzero.selection import acquired_date

if TYPE_CHECKING:
    from flowzero.models import Order
    from flowzero.ordering.batch import BatchReport, ChunkOutcome
    from flowzero.ordering.providers import SceneSearch


def scene_rows(search: SceneSearch) -> list[dict[str, Any]]:
    """The selected scenes as rows (date, id, coverage %, cloud), for the table and ``--json`` alike."""
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


def print_scenes(search: SceneSearch) -> None:
    rows = scene_rows(search)
    print_table(f"{search.aoi_name}: selected scenes ({search.cadence})",
                ["date", "id", "coverage %", "cloud"],
                [(r["date"], r["id"], f"{r['coverage_pct']:.2f}", f"{r['cloud_cover']:g}") for r in rows])


def counts_line(search: SceneSearch, min_coverage: float) -> str:
    return (f"Found {search.found} scene(s), {search.eligible} covering >= {min_coverage:g}% of the AOI, "
            f"selected {len(search.selected)} ({search.cadence}); quota {search.quota_hectares:,.1f} ha")


def no_scenes_line(search: SceneSearch, min_coverage: float) -> str:
    return (f"No scenes cover at least {min_coverage:g}% of {search.aoi_name} between "
            f"{search.start.isoformat()} and {search.end.isoformat()} (found {search.found}); "
            "nothing ordered.")


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


def recovered_line(order: Order) -> str:
    return (f"recorded {order.order_id} ({order.status}): {order.order_name} was placed by an earlier run "
            "that stopped before recording it")


EXISTING_NOTE = "Nothing new was ordered for what is already recorded; --force orders it again."


@contextlib.contextmanager
def gage_progress(total: int, enabled: bool) -> Iterator[Any]:
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


def chunk_lines(outcome: ChunkOutcome) -> list[str]:
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


def print_summary(report: BatchReport, dry_run: bool) -> None:
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
