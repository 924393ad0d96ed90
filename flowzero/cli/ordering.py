"""Ordering commands: search-scenes, submit, batch-submit, list-basemaps, order-basemap.

They keep the old tool's names and flags. The work is :mod:`flowzero.ordering.workflow`'s (a library that returns
results); the ``show_*`` functions here present them (:mod:`flowzero.cli.ordering_views`): results on stdout,
status lines on stderr, JSON with ``--json``. Only click and light modules are imported at the top.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import echo, emit_json, info, json_option, print_table, printable
from flowzero.redact import add_secret

if TYPE_CHECKING:
    from flowzero.ordering.workflow import Services

CADENCE_CHOICES = ("daily", "weekly", "monthly")
BAND_CHOICES = ("four_bands", "eight_bands")


def _remember_api_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``<command> --api-key KEY`` (the old tool's place for it) works like ``flowzero --api-key KEY``."""
    if value:
        add_secret(value)
        app = ctx.find_object(AppContext)
        if app is not None:
            app.api_key = value
            app._config = None
    return value


def _options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


provider_option = click.option(
    "--provider", "provider_name", metavar="NAME", default=None,
    help="Imagery provider plugin (default: the one installed for this command; see `flowzero plugins list`).")
api_key_option = click.option("--api-key", metavar="KEY", expose_value=False, callback=_remember_api_key,
                              help="Planet API key for this command (default: $PL_API_KEY).")
dates_options = _options(
    click.option("--start-date", required=True, metavar="YYYY-MM-DD", help="First day of the range."),
    click.option("--end-date", required=True, metavar="YYYY-MM-DD", help="Last day of the range (included)."),
)
selection_options = _options(
    click.option("--cadence", type=click.Choice(CADENCE_CHOICES), default="daily", show_default=True,
                 help="Keep the best scene per day, week (Sunday to Saturday) or month."),
    click.option("--num-bands", type=click.Choice(BAND_CHOICES), default="four_bands", show_default=True,
                 help="4-band or 8-band surface reflectance (8-band only from 2021 on)."),
    click.option("--bundle", metavar="BUNDLE", default=None,
                 help="Order this product bundle instead (e.g. analytic_sr_udm2)."),
)
aoi_options = _options(
    click.option("--geojson", "aoi_path", required=True, metavar="PATH",
                 help="AOI file: GeoJSON or shapefile (.shp)."),
    click.option("--aoi-name", default=None, help="Name to record the order under (default: the file name)."),
)
order_options = _options(
    click.option("--dry-run", is_flag=True, help="Show what would be ordered; order and record nothing."),
    click.option("--force", is_flag=True, help="Order again, even if this AOI, range and product exist."),
    click.option("--delivery", type=click.Choice(("download", "cloud")), default=None,
                 help="cloud: Planet writes the files into your bucket (config delivery.*); "
                      "default: config delivery.mode (download)."),
)


def _app(ctx: click.Context) -> AppContext:
    return ctx.ensure_object(AppContext)


def _say(quiet: bool) -> Callable[[str], None]:
    return lambda message: info(message, quiet)


# -- presenting the workflow's results --------------------------------------------------------------------


def show_search_scenes(services: Services, quiet: bool, *, as_json: bool, **options: Any) -> None:
    from flowzero.cli import ordering_views as views
    from flowzero.ordering import workflow

    search = workflow.search_scenes(services, say=_say(quiet or as_json), **options)
    for line in views.skipped_lines(search):
        info(line, quiet or as_json)
    if as_json:
        emit_json(views.search_summary(search))
        return
    if search.selected:
        views.print_scenes(search)
    echo(views.counts_line(search, services.config.downloads.min_coverage_pct) + f"; bundle {search.product_bundle}")


def _result_printer(as_json: bool) -> Callable[[Any], None]:
    from flowzero.cli.ordering_views import result_line

    return lambda result: None if as_json else echo(result_line(result))


