"""`flowzero destinations register|list`: hand a bucket's credentials to Planet once, then order by reference.

The keys come from the usual AWS chain (never from a flag, so they stay out of shell history and ``ps``) and go
only to Planet; what is printed is the destination without them and its ``pl:ref`` for ``delivery.destination_ref``.
"""

from __future__ import annotations

from typing import Any

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import echo, emit_json, info, json_option, print_table
from flowzero.errors import ConfigError


@click.group("destinations")
def destinations_group() -> None:
    """Planet Destinations: bucket credentials registered with Planet once, for --delivery cloud."""


def _row(found: dict[str, Any]) -> dict[str, Any]:
    parameters = found.get("parameters") or {}
    return {"name": found.get("name"), "type": found.get("type"), "bucket": parameters.get("bucket"),
            "endpoint": parameters.get("endpoint") or "", "ref": found.get("pl:ref")}


@destinations_group.command("register")
@click.argument("name")
@click.option("--bucket", metavar="BUCKET", help="The bucket Planet writes to (default: s3.bucket_name).")
@click.option("--endpoint", metavar="URL", help="S3-compatible endpoint (default: s3.endpoint_url; none: AWS S3).")
@click.option("--region", metavar="REGION", help="The bucket's region (default: s3.region).")
@click.option("--path-style/--virtual-hosted-style", default=True, show_default=True,
              help="Addressing Planet uses for an S3-compatible endpoint.")
@json_option
@click.pass_obj
def register_destination(app: AppContext, name: str, bucket: str | None, endpoint: str | None, region: str | None,
             path_style: bool, as_json: bool) -> None:
    """Register the bucket with Planet under NAME, with the keys of the usual AWS chain (AWS_ACCESS_KEY_ID ...).

    Planet checks it can write and delete planetverify.txt there before it accepts the destination.
    """
    from flowzero.delivery.cloud.block import aws_keys
    from flowzero.planet.destinations import DestinationsClient

    config = app.config
    bucket = (bucket or config.s3.bucket_name).strip()
    if not bucket:
        raise ConfigError("which bucket? s3.bucket_name is not set", hint="pass --bucket BUCKET")
    endpoint = (endpoint if endpoint is not None else config.s3.endpoint_url).strip()
    region = region or config.s3.region
    access_key, secret_key = aws_keys()
    if endpoint:
        kind = "s3_compatible"
        parameters: dict[str, Any] = {"bucket": bucket, "endpoint": endpoint, "region": region,
                                      "access_key_id": access_key, "secret_access_key": secret_key,
                                      "use_path_style": path_style}
    else:
        kind = "amazon_s3"
        parameters = {"bucket": bucket, "aws_region": region, "aws_access_key_id": access_key,
                      "aws_secret_access_key": secret_key}
    created = DestinationsClient(app.planet()).create(kind, parameters, name)
    row = _row(created)
    if as_json:
        emit_json(row)
        return
    echo(f"registered {row['name']} ({kind}, bucket {bucket}): {row['ref']}")
    info(f"order with it: export FLOWZERO_DELIVERY_DESTINATION_REF={row['ref']} "
         "(or delivery.destination_ref in config.yaml) and --delivery cloud", app.quiet)


@destinations_group.command("list")
@json_option
@click.pass_obj
def list_destinations(app: AppContext, as_json: bool) -> None:
    """The destinations registered with Planet (no secrets are ever shown)."""
    from flowzero.planet.destinations import DestinationsClient

    rows = [_row(d) for d in DestinationsClient(app.planet()).list()]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        echo("No destinations registered; see `flowzero destinations register --help`.")
        return
    print_table("Planet destinations", ["name", "type", "bucket", "endpoint", "ref"],
                [tuple(r.values()) for r in rows])


def register(cli: click.Group) -> None:
    cli.add_command(destinations_group)
