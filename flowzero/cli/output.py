"""Tables for people and JSON for scripts, built from the same rows.

Much of what is shown comes from elsewhere (Planet's answers, result names, AOI names from imported files, S3
error messages), so nothing is shown as it came: terminal control sequences are removed (:func:`printable`)
and table cells are plain text, never rich markup (``[link=...]`` in a hint stays those characters).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

# What a terminal would act on rather than show: escape sequences (CSI ``ESC [ ... final``, 8-bit CSI, OSC
# ``ESC ] ... BEL|ST`` such as hyperlinks and window titles, DCS/PM/APC strings, other ``ESC x`` pairs), then any
# other C0 control but tab and newline (carriage return and backspace overwrite text), DEL and the C1 controls.
_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?|\x9b[0-?]*[ -/]*[@-~]?"  # CSI, 8-bit CSI
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?",  # any other escape
    re.DOTALL)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without terminal control sequences or control characters (tabs and newlines are kept)."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


def echo(message: str) -> None:
    """A result line on stdout, with terminal controls removed (:func:`printable`)."""
    click.echo(printable(message))


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    click.echo(json.dumps(data, indent=2, default=str))


def _is_identifier(column: str) -> bool:
    """Ids are copied into the next command: their columns never wrap."""
    name = column.lower()
    return name.endswith("id") or name in ("batch", "order", "name")


def _plain(value: Any) -> Any:
    """A cell or title as rich plain text: shown as written, never read as markup."""
    from rich.text import Text

    return Text(printable("" if value is None else str(value)))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table on stdout; piped or redirected, rows are never folded (as wide as they need)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=None if title is None else _plain(title), show_lines=False)
    for col in columns:
        table.add_column(_plain(col), overflow="fold", no_wrap=_is_identifier(col))
    for row in rows:
        table.add_row(*[_plain(v) for v in row])
    Console(file=sys.stdout, width=None if sys.stdout.isatty() else 400).print(table)


def info(message: str, quiet: bool = False) -> None:
    """A progress/status line on stderr, silenced by --quiet, so stdout stays clean for results."""
    if not quiet:
        click.echo(printable(message), err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