def show_submit(services: Services, quiet: bool, *, as_json: bool, dry_run: bool, **options: Any) -> None:
    """submit, as the command shows it; also the demo's first step."""
    from flowzero.cli import ordering_views as views
    from flowzero.ordering import workflow

    quiet = quiet or as_json
    min_coverage = services.config.downloads.min_coverage_pct

    def on_search(search: Any) -> None:
        for line in views.skipped_lines(search):
            info(line, quiet)
        if search.selected:
            if not quiet:
                views.print_scenes(search)
            info(views.counts_line(search, min_coverage) + f"; bundle {search.product_bundle}", quiet)

    report = workflow.submit(services, dry_run=dry_run, say=_say(quiet), on_search=on_search,
                             on_result=_result_printer(as_json),
                             on_recovered=lambda order: info(views.recovered_line(order), quiet), **options)
    search = report.search
    assert search is not None
    if not search.selected and not as_json:
        echo(views.no_scenes_line(search, min_coverage))
    if report.any_existing:
        info(views.EXISTING_NOTE, quiet)
    if as_json:
        emit_json({"search": views.search_summary(search), "dry_run": dry_run,
                   "orders": [views.result_data(r) for r in report.results]})
    if report.held_elsewhere:
        raise click.exceptions.Exit(1)


def show_batch_submit(services: Services, quiet: bool, *, as_json: bool, dry_run: bool, **options: Any) -> None:
    from flowzero.cli import ordering_views as views
    from flowzero.ordering import workflow

    quiet = quiet or as_json
    show_progress = not quiet and sys.stderr.isatty()
    state: dict[str, Any] = {}

    def on_start(batch_id: str, gages: int, chunks: int) -> None:
        if not as_json:
            echo(f"Batch ID: {batch_id}")
        info(f"{gages} gage(s), {chunks} chunk(s) of at most {options['max_months']} month(s)"
             + ("; dry run: nothing is ordered or recorded" if dry_run else ""), quiet)
        state["bar"] = views.gage_progress(gages, show_progress)
        state["progress"] = state["bar"].__enter__()
        state["gages_seen"] = set()

    def on_chunk(outcome: Any) -> None:
        bar = state.get("progress")
        if not as_json:
            for line in views.chunk_lines(outcome):
                if bar is not None and sys.stdout.isatty():  # same terminal: print above the bar
                    bar[0].console.print(printable(line), markup=False, highlight=False, soft_wrap=True)
                else:
                    echo(line)
        if bar is not None:  # chunks come gage by gage: a new gage means the one before it is done
            state["gages_seen"].add(outcome.chunk.gage.gage_id)
            bar[0].update(bar[1], completed=len(state["gages_seen"]) - 1)

    try:
        report = workflow.batch_submit(services, dry_run=dry_run, say=_say(quiet), on_start=on_start,
                                       on_chunk=on_chunk, **options)
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
    if as_json:
        emit_json({**views.batch_data(report), "dry_run": dry_run})
    else:
        views.print_summary(report, dry_run)
    if report.failed or report.elsewhere:
        raise click.exceptions.Exit(1)


def show_list_basemaps(services: Services, *, as_json: bool, **options: Any) -> None:
    from flowzero.ordering import workflow

    start, end, rows = workflow.list_basemaps(services, **options)
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


def show_order_basemap(services: Services, quiet: bool, *, as_json: bool, dry_run: bool, **options: Any) -> None:
    from flowzero.cli import ordering_views as views
    from flowzero.ordering import workflow

    quiet = quiet or as_json
    report = workflow.order_basemap(services, dry_run=dry_run, say=_say(quiet), on_result=_result_printer(as_json),
                                    on_recovered=lambda order: info(views.recovered_line(order), quiet), **options)
    if report.any_existing:
        info(views.EXISTING_NOTE, quiet)
    if as_json:
        emit_json({"dry_run": dry_run, "orders": [views.result_data(r) for r in report.results]})
    if report.held_elsewhere:
        raise click.exceptions.Exit(1)


# -- the commands -------------------------------------------------------------------------------------------


@click.command("search-scenes")
@aoi_options
@dates_options
@selection_options
@provider_option
@api_key_option
@json_option
@click.pass_context
def search_scenes(ctx: click.Context, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
                  cadence: str, num_bands: str, bundle: str | None, provider_name: str | None,
                  as_json: bool) -> None:
    """Search PlanetScope scenes for an AOI and show the ones that would be ordered (orders nothing)."""
    app = _app(ctx)
    show_search_scenes(app, app.quiet, aoi_path=aoi_path, aoi_name=aoi_name, start_date=start_date,
                       end_date=end_date, cadence=cadence, num_bands=num_bands, bundle=bundle,
                       provider_name=provider_name, as_json=as_json)


