"""Ordering commands: search-scenes, submit, batch-submit, list-basemaps, order-basemap.

They keep the old tool's names and flags. Providers come from the plugin registry, and every order goes
through :mod:`flowzero.ordering.submit`, so a rerun never orders the same AOI, dates and product twice. Only
click is imported at the top: the work happens in :mod:`flowzero.ordering.commands`.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import json_option

CADENCE_CHOICES = ("daily", "weekly", "monthly")
BAND_CHOICES = ("four_bands", "eight_bands")


def _remember_api_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``<command> --api-key KEY`` (the old tool's place for it) works like ``flowzero --api-key KEY``."""
    if value:
        from flowzero.redact import add_secret

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


@click.command("search-scenes")
@aoi_options
@dates_options
@selection_options
@api_key_option
@json_option
@click.pass_context
def search_scenes(ctx: click.Context, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
                  cadence: str, num_bands: str, bundle: str | None, as_json: bool) -> None:
    """Search PlanetScope scenes for an AOI and show the ones that would be ordered (orders nothing)."""
    from flowzero.ordering.commands import run_search_scenes

    run_search_scenes(_app(ctx), aoi_path=aoi_path, aoi_name=aoi_name, start_date=start_date,
                      end_date=end_date, cadence=cadence, num_bands=num_bands, bundle=bundle, as_json=as_json)


@click.command("submit")
@aoi_options
@dates_options
@selection_options
@order_options
@api_key_option
@click.option("--skip-if-exists", is_flag=True, hidden=True, help="Old flag; skipping is now the default.")
@json_option
@click.pass_context
def submit(ctx: click.Context, aoi_path: str, aoi_name: str | None, start_date: str, end_date: str,
           cadence: str, num_bands: str, bundle: str | None, dry_run: bool, force: bool, delivery: str | None,
           skip_if_exists: bool, as_json: bool) -> None:
    """Order the best PlanetScope scenes for an AOI, clipped to it; never the same order twice."""
    from flowzero.ordering.commands import run_submit

    run_submit(_app(ctx), aoi_path=aoi_path, aoi_name=aoi_name, start_date=start_date, end_date=end_date,
               cadence=cadence, num_bands=num_bands, bundle=bundle, dry_run=dry_run, force=force,
               as_json=as_json, delivery=delivery)


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
@api_key_option
@click.option("--skip-existing", is_flag=True, hidden=True, help="Old flag; skipping is now the default.")
@json_option
@click.pass_context
def batch_submit(ctx: click.Context, shp_path: str, gage_id_col: str, start_date_col: str, end_date_col: str,
                 cadence: str, num_bands: str, bundle: str | None, max_months: int, dry_run: bool,
                 force: bool, delivery: str | None, skip_existing: bool, as_json: bool) -> None:
    """Order scenes for every gage of a shapefile, one order per gage and chunk of at most --max-months."""
    from flowzero.ordering.commands import run_batch_submit

    run_batch_submit(_app(ctx), shp_path=shp_path, gage_id_col=gage_id_col, start_date_col=start_date_col,
                     end_date_col=end_date_col, cadence=cadence, num_bands=num_bands, bundle=bundle,
                     max_months=max_months, dry_run=dry_run, force=force, as_json=as_json, delivery=delivery)


@click.command("list-basemaps")
@dates_options
@click.option("--name-contains", default=None, metavar="TEXT", help="Only mosaics whose name contains TEXT.")
@api_key_option
@json_option
@click.pass_context
def list_basemaps(ctx: click.Context, start_date: str, end_date: str, name_contains: str | None,
                  as_json: bool) -> None:
    """List Planet Basemap mosaics whose first acquisition falls within a date range."""
    from flowzero.ordering.commands import run_list_basemaps

    run_list_basemaps(_app(ctx), start_date=start_date, end_date=end_date, name_contains=name_contains,
                      as_json=as_json)


@click.command("order-basemap")
@click.option("--mosaic-name", required=True, metavar="NAME", help="Mosaic name (see list-basemaps).")
@aoi_options
@order_options
@api_key_option
@json_option
@click.pass_context
def order_basemap(ctx: click.Context, mosaic_name: str, aoi_path: str, aoi_name: str | None, dry_run: bool,
                  force: bool, delivery: str | None, as_json: bool) -> None:
    """Order a Planet Basemap mosaic over an AOI, clipped to it; never the same order twice."""
    from flowzero.ordering.commands import run_order_basemap

    run_order_basemap(_app(ctx), mosaic_name=mosaic_name, aoi_path=aoi_path, aoi_name=aoi_name,
                      dry_run=dry_run, force=force, as_json=as_json, delivery=delivery)


def register(cli: click.Group) -> None:
    for command in (search_scenes, submit, batch_submit, list_basemaps, order_basemap):
        cli.add_command(command)
