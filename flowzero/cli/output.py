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


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table on stdout (plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160).print(table)


def info(message: str, quiet: bool = False) -> None:
    """A progress/status line on stderr, silenced by --quiet, so stdout stays clean for results."""
    if not quiet:
        click.echo(message, err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
