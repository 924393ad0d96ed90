"""`check-order-status` and `batch-check-status`: Planet's order states, and delivery of finished orders.

Only click is imported at module level; the delivery machinery is imported when a command runs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

import click

from flowzero import plugins
from flowzero.cli.context import AppContext
from flowzero.cli.output import echo, emit_json, info, json_option, print_table
from flowzero.errors import PlanetError, UsageError

if TYPE_CHECKING:
    from flowzero.delivery.outcomes import DeliverySettings, OrderOutcome


def delivery_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options both commands share."""
    options = [
        click.option("--output", metavar="s3|s3://BUCKET/PREFIX|DIR",
                     help="Download finished orders: 's3' (config s3.bucket_name), an S3 URL or a folder. "
                          "Without it, only states are shown."),
        click.option("--assets", metavar="image[,udm2][,metadata]",
                     help="What of each scene to keep: the image, its UDM2 cloud mask, Planet's item JSON "
                          "(default: config delivery.assets, all three)."),
        click.option("--overwrite", is_flag=True, help="Fetch again even if a verified copy is there."),
        click.option("--downloader", metavar="NAME",
                     help="Downloader plugin (default: config downloads.downloader)."),
        click.option("--use-s5cmd", is_flag=True, help="Alias of --downloader s5cmd (the old tool's flag)."),
        click.option("--wait", is_flag=True, help="Poll (with backoff) until orders are final."),
        click.option("--wait-timeout", type=float, metavar="SECONDS",
                     help="With --wait: give up waiting after this long (the order keeps running)."),
        click.option("--allow-unverified", is_flag=True,
                     help="Accept files Planet's manifest gives no digest for (otherwise: exit status 1)."),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(app: AppContext, output: str | None, overwrite: bool, downloader: str | None, use_s5cmd: bool,
              wait: bool, wait_timeout: float | None, as_json: bool, assets: str | None,
              allow_unverified: bool = False) -> DeliverySettings:
    from flowzero.delivery.destination import parse_output
    from flowzero.delivery.layout import parse_assets
    from flowzero.delivery.outcomes import DeliverySettings

    config = app.config
    if use_s5cmd and downloader and downloader != "s5cmd":
        raise UsageError(f"--use-s5cmd and --downloader {downloader} contradict each other",
                         hint="give only one of them")
    name = "s5cmd" if use_s5cmd else (downloader or config.downloads.downloader)
    destination = parse_output(output, config) if output is not None else None
    if destination is not None:
        plugins.get("downloaders", name)  # an unknown name fails now, before Planet is asked anything
    if wait_timeout is not None and not wait:
        raise UsageError("--wait-timeout only makes sense with --wait")
    if wait_timeout is not None and not (math.isfinite(wait_timeout) and wait_timeout > 0):
        raise UsageError(f"--wait-timeout {wait_timeout:g}: give a number of seconds above 0",
                         hint="leave --wait-timeout out to wait until the order is final")

    show = not (as_json or app.quiet) and sys.stderr.isatty()
    return DeliverySettings(destination=destination, downloader=name, overwrite=overwrite, wait=wait,
                            wait_timeout=wait_timeout, show_progress=show,
                            assets=parse_assets(assets if assets is not None else config.delivery.assets),
                            catalog=config.delivery.catalog, allow_unverified=allow_unverified)


def _say(app: AppContext, as_json: bool) -> Callable[[str], None]:
    quiet = app.quiet or as_json

    def say(message: str) -> None:
        info(message, quiet)

    return say


def _detail(outcome: OrderOutcome) -> str:
    parts: list[str] = []
    if outcome.destination and outcome.category in ("delivered", "partial", "incomplete", "unverified"):
        fresh = len(outcome.files) - outcome.skipped
        parts.append(f"{fresh} downloaded, {outcome.skipped} already present")
    if outcome.failed_files:
        shown = "; ".join(f"{f['file']}: {f['error']}" for f in outcome.failed_files[:3])
        more = f" (+{len(outcome.failed_files) - 3} more)" if len(outcome.failed_files) > 3 else ""
        parts.append(f"{len(outcome.failed_files)} failed: {shown}{more}")
    if outcome.missing:
        more = f" (+{len(outcome.missing) - 5} more)" if len(outcome.missing) > 5 else ""
        parts.append(f"missing: {', '.join(outcome.missing[:5])}{more}")
    if outcome.error_hints:
        parts.append(f"Planet: {'; '.join(outcome.error_hints)}")
    if outcome.message and outcome.category not in ("delivered",):
        parts.append(outcome.message)
    return " | ".join(parts)


_RESULT_WORDS = {
    "delivered": "delivered", "partial": "partial", "ready": "finished (not downloaded)",
    "pending": "pending", "failed": "FAILED", "cancelled": "cancelled", "skipped": "skipped",
    "incomplete": "FILES FAILED", "error": "ERROR", "elsewhere": "in progress elsewhere",
    "unverified": "NOT VERIFIED",
}


def _summary_counts(outcomes: Sequence[OrderOutcome]) -> dict[str, int]:
    from flowzero.delivery.outcomes import CATEGORIES

    return {category: sum(1 for o in outcomes if o.category == category) for category in CATEGORIES}


def _summary_line(counts: dict[str, int]) -> str:
    order = ("delivered", "partial", "ready", "pending", "failed", "cancelled", "incomplete", "unverified",
             "error", "skipped", "elsewhere")
    labels = {"ready": "finished (not downloaded)", "incomplete": "with failed files", "error": "not checked",
              "elsewhere": "in progress elsewhere", "unverified": "with unverified files"}
    return ", ".join(f"{counts[c]} {labels.get(c, c)}" for c in order if counts.get(c) or c in
                     ("delivered", "partial", "pending", "failed", "cancelled"))


def _print_outcomes(title: str, outcomes: Sequence[OrderOutcome]) -> None:
    rows = [(o.order_id, o.aoi_name, o.state, _RESULT_WORDS.get(o.category, o.category), _detail(o))
            for o in outcomes]
    print_table(title, ("order id", "aoi", "state", "result", "detail"), rows)
    echo(f"Summary: {_summary_line(_summary_counts(outcomes))}")


def _exit_status(ctx: click.Context, outcomes: Sequence[OrderOutcome], settings: DeliverySettings) -> None:
    """1 if an order failed, a file could not be delivered, or another run held an order for another
    destination (nothing was delivered here)."""
    from flowzero.delivery.claims import delivered_elsewhere_only

    if any(o.failing or delivered_elsewhere_only(o, settings.destination) for o in outcomes):
        ctx.exit(1)


def _gate(store: Any, settings: DeliverySettings, force: bool, say: Callable[[str], None],
          lease_seconds: float | None = None) -> Any:
    """The claim gate that shares the work with other runs, or None for a store without claims."""
    from flowzero.delivery.claims import DEFAULT_LEASE_SECONDS, ClaimGate, supports_claims

    if not supports_claims(store):  # a backend without claims: this run works alone
        return None
    return ClaimGate(store, settings.destination, force, say, lease_seconds=lease_seconds or DEFAULT_LEASE_SECONDS)


@click.command("check-order-status")
@click.argument("order_id")
@delivery_options
@click.pass_context
def check_order_status(ctx: click.Context, order_id: str, output: str | None, assets: str | None,
                       overwrite: bool, downloader: str | None, use_s5cmd: bool, wait: bool,
                       wait_timeout: float | None, allow_unverified: bool, as_json: bool) -> None:
    """Show an order's state at Planet; with --output, download it once it is finished (verified).

    A recorded order is claimed while it is delivered, as batch-check-status does: if another run is delivering
    it right now, this one says so instead of moving the same files a second time.
    """
    from flowzero.delivery.cloud import is_cloud_order
    from flowzero.delivery.deliver import check_orders
    from flowzero.planet.client import path_segment

    path_segment(order_id, "order id")  # an id Planet could have issued, before anything is asked
    app: AppContext = ctx.obj
    settings = _settings(app, output, overwrite, downloader, use_s5cmd, wait, wait_timeout, as_json, assets,
                         allow_unverified)
    say = _say(app, as_json)
    store = app.store()
    record = store.get_order(order_id)
    if record is None:
        say(f"order {order_id} is not in the order database; asking Planet")

    delivers = settings.destination is not None or is_cloud_order(record, None)  # cloud orders get arranged
    gate = _gate(store, settings, True, say) if delivers else None
    [outcome] = check_orders([(order_id, record)], app.planet(), store, app.config, settings, say, gate)
    if record is None and outcome.category == "error":
        if outcome.status_code != 404:  # Planet failed (5xx, unreachable...): the id may well be right
            raise PlanetError(f"order {order_id} is not in the order database and Planet could not be asked: "
                              f"{outcome.message}", hint="try again later", status_code=outcome.status_code)
        raise UsageError(f"unknown order id '{order_id}': not in the order database, "
                         f"and Planet: {outcome.message}",
                         hint="check the id with `flowzero db list-orders`")
    if as_json:
        emit_json(outcome.to_dict())
    else:
        _print_outcomes(f"Order {order_id}", [outcome])
    _exit_status(ctx, [outcome], settings)


@click.command("batch-check-status")
@click.argument("batch_id")
@delivery_options
@click.option("--force", is_flag=True, help="Also check orders already delivered there.")
@click.option("--lease", "lease_seconds", type=click.FloatRange(min=1.0), default=120.0, show_default=True,
              metavar="SECONDS",
              help="Claim on each order while this run works it (renewed as it goes); if the run dies, other "
                   "runs take its orders over once it lapses.")
@click.pass_context
def batch_check_status(ctx: click.Context, batch_id: str, output: str | None, assets: str | None,
                       overwrite: bool, downloader: str | None, use_s5cmd: bool, wait: bool,
                       wait_timeout: float | None, allow_unverified: bool, as_json: bool, force: bool,
                       lease_seconds: float) -> None:
    """Check every order of a batch concurrently; with --output, deliver the finished ones; then a summary.

    Several runs (on one machine or many, sharing one order store) may work the same batch at once: each
    order is claimed before it is checked, and orders another run holds are reported as in progress elsewhere.
    """
    from flowzero.delivery.deliver import check_orders, select_orders

    app: AppContext = ctx.obj
    settings = _settings(app, output, overwrite, downloader, use_s5cmd, wait, wait_timeout, as_json, assets,
                         allow_unverified)
    say = _say(app, as_json)
    store = app.store()
    records = store.get_batch_orders(batch_id)
    if not records:
        known = [b["batch_id"] for b in store.list_batches()][-5:]
        hint = f"recent batches: {', '.join(known)}" if known else "no batch is recorded yet"
        raise UsageError(f"no orders recorded for batch '{batch_id}'", hint=hint)
    to_check, settled = select_orders(records, settings.destination, force)
    say(f"batch {batch_id}: {len(records)} order(s), checking {len(to_check)}")

    gate = _gate(store, settings, force, say, lease_seconds)
    checked = check_orders([(r.order_id, r) for r in to_check], app.planet(), store, app.config, settings, say,
                           gate)
    by_id = {o.order_id: o for o in [*checked, *settled]}
    outcomes = [by_id[r.order_id] for r in records if r.order_id in by_id]
    if as_json:
        emit_json({"batch_id": batch_id, "summary": _summary_counts(outcomes),
                   "orders": [o.to_dict() for o in outcomes]})
    else:
        _print_outcomes(f"Batch {batch_id} ({len(outcomes)} orders)", outcomes)
    _exit_status(ctx, outcomes, settings)


def register(cli: click.Group) -> None:
    cli.add_command(check_order_status)
    cli.add_command(batch_check_status)
