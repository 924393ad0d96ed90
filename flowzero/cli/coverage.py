"""`flowzero coverage`: which gage-periods have an image, which are missing, and why."""

from __future__ import annotations

from pathlib import Path

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import emit_json, info, json_option
from flowzero.errors import UsageError


@click.command("coverage")
@click.option("--aoi", "aoi_name", metavar="NAME", help="Only this AOI or gage.")
@click.option("--batch-id", metavar="ID", help="Only the gages and searches of this batch.")
@click.option("--cadence", type=click.Choice(["daily", "weekly", "monthly"]),
              help="Cells per day, week (Sunday to Saturday) or month (default: the cadence searched with).")
@click.option("--start-date", metavar="YYYY-MM-DD", help="First day shown (default: the first one recorded).")
@click.option("--end-date", metavar="YYYY-MM-DD", help="Last day shown (default: the last one recorded).")
@json_option
@click.option("--html", "html_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML page (opens offline).")
@click.option("--png", "png_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write a PNG (needs matplotlib: pip install 'flowzero[plot]').")
@click.pass_obj
def coverage(app: AppContext, aoi_name: str | None, batch_id: str | None, cadence: str | None,
             start_date: str | None, end_date: str | None, as_json: bool, html_path: str | None,
             png_path: str | None) -> None:
    """A gage x period calendar from the order database: delivered (with coverage %), ordered, failed,
    no scenes (searched: nothing covered enough of the AOI), or never searched.
    """
    from flowzero.chunking import parse_date
    from flowzero.cli.coverage_views import html_page, print_heat_map, write_png
    from flowzero.coverage import build_calendar

    start = parse_date(start_date, "--start-date") if start_date else None
    end = parse_date(end_date, "--end-date") if end_date else None
    store = app.store()
    orders = store.get_batch_orders(batch_id) if batch_id else store.list_orders(aoi_name=aoi_name)
    if aoi_name:
        orders = [o for o in orders if o.aoi_name == aoi_name]
    searches = store.list_searches(aoi_name=aoi_name, batch_id=batch_id)
    if batch_id and not orders and not searches:
        raise UsageError(f"no orders or searches recorded for batch '{batch_id}'",
                         hint="see `flowzero db list-batches`")
    if aoi_name and not orders and not searches:
        known = sorted({o.aoi_name for o in store.list_orders()})[:8]
        raise UsageError(f"nothing recorded for AOI '{aoi_name}'",
                         hint=f"recorded AOIs: {', '.join(known)}" if known else "nothing is recorded yet")
    calendar = build_calendar(orders, searches, cadence=cadence, start=start, end=end)
    if html_path:
        try:
            Path(html_path).write_text(html_page(calendar), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {html_path}: {exc.strerror or exc}") from None
        info(f"wrote {html_path}", app.quiet or as_json)
    if png_path:
        write_png(calendar, png_path)
        info(f"wrote {png_path}", app.quiet or as_json)
    if as_json:
        emit_json(calendar.to_dict())
    else:
        print_heat_map(calendar)


def register(cli: click.Group) -> None:
    cli.add_command(coverage)