@click.command("submit")
@aoi_options
@dates_options
@selection_options
@order_options
@provider_option
@api_key_option
@click.option("--skip-if-exists", is_flag=True, hidden=True, help="Old flag; skipping is now the default.")
@json_option
@click.pass_context
def submit(ctx: click.Context, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
           cadence: str, num_bands: str, bundle: str | None, dry_run: bool, force: bool, delivery: str | None,
           provider_name: str | None, skip_if_exists: bool, as_json: bool) -> None:
    """Order the best PlanetScope scenes for an AOI, clipped to it; never the same order twice."""
    app = _app(ctx)
    show_submit(app, app.quiet, aoi_path=aoi_path, aoi_name=aoi_name, start_date=start_date, end_date=end_date,
                cadence=cadence, num_bands=num_bands, bundle=bundle, dry_run=dry_run, force=force,
                as_json=as_json, delivery=delivery, provider_name=provider_name)


@click.command("batch-submit")
@click.option("--shp", "shp_path", required=True, metavar="PATH",
              help="Shapefile with one polygon per gage and its date range.")
@click.option("--gage-id-col", default="gage_id", show_default=True, help="Column holding the gage id.")
@click.option("--start-date-col", default="start_date", show_default=True, help="Column of start dates.")
@click.option("--end-date-col", default="end_date", show_default=True, help="Column of end dates.")
@selection_options
@click.option("--max-months", type=click.IntRange(min=1), default=6, show_default=True,
              help="Split each gage's range into orders of at most this many months.")
@order_options
@provider_option
@api_key_option
@click.option("--skip-existing", is_flag=True, hidden=True, help="Old flag; skipping is now the default.")
@json_option
@click.pass_context
def batch_submit(ctx: click.Context, shp_path: str, gage_id_col: str, start_date_col: str, end_date_col: str,
                 cadence: str, num_bands: str, bundle: str | None, max_months: int, dry_run: bool,
                 force: bool, delivery: str | None, provider_name: str | None, skip_existing: bool,
                 as_json: bool) -> None:
    """Order scenes for every gage of a shapefile, one order per gage and chunk of at most --max-months."""
    app = _app(ctx)
    show_batch_submit(app, app.quiet, shp_path=shp_path, gage_id_col=gage_id_col, start_date_col=start_date_col,
                      end_date_col=end_date_col, cadence=cadence, num_bands=num_bands, bundle=bundle,
                      max_months=max_months, dry_run=dry_run, force=force, as_json=as_json, delivery=delivery,
                      provider_name=provider_name)


@click.command("list-basemaps")
@dates_options
@click.option("--name-contains", default=None, metavar="TEXT", help="Only mosaics whose name contains TEXT.")
@provider_option
@api_key_option
@json_option
@click.pass_context
def list_basemaps(ctx: click.Context, start_date: str, end_date: str, name_contains: str | None,
                  provider_name: str | None, as_json: bool) -> None:
    """List Planet Basemap mosaics whose first acquisition falls within a date range."""
    show_list_basemaps(_app(ctx), start_date=start_date, end_date=end_date, name_contains=name_contains,
                       provider_name=provider_name, as_json=as_json)


@click.command("order-basemap")
@click.option("--mosaic-name", required=True, metavar="NAME", help="Mosaic name (see list-basemaps).")
@aoi_options
@order_options
@provider_option
@api_key_option
@json_option
@click.pass_context
def order_basemap(ctx: click.Context, mosaic_name: str, aoi_path: str, aoi_name: str | None, dry_run: bool,
                  force: bool, delivery: str | None, provider_name: str | None, as_json: bool) -> None:
    """Order a Planet Basemap mosaic over an AOI, clipped to it; never the same order twice."""
    app = _app(ctx)
    show_order_basemap(app, app.quiet, mosaic_name=mosaic_name, aoi_path=aoi_path, aoi_name=aoi_name,
                       dry_run=dry_run, force=force, as_json=as_json, delivery=delivery, provider_name=provider_name)


def register(cli: click.Group) -> None:
    for command in (search_scenes, submit, batch_submit, list_basemaps, order_basemap):
        cli.add_command(command)
