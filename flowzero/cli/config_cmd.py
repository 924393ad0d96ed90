"""`flowzero config show`: the effective configuration, secrets masked, and where each value came from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import click

from flowzero.cli.context import AppContext
from flowzero.cli.output import emit_json, json_option


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


def _sources(data: Mapping[str, Any], sources: Mapping[str, str], prefix: str = "") -> dict[str, str]:
    """Every shown key (dotted) and its source: the file, an environment variable, an option, or the default."""
    from flowzero.config import DEFAULT_SOURCE

    found: dict[str, str] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(_sources(value, sources, f"{dotted}."))
        else:
            found[dotted] = sources.get(dotted, DEFAULT_SOURCE)
    return found


def _yaml_lines(data: Mapping[str, Any], sources: Mapping[str, str], prefix: str = "") -> Iterator[str]:
    """The settings as YAML, each value followed by a comment naming its source."""
    import yaml

    indent = "  " * prefix.count(".")
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield f"{indent}{key}:"
            yield from _yaml_lines(value, sources, f"{dotted}.")
        else:
            line = yaml.safe_dump({key: value}, width=10**6).strip()
            yield f"{indent}{line}  # {sources[dotted]}"


@config_group.command("show")
@json_option
@click.pass_obj
def show(app: AppContext, as_json: bool) -> None:
    """Print the effective config (defaults < file < environment < flags), secrets masked, with each value's
    source."""
    cfg = app.config
    data = cfg.to_dict()
    sources = _sources(data, cfg.sources)
    for name in ("aws_access_key_id", "aws_secret_access_key"):
        if data[name] != "(not set)":
            sources[name] = f"environment variable {name.upper()}"
    if as_json:
        emit_json({"source": cfg.source, **data, "sources": sources})
        return
    click.echo(f"# config file: {cfg.source if cfg.source != 'built-in defaults' else 'none'}")
    for line in _yaml_lines(data, sources):
        click.echo(line)


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
