"""`flowzero stac DEST`: relink the STAC catalog of a destination from the item files present."""

from __future__ import annotations

import os

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import emit_json, info, json_option
from flowzero.errors import UsageError


@click.command("stac")
@click.argument("destination", metavar="s3|s3://BUCKET/PREFIX|DIR")
@json_option
@click.pass_obj
def stac(app: AppContext, destination: str, as_json: bool) -> None:
    """Rebuild the STAC catalog at a delivery destination: each collection and the root, from the items there.

    Deliveries keep the catalog up to date by themselves; run this after copying, moving or deleting delivered
    folders or item files. To catalog an order delivered before flowzero kept catalogs, deliver it again to the
    same destination (`check-order-status ID --output DEST`: the verified files are skipped, its items added).
    """
    from flowzero.delivery.destination import parse_output
    from flowzero.delivery.stac import rebuild_catalog

    where = parse_output(destination, app.config)
    s3 = None
    if where.is_s3:
        from flowzero.delivery.s3requests import s3_requests

        requests = s3_requests(app.config)
        s3 = lambda: requests  # noqa: E731
    elif not os.path.isdir(where.root):
        raise UsageError(f"no folder at {where.root}", hint="give the folder (or S3 prefix) a delivery wrote to")
    update = rebuild_catalog(where, s3)
    if as_json:
        emit_json({"catalog": update.root, "collections": update.collections, "items": len(update.items)})
        return
    info(f"{len(update.collections)} collection(s), {len(update.items)} item(s)", app.quiet)
    click.echo(update.root)


def register(cli: click.Group) -> None:
    cli.add_command(stac)
