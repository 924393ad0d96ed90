"""`flowzero config show`: the effective configuration, secrets masked."""

from __future__ import annotations

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import emit_json, json_option


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("show")
@json_option
@click.pass_obj
def show(app: AppContext, as_json: bool) -> None:
    """Print the effective config (defaults < file < environment < flags), secrets masked."""
    cfg = app.config
    data = cfg.to_dict()
    if as_json:
        emit_json({"source": cfg.source, **data})
        return
    import yaml

    click.echo(f"# source: {cfg.source}")
    click.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
