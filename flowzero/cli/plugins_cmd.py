"""`flowzero plugins list`: what is installed and what each plugin registers."""

from __future__ import annotations

import dataclasses

import click

from flowzero import plugins
from flowzero.cli.output import emit_json, json_option, print_table


@click.group("plugins")
def plugins_group() -> None:
    """Inspect installed plugins."""


@plugins_group.command("list")
@json_option
def list_plugins(as_json: bool) -> None:
    """Every plugin (built-ins included) with its package, version and what it registers."""
    infos = plugins.plugin_infos()
    if as_json:
        emit_json([dataclasses.asdict(i) for i in infos])
        return
    print_table("Plugins", ["name", "package", "version", "registers"],
                [(i.name, i.package, i.version, ", ".join(i.registers) or "-") for i in infos])


def register(cli: click.Group) -> None:
    cli.add_command(plugins_group)
