"""Tables for people and JSON for scripts, built from the same rows."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    click.echo(json.dumps(data, indent=2, default=str))


def _is_identifier(column: str) -> bool:
    """Ids are copied into the next command: their columns never wrap."""
    name = column.lower()
    return name.endswith("id") or name in ("batch", "order", "name")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table on stdout; piped or redirected, rows are never folded (as wide as they need)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=_is_identifier(col))
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 400).print(table)


def info(message: str, quiet: bool = False) -> None:
    """A progress/status line on stderr, silenced by --quiet, so stdout stays clean for results."""
    if not quiet:
        click.echo(message, err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
