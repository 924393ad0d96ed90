"""`flowzero db ...`: look into the order store, import the old tool's orders.json, copy it to another store.

Every command prints a table for people or, with ``--json``, the same rows for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import echo, emit_json, info, json_option, print_table
from flowzero.errors import UsageError
from flowzero.storage import PENDING_STATES
from flowzero.storage.records import order_to_dict

if TYPE_CHECKING:
    from flowzero.models import Order

_ORDER_COLUMNS = ("order id", "aoi", "type", "dates / mosaic", "status", "scenes", "quota ha", "batch",
                  "created")


def _dates(order: Order) -> str:
    if order.start_date or order.end_date:
        return f"{order.start_date or '?'} → {order.end_date or '?'}"
    return order.mosaic_name or ""


def _scenes(selected: Optional[int], found: Optional[int]) -> str:
    if selected is None and found is None:
        return ""
    return f"{'?' if selected is None else selected}/{'?' if found is None else found}"


def _hectares(value: Optional[float]) -> str:
    return "" if value is None else f"{value:,.1f}"


def _order_row(order: Order) -> tuple[Any, ...]:
    return (order.order_id, order.aoi_name, order.order_type, _dates(order), order.status,
            _scenes(order.scenes_selected, order.scenes_found), _hectares(order.quota_hectares),
            order.batch_id, (order.created_at or "")[:19].replace("T", " "))


def _show_orders(title: str, orders: list[Order], as_json: bool) -> None:
    if as_json:
        emit_json([order_to_dict(o) for o in orders])
        return
    print_table(f"{title} ({len(orders)})", _ORDER_COLUMNS, [_order_row(o) for o in orders])


@click.group("db")
def db_group() -> None:
    """Inspect the order database (see `--database-path`) and import the old orders.json."""


@db_group.command("stats")
@json_option
@click.pass_obj
def stats(app: AppContext, as_json: bool) -> None:
    """Totals: orders by status and type, quota hectares, scenes, batches."""
    data = app.store().get_stats()
    if as_json:
        emit_json(data)
        return
    rows: list[tuple[Any, ...]] = [
        ("database", data.get("database", data.get("backend", ""))),
        ("orders", data["total_orders"]),
        *((f"  status {status}", count) for status, count in data["by_status"].items()),
        *((f"  type {kind}", count) for kind, count in data["by_order_type"].items()),
        ("batches", data["batches"]),
        ("AOIs", data.get("aois", "")),
        ("scenes selected / found", f"{data['total_scenes_selected']} / {data['total_scenes_found']}"),
        ("quota hectares", _hectares(data["total_quota_hectares"])),
        ("pending order intents", data.get("pending_intents", "")),
    ]
    print_table("Order database", ("", "value"), rows)


@db_group.command("list-batches")
@json_option
@click.pass_obj
def list_batches(app: AppContext, as_json: bool) -> None:
    """One line per batch: AOIs, orders, date span, statuses, quota."""
    batches = app.store().list_batches()
    if as_json:
        emit_json(batches)
        return
    rows = [
        (b["batch_id"], ", ".join(b["aoi_names"]), b["orders"],
         f"{b['start_date'] or '?'} → {b['end_date'] or '?'}",
         ", ".join(f"{s} {n}" for s, n in b["statuses"].items()), _hectares(b["quota_hectares"]),
         (b["created_at"] or "")[:19].replace("T", " "))
        for b in batches
    ]
    print_table(f"Batches ({len(batches)})", ("batch", "aoi", "orders", "dates", "statuses", "quota ha",
                                              "created"), rows)


@db_group.command("list-orders")
@click.option("--status", help="Only orders in this state (queued, running, success, partial, failed, ...).")
@click.option("--batch-id", help="Only the orders of this batch.")
@click.option("--aoi", "aoi_name", help="Only the orders of this AOI name.")
@json_option
@click.pass_obj
def list_orders(app: AppContext, status: Optional[str], batch_id: Optional[str], aoi_name: Optional[str],
                as_json: bool) -> None:
    """Recorded orders, oldest first, optionally filtered."""
    orders = app.store().list_orders(status=status, batch_id=batch_id, aoi_name=aoi_name)
    _show_orders("Orders", orders, as_json)


@db_group.command("pending")
@json_option
@click.pass_obj
def pending(app: AppContext, as_json: bool) -> None:
    """Orders Planet has not finished yet (queued or running)."""
    store = app.store()
    orders = [o for state in PENDING_STATES for o in store.get_orders_by_status(state)]
    orders.sort(key=lambda o: (o.created_at or "", o.order_id))
    _show_orders("Pending orders", orders, as_json)


@db_group.command("get")
@click.argument("order_id")
@json_option
@click.pass_obj
def get(app: AppContext, order_id: str, as_json: bool) -> None:
    """Everything recorded about one order."""
    order = app.store().get_order(order_id)
    if order is None:
        raise UsageError(f"no order {order_id} in the database", hint="see 'flowzero db list-orders'")
    data = order_to_dict(order)
    if as_json:
        emit_json(data)
        return

    rows = [(key, json.dumps(value, indent=1, sort_keys=True) if isinstance(value, dict) else value)
            for key, value in data.items()]
    print_table(f"Order {order_id}", ("field", "value"), rows)


@db_group.command("import-json")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@json_option
@click.pass_obj
def import_json(app: AppContext, path: str, as_json: bool) -> None:
    """Import the old tool's orders.json; safe to rerun (ids already present are skipped)."""
    from flowzero.storage.import_json import import_orders_json

    report = import_orders_json(app.store(), Path(path))
    if as_json:
        emit_json(report.to_dict())
        return
    for problem in report.problems[:20]:
        info(f"skipped {problem}", app.quiet)
    if len(report.problems) > 20:
        info(f"... and {len(report.problems) - 20} more invalid records", app.quiet)
    echo(f"{report.imported} imported, {report.already_present} already present, "
         f"{report.invalid} invalid (of {report.total} records in {path})")


@db_group.command("copy")
@click.option("--to", "target", required=True, metavar="URL|PATH",
              help="Where to copy: postgresql://USER@HOST/DB (password from PGPASSWORD or ~/.pgpass, or in the "
                   "URL), or a SQLite file.")
@click.option("--from", "source", metavar="URL|PATH",
              help="Copy from this store instead of the configured one (storage.backend / --database-path).")
@json_option
@click.pass_obj
def copy_cmd(app: AppContext, target: str, source: Optional[str], as_json: bool) -> None:
    """Copy every order and intent into another store (e.g. SQLite into PostgreSQL); safe to rerun.

    Records the target lacks are added as they were, newer ones replace older ones, the rest is left alone.
    """
    from flowzero.storage.copying import copy_store
    from flowzero.storage.opening import open_store_url

    origin = open_store_url(source, app.config, must_exist=True) if source else app.store()
    destination = open_store_url(target, app.config)
    try:
        if destination.location == origin.location:
            raise UsageError(f"source and target are the same store ({origin.location})",
                             hint="give --to another database (and --from or --database-path the old one)")
        counts = copy_store(origin, destination)
    finally:
        destination.close()
        if source:
            origin.close()
    report = {"from": origin.location, "to": destination.location,
              **{kind: c.to_dict() for kind, c in counts.items()}}
    if as_json:
        emit_json(report)
        return
    for kind in ("orders", "intents"):
        c = counts[kind]
        echo(f"{kind}: {c.added} copied, {c.updated} updated, {c.unchanged} already there")
    echo(f"from {origin.location} to {destination.location}")


def register(cli: click.Group) -> None:
    cli.add_command(db_group)
